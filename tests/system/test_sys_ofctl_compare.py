"""ovs-ofctl -O OpenFlow13 against ovsbpfd and against Debian's ovs-vswitchd.

Both switches get the same bridge name, datapath id, port names and ofports;
each command runs on both and the outputs are compared after the volatile
parts are normalised (durations, MACs, xids, and counters where the traffic
differs).  Where ovsbpfd differs on purpose or for now, the test says so:
the group and meter tests (if the core lacks them), NXT_PACKET_IN2 in
``monitor`` (refused as ovs-vswitchd refuses an unknown experimenter), and
the table features' field lists (ours a subset: only what FLOW_MOD accepts).
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovsbpfd.ofproto import ofp_errors as ec
from ovsbpfd.ofproto.actions import ActOutput, InstApplyActions, InstGotoTable
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import multipart as mp
from ovsbpfd.ofproto.openflow.messages import (
    BarrierRequest,
    FlowModMessage,
    Hello,
    MultipartRequest,
    encode_message,
)
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod
from tests.system.daemon_proc import Daemon
from tests.system.netns import run, unique_name
from tests.system.refvswitchd import RefVswitchd, reference_available
from tests.system.twins import twin_switches

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not reference_available(), reason="needs Debian's ovs-vswitchd"),
]

DATAPATH = "bpf"
DPID = "0000000000000abc"
FRAME = "0001020304050a0b0c0d0e0f0800450000140000000040000000c0a80001c0a80002"
FLOWS = """\
priority=100,ip,nw_src=10.1.0.1,actions=output:1
table=0,priority=50,tcp,tp_dst=80,actions=output:2
cookie=0x42,priority=20,dl_vlan=10,actions=pop_vlan,output:1
priority=30,arp,arp_tpa=10.2.0.1,actions=output:LOCAL
priority=40,in_port=2,dl_src=00:11:22:33:44:55,actions=push_vlan:0x8100,\
set_field:4106->vlan_vid,output:1
priority=41,udp,tp_src=53,idle_timeout=30,hard_timeout=60,actions=set_field:7->udp_dst,output:2
table=2,priority=7,udp6,ipv6_dst=2001:db8::/64,actions=goto_table:3
table=3,priority=1,actions=clear_actions,write_actions(output:2)
table=3,priority=2,ip,actions=dec_ttl,write_metadata:0x5/0xff,goto_table:4
"""


def normalise(text: str, counters: bool = False) -> str:
    """Blank what legitimately differs between two switches and two runs."""
    text = re.sub(r"unix:\S+\.mgmt", "unix:MGMT", text)
    text = re.sub(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\|\d+\|", "TIME|", text, flags=re.M)
    text = re.sub(r"duration[=:][\d.]+s", "duration=D", text)
    text = re.sub(r"addr:([0-9a-f]{2}:){5}[0-9a-f]{2}", "addr:MAC", text)
    text = re.sub(r"xid=0x[0-9a-f]+", "xid=X", text)
    if counters:
        text = re.sub(r"(pkts|bytes|drop|packet_count|byte_count|n_packets|n_bytes)=\d+",
                      r"\1=N", text)
    return _sort_stanzas(text)


def _sort_stanzas(text: str) -> str:
    """Sort flow, group and port entries: ovs-vswitchd lists them in hash order."""
    lines = text.splitlines()
    head = [ln for ln in lines if not ln.startswith(" ")]
    body = [ln for ln in lines if ln.startswith(" ")]
    if all(ln.startswith((" cookie=", " group_id=")) for ln in body):
        return "\n".join(head + sorted(body))
    if any(ln.startswith("  port ") for ln in body):
        stanzas: list[list[str]] = []
        for ln in body:
            if ln.startswith("  port "):
                stanzas.append([])
            stanzas[-1].append(ln)
        return "\n".join(head + ["\n".join(s) for s in sorted(stanzas)])
    return text


class Pair:
    """ovsbpfd and the reference, built alike; ``both`` runs one ofctl command on each."""

    def __init__(self, ours: Daemon, ref: RefVswitchd, bridge: str, ports: list[str],
                 workdir: Path) -> None:
        self.ours = ours
        self.ref = ref
        self.bridge = bridge
        self.ports = ports
        self.workdir = workdir

    def both(self, *args: str, counters: bool = False) -> tuple[str, str, int, int]:
        argv = [a.replace("BR", self.bridge) for a in args]
        ours = self.ours.ofctl(*argv, check=False)
        ref = self.ref.ofctl(*argv, check=False)
        return (normalise(ours.stdout + ours.stderr, counters),
                normalise(ref.stdout + ref.stderr, counters), ours.returncode, ref.returncode)

    def same(self, *args: str, counters: bool = False) -> str:
        ours, ref, rc_ours, rc_ref = self.both(*args, counters=counters)
        assert (rc_ours, ours) == (rc_ref, ref), \
            f"ovs-ofctl {' '.join(args)} differs\n--- ovsbpfd\n{ours}\n--- ovs-vswitchd\n{ref}"
        return ours

    def reset(self) -> None:
        """No flows, groups or meters on either switch; ports back up."""
        for switch in (self.ours, self.ref):
            switch.ofctl("del-flows", self.bridge)
            switch.ofctl("del-groups", self.bridge, check=False)
            switch.ofctl("del-meters", self.bridge, check=False)
            for port in self.ports:
                for setting in ("up", "receive", "forward", "flood", "packet-in"):
                    switch.ofctl("mod-port", self.bridge, port, setting, check=False)

    def file(self, name: str, text: str) -> str:
        path = self.workdir / name
        path.write_text(text)
        return str(path)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp("ofctl-compare")
    bridge = unique_name("obcbr", 0)
    ports = [unique_name("obcp", i) for i in (1, 2)]
    with twin_switches(workdir, unique_name("obcns", 0), [bridge], ports,
                       (f"other-config:datapath-id={DPID}",), DATAPATH) as (ours, ref):
        yield Pair(ours, ref, bridge, ports, workdir)


@pytest.fixture
def fresh(pair: Pair) -> Pair:
    pair.reset()
    return pair


# ---------------------------------------------------------------- switch and ports
def test_show_and_port_descriptions(fresh: Pair) -> None:
    ours = fresh.same("show", "BR")
    assert f"dpid:{DPID}" in ours and "n_tables:254" in ours
    assert "capabilities: FLOW_STATS TABLE_STATS PORT_STATS GROUP_STATS QUEUE_STATS" in ours
    fresh.same("dump-ports-desc", "BR")
    fresh.same("dump-ports-desc", "BR", "2")


def test_dump_ports_and_port_stats_after_packet_out(fresh: Pair) -> None:
    fresh.same("dump-ports", "BR", counters=True)
    fresh.same("dump-ports", "BR", "1", counters=True)
    before = fresh.same("dump-ports", "BR", "2")
    fresh.same("packet-out", "BR", "CONTROLLER", "output:2", FRAME)
    time.sleep(0.3)
    after = fresh.same("dump-ports", "BR", "2")
    assert "tx pkts=1, bytes=34" in after and after != before


def test_dump_ports_of_missing_port(fresh: Pair) -> None:
    assert "0 ports" in fresh.same("dump-ports", "BR", "9")


def test_mod_port(fresh: Pair) -> None:
    for setting in ("no-flood", "no-receive", "no-forward", "no-packet-in"):
        fresh.same("mod-port", "BR", "1", setting)
    config_line = re.compile(r"config:\s+(.*)")
    ours, ref, _, _ = fresh.both("dump-ports-desc", "BR", "1")
    assert config_line.findall(ours) == config_line.findall(ref)
    assert "NO_RECV NO_FWD NO_PACKET_IN" in ours
    fresh.same("mod-port", "BR", "1", "down")
    # Both take the netdev down, so the port's state reads LINK_DOWN at once.
    down = fresh.same("dump-ports-desc", "BR", "1")
    assert "PORT_DOWN" in down and "state:      LINK_DOWN" in down
    assert "state DOWN" in run("ip", "link", "show", fresh.ports[0]).stdout
    fresh.same("mod-port", "BR", "1", "up")
    assert "state:      LIVE" in _wait_live(fresh, 1)
    fresh.same("mod-port", "BR", "7", "up")  # no such port: ovs-ofctl's own error
    fresh.same("dump-ports-desc", "BR")


def _wait_live(pair: Pair, port: int, timeout: float = 10.0) -> str:
    """dump-ports-desc of ``port`` once both switches see its link up again.

    The kernel reports the carrier of a device taken up a moment later
    (linkwatch), and each switch learns it from a netlink notice.
    """
    deadline = time.monotonic() + timeout
    while True:
        ours, ref, _, _ = pair.both("dump-ports-desc", "BR", str(port))
        if ("LIVE" in ours and "LIVE" in ref) or time.monotonic() > deadline:
            device = run("ip", "link", "show", pair.ports[port - 1]).stdout
            assert ours == ref, f"--- ovsbpfd\n{ours}\n--- ovs-vswitchd\n{ref}\n" \
                f"--- our device\n{device}\n{pair.ours.log_text()}"
            return ours
        time.sleep(0.1)


def test_bridge_protocols(fresh: Pair) -> None:
    """Bridge.protocols: without OpenFlow13 an OpenFlow 1.3 client is refused
    alike; with it, both serve again."""
    try:
        for switch in (fresh.ours, fresh.ref):
            switch.vsctl("set", "Bridge", fresh.bridge, "protocols=OpenFlow10")
        ours, ref, rc_ours, rc_ref = fresh.both("show", "BR")
        assert rc_ours == rc_ref != 0
        # The last line ends with whichever error ovs-ofctl met first (its own
        # HELLO_FAILED hits a socket the switch may already have closed).
        assert ours.splitlines()[0] == ref.splitlines()[0]
        assert "version negotiation failed (we support version 0x04, peer supports " \
               "version 0x01)" in ours
        for switch in (fresh.ours, fresh.ref):
            switch.vsctl("set", "Bridge", fresh.bridge, "protocols=OpenFlow10,OpenFlow13")
        fresh.same("show", "BR")
    finally:
        for switch in (fresh.ours, fresh.ref):
            switch.vsctl("clear", "Bridge", fresh.bridge, "protocols")


# ---------------------------------------------------------------- flows
def test_add_flows_file_and_dumps(fresh: Pair) -> None:
    fresh.same("add-flows", "BR", fresh.file("flows.txt", FLOWS))
    fresh.same("add-flow", "BR", "table=1,priority=5,ip,nw_dst=10.0.0.0/8,actions=drop")
    out = fresh.same("dump-flows", "BR")
    assert out.count(" cookie=") == 10
    fresh.same("dump-flows", "BR", "table=3")
    fresh.same("dump-flows", "BR", "cookie=0x42/-1")
    fresh.same("dump-flows", "BR", "ip")
    fresh.same("dump-flows", "BR", "--out-port=2")
    fresh.same("dump-aggregate", "BR")
    fresh.same("dump-aggregate", "BR", "table=0")


def test_mod_flows_and_del_flows(fresh: Pair) -> None:
    fresh.same("add-flows", "BR", fresh.file("flows.txt", FLOWS))
    fresh.same("mod-flows", "BR", "tcp,actions=output:1")
    fresh.same("mod-flows", "BR", "--strict", "priority=100,ip,nw_src=10.1.0.1,actions=drop")
    fresh.same("mod-flows", "BR", "cookie=0x42/-1,actions=output:2")
    fresh.same("dump-flows", "BR")
    fresh.same("del-flows", "BR", "--strict", "priority=50,tcp,tp_dst=80")
    fresh.same("del-flows", "BR", "ip")
    fresh.same("dump-flows", "BR")
    fresh.same("del-flows", "BR", "table=3")
    fresh.same("dump-flows", "BR")
    fresh.same("del-flows", "BR")
    assert fresh.same("dump-flows", "BR").count(" cookie=") == 0


def test_dump_tables_first_tables(fresh: Pair) -> None:
    fresh.same("add-flows", "BR", fresh.file("flows.txt", FLOWS))
    out = fresh.same("dump-tables", "BR")
    assert "  table 0:\n    active=6" in out and "tables 5...253: ditto" in out


def test_dump_table_features(fresh: Pair) -> None:
    """Same stanzas, metadata, sizes, next tables and instructions; every field
    and action ovsbpfd advertises is one ovs-vswitchd advertises the same way.

    ovsbpfd advertises only what a FLOW_MOD to it may use (what its datapath
    does), so ovs-vswitchd lists more: its NXM fields (registers, conntrack,
    tunnel metadata, nw_ttl, ip_frag, tcp_flags, NSH), masks on transport
    ports and ND fields (OpenFlow 1.3 makes those exact-match only), Set-Field
    on MPLS/ICMP/ND/SCTP fields, and the MPLS and set_queue actions."""
    ours, ref, rc_ours, rc_ref = fresh.both("dump-table-features", "BR")
    assert rc_ours == rc_ref == 0
    assert _table_feature_shape(ours) == _table_feature_shape(ref)
    ours_lists, ref_lists = _table_feature_lists(ours), _table_feature_lists(ref)
    assert ours_lists.keys() == ref_lists.keys()
    for key in ("instructions", "next tables"):
        assert ours_lists[key] == ref_lists[key], key
    for key in ("actions", "supported on Set-Field", "arbitrary mask"):
        assert ours_lists[key] <= ref_lists[key], (key, ours_lists[key] - ref_lists[key])
    matchable = ref_lists["arbitrary mask"] | ref_lists["exact match or wildcard"]
    assert ours_lists["exact match or wildcard"] <= matchable
    assert {"output", "group", "set_field", "push_vlan", "strip_vlan", "dec_ttl"} \
        <= ours_lists["actions"]
    assert {"eth_src", "ip_dst", "tcp_src", "vlan_vid"} <= ours_lists["supported on Set-Field"]


def _table_feature_shape(text: str) -> list[str]:
    """The output with the field and action lists left out."""
    keep = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(TABLE_FEATURE_LISTS):
            stripped = stripped.split(":")[0]
        keep.append(stripped)
    return keep


TABLE_FEATURE_LISTS = ("supported on Set-Field", "arbitrary mask", "exact match or wildcard",
                       "actions", "instructions", "next tables")


def _table_feature_lists(text: str) -> dict[str, set[str]]:
    """Table 0's lists, each name spelled out (``eth_{src,dst}`` -> both)."""
    table0 = text.split("\n\n")[0]
    lists: dict[str, set[str]] = {}
    for line in table0.splitlines():
        key, _, names = line.strip().partition(": ")
        if key in TABLE_FEATURE_LISTS:
            lists[key] = {n for word in names.split() for n in _expand_braces(word)}
    return lists


def _expand_braces(word: str) -> list[str]:
    """ovs-ofctl's ``a_{b,c_{d,e}}`` -> a_b, a_c_d, a_c_e (ranges stay as written)."""
    start = word.find("{")
    if start < 0:
        return [word]
    depth, end, alternatives, begin = 0, start, [], start + 1
    for end in range(start, len(word)):
        char = word[end]
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 1 and char == ",":
            alternatives.append(word[begin:end])
            begin = end + 1
        elif depth == 0:
            alternatives.append(word[begin:end])
            break
    head, tail = word[:start], word[end + 1:]
    return [head + x + rest for alt in alternatives for x in _expand_braces(alt)
            for rest in _expand_braces(tail)]


def test_durations_have_millisecond_precision(fresh: Pair) -> None:
    """ovs-vswitchd keeps times in ms: every duration_nsec is a multiple of 10**6."""
    fresh.same("add-flows", "BR", fresh.file("flows.txt", FLOWS))
    time.sleep(0.05)
    request = encode_message(MultipartRequest(
        c.OFPMP_FLOW, body=mp.encode_flow_stats_request(mp.FlowStatsRequest()), xid=3))
    for switch in (fresh.ours, fresh.ref):
        (reply,) = _exchange(switch.rundir / f"{fresh.bridge}.mgmt", [request])
        body = reply[2][8:]  # after the multipart header
        nsecs = []
        while body:
            length, _, _, nsec = struct.unpack_from("!HBxII", body)
            nsecs.append(nsec)
            body = body[length:]
        assert len(nsecs) == 9 and all(n % 1_000_000 == 0 for n in nsecs), nsecs
        assert any(nsecs), nsecs


def test_flow_mod_errors_match(fresh: Pair) -> None:
    fresh.same("add-flow", "BR", "priority=1,actions=goto_table:300")
    fresh.same("add-flow", "BR", "table=5,priority=1,actions=goto_table:2")
    fresh.same("add-flow", "BR", "priority=1,actions=output:99")  # allowed on both
    fresh.same("dump-flows", "BR")


def test_set_field_flows(fresh: Pair) -> None:
    for flow in ("priority=1,tcp,actions=set_field:5->ip_dscp,output:1",
                 "priority=2,udp,actions=set_field:99->udp_src,output:2",
                 "priority=3,actions=set_field:00:11:22:33:44:55->eth_dst,output:1",
                 "priority=4,ip,actions=set_field:10.0.0.9->ip_dst,output:1",
                 "priority=5,actions=set_field:10.0.0.9->ip_dst,output:1"):
        fresh.same("add-flow", "BR", flow)
    fresh.same("dump-flows", "BR")


# ---------------------------------------------------------------- bundles
def test_bundle_applies_all(fresh: Pair) -> None:
    fresh.same("--bundle", "add-flow", "BR", "priority=77,actions=output:1")
    fresh.same("--bundle", "add-flows", "BR", fresh.file("flows.txt", FLOWS))
    fresh.same("--bundle", "del-flows", "BR", "tcp")
    fresh.same("--bundle", "mod-flows", "BR", "ip,actions=output:2")
    out = fresh.same("dump-flows", "BR")
    assert "priority=77 actions=output:1" in out


def test_bundle_failure_applies_nothing(fresh: Pair) -> None:
    fresh.same("add-flow", "BR", "priority=301,actions=output:2")
    bad = fresh.file("bad.txt", "priority=300,actions=output:1\n"
                                "priority=301,in_port=1,check_overlap,actions=output:2\n")
    ours, ref, rc_ours, rc_ref = fresh.both("--bundle", "add-flows", "BR", bad)
    assert rc_ours == rc_ref != 0
    assert ours == ref
    assert "Error OFPFMFC_OVERLAP for: OFPT_FLOW_MOD" in ours
    assert "Error OFPBFC_MSG_FAILED for: ONFT_BUNDLE_CONTROL" in ours
    assert "priority=300" not in fresh.same("dump-flows", "BR")


def test_overlap_checked_without_bundle(fresh: Pair) -> None:
    fresh.same("add-flow", "BR", "priority=301,actions=output:2")
    fresh.same("add-flow", "BR", "priority=301,in_port=1,check_overlap,actions=output:2")
    fresh.same("dump-flows", "BR")


def test_check_overlap_replaces_an_identical_flow(fresh: Pair) -> None:
    """As ovs-vswitchd: a flow with the same match and priority is replaced,
    not an overlap (the check runs only when no identical flow exists)."""
    fresh.same("add-flow", "BR", "priority=302,in_port=1,actions=output:2")
    fresh.same("add-flow", "BR", "priority=302,in_port=1,check_overlap,actions=output:1")
    assert "check_overlap priority=302,in_port=1 actions=output:1" in \
        fresh.same("dump-flows", "BR")


def test_bundle_checks_overlap_against_its_own_flows(fresh: Pair) -> None:
    """CHECK_OVERLAP sees the earlier FLOW_MODs of the same bundle; the whole
    bundle then fails alike.  An identical earlier flow is replaced instead."""
    overlapping = fresh.file("overlap.txt", "priority=300,actions=output:1\n"
                                            "priority=300,in_port=1,check_overlap,"
                                            "actions=output:2\n")
    ours, ref, rc_ours, rc_ref = fresh.both("--bundle", "add-flows", "BR", overlapping)
    assert (rc_ours, ours) == (rc_ref, ref)
    assert rc_ours != 0 and "Error OFPFMFC_OVERLAP for: OFPT_FLOW_MOD" in ours
    assert "priority=300" not in fresh.same("dump-flows", "BR")
    identical = fresh.file("identical.txt", "priority=300,actions=output:1\n"
                                            "priority=300,check_overlap,actions=output:2\n")
    fresh.same("--bundle", "add-flows", "BR", identical)
    assert "check_overlap priority=300 actions=output:2" in fresh.same("dump-flows", "BR")


# ---------------------------------------------------------------- packet-out and monitor
def test_packet_out_forms(fresh: Pair) -> None:
    fresh.same("packet-out", "BR", "CONTROLLER", "output:1", FRAME)
    fresh.same("packet-out", "BR", f"in_port=1,packet={FRAME},actions=output:2")
    fresh.same("packet-out", "BR", f"in_port=1,packet={FRAME},actions=output:9")
    fresh.same("packet-out", "BR", f"in_port=2,packet={FRAME},actions=output:in_port")
    fresh.same("packet-out", "BR", f"in_port=1,packet={FRAME},actions=NORMAL")
    fresh.same("packet-out", "BR", "in_port=1,packet=0001,actions=output:2")


def _monitor_barrier(switch: Daemon | RefVswitchd, proc: subprocess.Popen, ctl: Path,
                     timeout: float = 20.0) -> None:
    """A barrier round trip on the monitor's own connection (``ofctl/barrier``).

    Its control socket appears once the monitor is connected and set up, and
    the reply comes after every message the switch queued on that
    connection before it, so no fixed sleep has to guess how long either
    takes on a loaded machine.
    """
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()[0]
        if ctl.exists():
            result = subprocess.run(["ovs-appctl", "-t", str(ctl), "ofctl/barrier"],
                                    env=switch.env, capture_output=True, text=True,
                                    timeout=timeout)
            if result.returncode == 0:
                return
        assert time.monotonic() < deadline, "ovs-ofctl monitor did not answer a barrier"
        time.sleep(0.05)


def _monitor(switch: Daemon | RefVswitchd, bridge: str, trigger) -> str:
    """Run `ovs-ofctl monitor` while ``trigger`` makes async messages; return its output."""
    ctl = switch.rundir / "ofctl-monitor.ctl"
    proc = subprocess.Popen(["ovs-ofctl", "-O", "OpenFlow13", f"--unixctl={ctl}", "monitor",
                             bridge, "65534"],
                            env=switch.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        _monitor_barrier(switch, proc, ctl)
        trigger(switch)
        _monitor_barrier(switch, proc, ctl)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    return out


def test_monitor_shows_packet_in_and_port_status(fresh: Pair) -> None:
    def trigger(switch: Daemon | RefVswitchd) -> None:
        switch.ofctl("packet-out", fresh.bridge,
                     f"in_port=1,packet={FRAME},actions=controller")
        switch.ofctl("mod-port", fresh.bridge, "1", "no-receive")

    ours = normalise(_monitor(fresh.ours, fresh.bridge, trigger))
    # ovs-ofctl monitor asks for Nicira's NXT_PACKET_IN2; ovs-vswitchd obliges,
    # ovsbpfd refuses the extension and ovs-ofctl falls back to OFPT_PACKET_IN.
    ref = normalise(_monitor(fresh.ref, fresh.bridge, trigger)).replace(
        "NXT_PACKET_IN2", "OFPT_PACKET_IN")
    assert "OFPT_PACKET_IN" in ours and "OFPT_PORT_STATUS" in ours, ours

    def messages(text: str) -> list[str]:
        return [ln.split(" (")[0] for ln in text.splitlines() if ln.startswith("OFPT_")]

    assert messages(ours) == messages(ref)
    packet_in = re.compile(r"OFPT_PACKET_IN.*\n(.*)\n")
    assert packet_in.search(ours).group(1) == packet_in.search(ref).group(1)


NX_VENDOR_ID = 0x00002320
NXT_SET_PACKET_IN_FORMAT = 16
NXPIF_NXT_PACKET_IN2 = 2


def _experimenter(xid: int, vendor: int, subtype: int, body: bytes = b"") -> bytes:
    payload = struct.pack("!II", vendor, subtype) + body
    return struct.pack("!BBHI", 4, c.OFPT_EXPERIMENTER, 8 + len(payload), xid) + payload


def test_nicira_packet_in_format_is_refused_as_an_unknown_experimenter(fresh: Pair) -> None:
    """ovs-ofctl monitor asks for NXT_PACKET_IN2 and falls back to
    OFPT_PACKET_IN on any error.  ovsbpfd implements no Nicira message, so
    the Nicira id is as unknown to it as any vendor's, and it answers the
    request exactly as ovs-vswitchd answers an experimenter id it does not
    know: OFPBRC_BAD_EXPERIMENTER quoting the request.  (ovs-vswitchd's
    OFPBRC_BAD_EXP_TYPE is for a Nicira subtype it lacks: it knows Nicira.)"""
    request = _experimenter(7, NX_VENDOR_ID, NXT_SET_PACKET_IN_FORMAT,
                            struct.pack("!I", NXPIF_NXT_PACKET_IN2))
    unknown_vendor = _experimenter(8, 0x12345678, 1)
    unknown_nxt = _experimenter(9, NX_VENDOR_ID, 9999)
    messages = [request, unknown_vendor, unknown_nxt]
    ours = _exchange(fresh.ours.rundir / f"{fresh.bridge}.mgmt", messages)
    ref = _exchange(fresh.ref.rundir / f"{fresh.bridge}.mgmt", messages)

    def error(type_code: tuple[int, int], quoted: bytes) -> bytes:
        return struct.pack("!HH", *type_code) + quoted

    bad_experimenter = (ec.OFPET_BAD_REQUEST, ec.OFPBRC_BAD_EXPERIMENTER)
    bad_exp_type = (ec.OFPET_BAD_REQUEST, ec.OFPBRC_BAD_EXP_TYPE)
    assert ref == [(c.OFPT_ERROR, 8, error(bad_experimenter, unknown_vendor)),
                   (c.OFPT_ERROR, 9, error(bad_exp_type, unknown_nxt))]
    assert ours == [(c.OFPT_ERROR, xid, error(bad_experimenter, msg))
                    for xid, msg in zip((7, 8, 9), messages, strict=True)]


# ---------------------------------------------------------------- groups and meters
def _has_groups(pair: Pair) -> bool:
    return "Types:  0x0" not in pair.ours.ofctl("dump-group-features", pair.bridge).stdout


GROUP_COMMANDS = [
    ("add-group", "BR", "group_id=1,type=all,bucket=output:1,bucket=output:2"),
    ("add-group", "BR", "group_id=2,type=select,bucket=weight:10,output:1,"
                        "bucket=weight:20,output:2"),
    ("add-group", "BR", "group_id=3,type=indirect,bucket=output:1"),
    ("mod-group", "BR", "group_id=1,type=all,bucket=output:2"),
]


def test_groups(fresh: Pair) -> None:
    if _has_groups(fresh):
        for command in GROUP_COMMANDS:
            fresh.same(*command)
        fresh.same("add-flow", "BR", "priority=9,actions=group:1")
        fresh.same("dump-groups", "BR")
        fresh.same("dump-group-stats", "BR")
        fresh.same("del-groups", "BR", "group_id=1")
        fresh.same("dump-groups", "BR")
        fresh.same("dump-group-features", "BR")
        return
    # The core has no groups yet: every GROUP_MOD but a delete is refused with
    # the spec's OUT_OF_GROUPS, the group table stays empty, and a flow
    # naming a group is refused.  ovs-vswitchd accepts them all.
    for command in GROUP_COMMANDS:
        ours, _, rc_ours, rc_ref = fresh.both(*command)
        assert rc_ref == 0 and rc_ours != 0 and "OFPGMFC_OUT_OF_GROUPS" in ours
    ours, _, rc_ours, _ = fresh.both("add-flow", "BR", "priority=9,actions=group:1")
    assert rc_ours != 0 and "OFPBAC_BAD_OUT_GROUP" in ours
    ours, ref, _, _ = fresh.both("dump-groups", "BR")
    assert ours.strip().endswith("OFPST_GROUP_DESC reply (OF1.3) (xid=X):")
    assert "group_id=2,type=select" in ref
    fresh.same("del-groups", "BR")


METER_COMMANDS = [
    ("add-meter", "BR", "meter=1,pktps,band=type=drop,rate=100"),
    ("add-meter", "BR", "meter=2,kbps,burst,band=type=drop,rate=1000,burst_size=100"),
]


def test_meters(fresh: Pair) -> None:
    features = fresh.ours.ofctl("meter-features", fresh.bridge).stdout
    if "max_meter:0 " not in features:
        for command in METER_COMMANDS:
            fresh.same(*command)
        fresh.same("dump-meters", "BR")
        fresh.same("meter-stats", "BR")
        fresh.same("del-meters", "BR")
        return
    # No meters in the core yet: METER_MOD is refused with OUT_OF_METERS.
    for command in METER_COMMANDS:
        ours, _, rc_ours, rc_ref = fresh.both(*command)
        assert rc_ref == 0 and rc_ours != 0 and "OFPMMFC_OUT_OF_METERS" in ours
    ours, ref, _, _ = fresh.both("dump-meters", "BR")
    assert "meter=1 pktps" in ref and "meter=" not in ours
    fresh.same("del-meters", "BR")


# ---------------------------------------------------------------- bundle protocol
ONF = 0x4F4E4600


def _bundle_ctrl(xid: int, bundle_id: int, ctrl_type: int, flags: int = 3) -> bytes:
    body = struct.pack("!IIIHH", ONF, 2300, bundle_id, ctrl_type, flags)
    return struct.pack("!BBHI", 4, 4, 8 + len(body), xid) + body


def _bundle_add(xid: int, bundle_id: int, inner: bytes, flags: int = 3) -> bytes:
    body = struct.pack("!IIIHH", ONF, 2301, bundle_id, 0, flags) + inner
    return struct.pack("!BBHI", 4, 4, 8 + len(body), xid) + body


def _flow_mod(xid: int, priority: int, in_port: int | None = None, flags: int = 0) -> bytes:
    fields = {"in_port": in_port} if in_port is not None else {}
    fm = FlowMod(OFPFC_ADD, Match(fields), (InstApplyActions((ActOutput(1),)),),
                 priority=priority, flags=flags)
    return encode_message(FlowModMessage(fm, xid=xid))


def _bad_flow_mod(xid: int) -> bytes:
    """goto_table:0 from table 0: refused by both switches."""
    fm = FlowMod(OFPFC_ADD, Match(), (InstGotoTable(0),), priority=4)
    return encode_message(FlowModMessage(fm, xid=xid))


def _exchange(path: Path, messages: list[bytes]) -> list[tuple[int, int, bytes]]:
    """Send ``messages`` after HELLO; the (type, xid, body) of every reply.

    Bodies are compared whole: both switches quote the whole failed request
    in an OFPT_ERROR."""
    replies: list[tuple[int, int, bytes]] = []
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(encode_message(Hello()))
        sock.sendall(b"".join(messages) + encode_message(BarrierRequest(xid=0xBA)))
        sock.settimeout(5)
        data = b""
        while True:
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            data += chunk
            frames = []
            rest = data
            while len(rest) >= 8 and len(rest) >= struct.unpack_from("!H", rest, 2)[0]:
                length = struct.unpack_from("!H", rest, 2)[0]
                frames.append(rest[:length])
                rest = rest[length:]
            if any(f[1] == 21 and struct.unpack_from("!I", f, 4)[0] == 0xBA for f in frames):
                break
    for frame in frames:
        msg_type, xid = frame[1], struct.unpack_from("!I", frame, 4)[0]
        if msg_type in (0, 21):  # HELLO, BARRIER_REPLY
            continue
        replies.append((msg_type, xid, frame[8:]))
    return replies


BUNDLE_SEQUENCES = {
    "commit of an unknown bundle": [_bundle_ctrl(1, 7, 4)],
    "open twice": [_bundle_ctrl(2, 8, 0), _bundle_ctrl(3, 8, 0), _bundle_ctrl(4, 8, 4)],
    "inner xid differs": [_bundle_ctrl(5, 9, 0), _bundle_add(6, 9, _flow_mod(0x99, 5)),
                          _bundle_ctrl(7, 9, 4)],
    "add after close": [_bundle_ctrl(8, 10, 0), _bundle_ctrl(9, 10, 2),
                        _bundle_add(10, 10, _flow_mod(10, 5)), _bundle_ctrl(11, 10, 2)],
    "discard": [_bundle_ctrl(12, 11, 0), _bundle_add(13, 11, _flow_mod(13, 9)),
                _bundle_ctrl(14, 11, 6), _bundle_ctrl(15, 11, 4)],
    "barrier inside a bundle": [_bundle_ctrl(16, 12, 0),
                                _bundle_add(17, 12, encode_message(BarrierRequest(xid=17))),
                                _bundle_ctrl(18, 12, 4)],
    "commit flags differ": [_bundle_ctrl(19, 13, 0, 1), _bundle_ctrl(20, 13, 4, 3)],
    "add without open, then commit": [_bundle_add(21, 14, _flow_mod(21, 6)),
                                      _bundle_ctrl(22, 14, 4)],
    "bad flow in a bundle": [_bundle_ctrl(28, 16, 0), _bundle_add(29, 16, _flow_mod(29, 3)),
                             _bundle_add(30, 16, _bad_flow_mod(30)), _bundle_ctrl(31, 16, 4)],
    "overlap within the bundle": [
        _bundle_ctrl(32, 17, 0), _bundle_add(33, 17, _flow_mod(33, 8)),
        _bundle_add(34, 17, _flow_mod(34, 8, in_port=2, flags=2)), _bundle_ctrl(35, 17, 4)],
    "identical flow with check_overlap in the bundle": [
        _bundle_ctrl(36, 18, 0), _bundle_add(37, 18, _flow_mod(37, 8, in_port=2)),
        _bundle_add(38, 18, _flow_mod(38, 8, in_port=2, flags=2)), _bundle_ctrl(39, 18, 4)],
    "failing commit": [_bundle_ctrl(23, 15, 0), _bundle_add(24, 15, _flow_mod(24, 5)),
                       _bundle_add(25, 15, _flow_mod(25, 5, in_port=1, flags=2)),
                       _bundle_ctrl(26, 15, 4), _bundle_ctrl(27, 15, 4)],
}


@pytest.mark.parametrize("case", sorted(BUNDLE_SEQUENCES))
def test_bundle_protocol_matches_reference(fresh: Pair, case: str) -> None:
    messages = BUNDLE_SEQUENCES[case]
    ours = _exchange(fresh.ours.rundir / f"{fresh.bridge}.mgmt", messages)
    ref = _exchange(fresh.ref.rundir / f"{fresh.bridge}.mgmt", messages)
    assert ours == ref
    fresh.same("dump-flows", "BR")
