"""ovs-appctl's switch commands on ovsbpfd beside Debian's ovs-vswitchd.

Both switches get the same bridges and ports and see the same frames; each
command's exit status, reply and error text must be what ovs-vswitchd
gives (dpctl errors start with the daemon's own name in both).  Where the
datapaths necessarily differ (datapath port numbers, OVS-only key fields
such as ``recirc_id``), the parts users read are compared: which port a flow
comes in on and goes out of, by name, and its Ethernet addresses.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.system.daemon_proc import Daemon, Result
from tests.system.netns import run, unique_name
from tests.system.refvswitchd import RefVswitchd, reference_available
from tests.system.twins import twin_switches

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not reference_available(), reason="needs Debian's ovs-vswitchd"),
]

MAC1, MAC2 = "020000000001", "020000000002"
# Sends 3 UDP frames src -> dst on a device; nobody answers (no host owns dst).
SEND = r"""
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
src, dst = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
ip = bytes.fromhex("45000020000100004011") + bytes(2) + bytes([10, 0, 0, 1, 10, 0, 0, 2])
udp = struct.pack("!HHHH", 1234, 5678, 12, 0) + b"abcd"
for _ in range(3):
    s.send(dst + src + b"\x08\x00" + ip + udp)
"""
# Rules of many shapes, in ovs-ofctl syntax: every match field and action
# ovsbpfd accepts, masked and exact, with shorthands and reserved ports.
RULES = (
    "priority=100,in_port=1,actions=output:2",
    "priority=90,dl_src=02:00:00:00:00:01,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=FLOOD",
    "priority=80,ip,nw_src=10.0.0.0/24,nw_dst=10.1.2.3,actions=dec_ttl,output:1",
    "priority=78,ip,nw_src=10.0.0.0/255.0.255.0,actions=ALL",
    "priority=70,tcp,tp_dst=80,actions=set_field:02:00:00:00:00:09->eth_dst,output:LOCAL",
    "priority=69,tcp,tp_src=1,tp_dst=2,actions=set_field:10.0.0.9->ip_dst,set_field:99->tcp_dst,IN_PORT",
    "priority=60,udp6,ipv6_src=2001:db8::/32,udp_dst=53,actions=CONTROLLER:128",
    "priority=59,udp,actions=CONTROLLER:65535",
    "priority=50,arp,arp_op=1,arp_tpa=10.0.0.1,arp_sha=02:00:00:00:00:01,actions=NORMAL",
    "priority=40,dl_vlan=10,dl_vlan_pcp=3,actions=pop_vlan,output:2",
    "priority=38,dl_vlan=11,actions=set_field:3->vlan_pcp,output:2",
    "priority=35,vlan_tci=0x0000/0x1fff,actions=push_vlan:0x8100,set_field:4106->vlan_vid,output:2",
    "priority=34,vlan_tci=0x1000/0x1000,actions=drop",
    "priority=30,icmp,icmp_type=8,icmp_code=0,actions=group:1",
    "priority=20,metadata=0x1/0xff,actions=write_metadata:0x2/0xff,goto_table:1",
    "priority=19,metadata=0x5,actions=write_metadata:0x3,goto_table:2",
    "table=1,priority=10,ip,nw_tos=32,nw_ecn=1,actions=meter:1,write_actions(output:2)",
    "table=1,priority=9,ip,nw_proto=47,actions=clear_actions",
    "priority=12,tun_id=0x5,actions=drop",
    "priority=13,tun_id=0x50/0xf0,actions=drop",
    "priority=10,sctp,tp_src=1,actions=mod_nw_ttl:5,output:1",
    "actions=drop",
    "priority=8,dl_type=0x88cc,actions=drop",
    "priority=7,in_port=LOCAL,actions=output:1",
    "priority=6,icmp6,icmp_type=135,actions=drop",
    "priority=5,ip,nw_dst=0.0.0.0/1,actions=set_field:0x2e->ip_dscp",
    "priority=4,metadata=0,actions=drop",
    "priority=3,dl_src=02:00:00:00:00:00/ff:ff:00:00:00:00,actions=set_field:02:00:00:00:00:01->eth_src",
    "priority=2,ipv6,ipv6_src=2001:db8::1/ffff:ffff::ff,actions=drop",
    "priority=1,udp,udp_src=68,actions=set_field:67->udp_dst,set_field:5->udp_src",
    "priority=14,ip,actions=set_field:1->ip_ecn,set_field:10.0.0.3->ip_src",
    "priority=15,arp,actions=set_field:10.0.0.7->arp_spa,set_field:02:00:00:00:00:07->arp_sha",
    "priority=16,ipv6,actions=set_field:2001:db8::1->ipv6_src",
    "priority=17,tcp6,actions=set_field:80->tcp_src,dec_ttl",
)
COVERAGE_SHOW = re.compile(
    r"Event coverage, avg rate over last: 5 seconds, last minute, last hour,  hash=[0-9a-f]{8}:\n"
    r"([a-z0-9_]+ +\d+\.\d/sec +\d+\.\d{3}/sec +\d+\.\d{4}/sec   total: \d+\n)*"
    r"\d+ events never hit\n")
UPCALL_SHOW = re.compile(
    r"\S+@\S+:\n  flows         : \(current \d+\) \(avg \d+\) \(max \d+\) \(limit \d+\)\n"
    r"  dump duration : \d+ms\n  ufid enabled : (true|false)\n\n(  \d+: \(keys \d+\)\n)+")


class Pair:
    """ovsbpfd and the reference with bridge ``br`` (ports p1, p2) and ``br2``
    (no ports); ``both`` runs one ovs-appctl command on each."""

    def __init__(self, ours: Daemon, ref: RefVswitchd, br: str, br2: str,
                 ports: list[str]) -> None:
        self.ours, self.ref = ours, ref
        self.br, self.br2, self.ports = br, br2, ports

    def both(self, *args: str) -> tuple[Result, Result]:
        argv = [a.replace("BR2", self.br2).replace("BR", self.br) for a in args]
        return self.ours.appctl(*argv, check=False), self.ref.appctl(*argv, check=False)

    def same(self, *args: str) -> str:
        """Same exit status, reply and error text (ovs-appctl's own last
        error line names the socket, so it is left out)."""
        ours, ref = self.both(*args)
        got = (ours.returncode, ours.stdout.replace("ovsbpfd:", "DAEMON:"), _error(ours))
        want = (ref.returncode, ref.stdout.replace("ovs-vswitchd:", "DAEMON:"), _error(ref))
        assert got == want, f"ovs-appctl {' '.join(args)}: ovsbpfd {got} vs ovs-vswitchd {want}"
        return ours.stdout

    def traffic(self) -> None:
        """p1's host and p2's host each send 3 frames to the other, on both switches."""
        for src, dst, port in ((MAC1, MAC2, self.ports[0]), (MAC2, MAC1, self.ports[1])):
            run("python3", "-c", SEND, port + "p", src, dst)
            self.ref.exec("python3", "-c", SEND, port + "p", src, dst)

    def clear(self) -> None:
        for cmd in (("dpctl/del-flows",), ("fdb/flush",), ("fdb/stats-clear",)):
            self.both(*cmd)


def _error(result: Result) -> str:
    lines = result.stderr.splitlines(keepends=True)
    return "".join(lines[:-1]).replace("ovsbpfd:", "DAEMON:").replace("ovs-vswitchd:", "DAEMON:")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp("appctl-compare")
    br, br2 = unique_name("oabr", 0), unique_name("oabr", 1)
    ports = [unique_name("oap", i) for i in (1, 2)]
    with twin_switches(workdir, unique_name("oans", 0), [br, br2], ports) as (ours, ref):
        yield Pair(ours, ref, br, br2, ports)


@pytest.fixture
def fresh(pair: Pair) -> Pair:
    pair.clear()
    return pair


@pytest.mark.parametrize("args", [
    ("dpif/dump-flows",), ("dpif/dump-flows", "nosuchbr"), ("dpif/dump-flows", "-m"),
    ("dpif/dump-flows", "-m", "--names", "nosuchbr"),
    ("fdb/flush", "nosuchbr"), ("fdb/flush", "BR", "BR2"),
    ("fdb/stats-show",), ("fdb/stats-show", "nosuchbr"), ("fdb/stats-show", "BR", "BR2"),
    ("fdb/stats-clear", "nosuchbr"), ("fdb/stats-clear", "BR", "BR2"),
    ("fdb/show", "nosuchbr"),
    ("dpctl/dump-dps", "x"), ("dpctl/del-flows", "a", "b", "c"),
    ("dpctl/del-flows", "-x"), ("dpctl/del-flows", "--bogus"),
    ("dpctl/del-flows", "/nonexistent/flows"), ("dpctl/dump-flows", "nosuchdp"),
    ("dpctl/dump-flows", "a", "b", "c", "d", "e", "f", "g"),
    ("dpctl/show", "-x"), ("dpctl/show", "-s", "nosuchdp"),
    ("ofproto/list", "x"), ("upcall/show", "x"), ("revalidator/purge", "x"),
    ("vlog/reopen", "x"), ("vlog/close", "x"),
    ("bridge/dump-flows",), ("bridge/dump-flows", "nosuchbr"), ("bridge/dump-flows", "a", "b", "c"),
    ("bridge/dump-flows", "--offload-stats", "nosuchbr"),
    ("coverage/show", "x"), ("coverage/read-counter",), ("coverage/read-counter", "nosuch"),
])
def test_usage_and_unknown_names_answer_as_ovs(pair: Pair, args: tuple[str, ...]) -> None:
    pair.same(*args)


def test_usage_lines_as_ovs(pair: Pair) -> None:
    """list-commands shows each new command with ovs-vswitchd's usage (but
    dpctl/dump-flows, whose filter=, type= and pmd= ovsbpfd does not offer)."""
    commands = ("dpif/dump-flows", "fdb/flush", "fdb/stats-show", "fdb/stats-clear",
                "dpctl/del-flows", "dpctl/dump-dps", "dpctl/show", "ofproto/list", "upcall/show",
                "revalidator/purge", "bridge/dump-flows", "coverage/show",
                "coverage/read-counter", "vlog/reopen", "vlog/close")

    def usage(switch: Daemon | RefVswitchd) -> dict[str, str]:
        lines = switch.appctl("list-commands").stdout.splitlines()[1:]
        return {line.split()[0]: line for line in lines}

    ours, ref = usage(pair.ours), usage(pair.ref)
    assert [ours.get(c) for c in commands] == [ref[c] for c in commands]


def test_replies_match_on_quiet_bridges(fresh: Pair) -> None:
    assert fresh.same("fdb/flush", "BR") == "table successfully flushed\n"
    fresh.same("fdb/flush")
    assert fresh.same("fdb/stats-clear", "BR2") == "statistics successfully cleared\n"
    fresh.same("fdb/stats-clear")
    fresh.same("fdb/stats-show", "BR")
    fresh.same("fdb/show", "BR")
    ours, ref = fresh.both("ofproto/list")  # OVS lists in hash order, ovsbpfd sorted
    assert ours.stdout.splitlines() == sorted(ref.stdout.splitlines()) == sorted(
        [fresh.br, fresh.br2])
    fresh.same("revalidator/purge")
    fresh.same("dpctl/del-flows")
    assert fresh.same("dpif/dump-flows", "BR") == ""
    assert fresh.same("vlog/close") == ""
    assert fresh.same("vlog/reopen") == ""  # both run with --log-file
    ours, ref = fresh.both("upcall/show")
    assert UPCALL_SHOW.fullmatch(ours.stdout) and UPCALL_SHOW.fullmatch(ref.stdout), \
        (ours.stdout, ref.stdout)


def _rules_text(switch: Daemon | RefVswitchd, *args: str) -> list[str]:
    """``bridge/dump-flows`` lines without their age, sorted (OVS walks its
    classifier in hash order), and without OVS's table 254: the hidden rules
    of its recirculation machinery, which ovsbpfd has no use for."""
    out = switch.appctl("bridge/dump-flows", *args).stdout
    return sorted(re.sub(r"duration=\d+s, ", "", line) for line in out.splitlines()
                  if not line.startswith("table_id=254, "))


def test_bridge_dump_flows_prints_rules_as_ovs(fresh: Pair) -> None:
    for switch in (fresh.ours, fresh.ref):
        switch.ofctl("add-group", fresh.br2, "group_id=1,type=all,bucket=output:1")
        switch.ofctl("add-meter", fresh.br2, "meter=1,pktps,band=type=drop,rate=10")
        switch.ofctl("del-flows", fresh.br2)
        for rule in RULES:
            switch.ofctl("add-flow", fresh.br2, rule)
    try:
        for args in ((fresh.br2,), ("--offload-stats", fresh.br2), ("--other", fresh.br2)):
            ours, ref = _rules_text(fresh.ours, *args), _rules_text(fresh.ref, *args)
            assert len(ours) == len(RULES) and ours == ref, "\n".join(
                ["--- ovsbpfd", *ours, "--- ovs-vswitchd", *ref])
    finally:
        for switch in (fresh.ours, fresh.ref):
            switch.ofctl("del-flows", fresh.br2)
            switch.ofctl("del-groups", fresh.br2)
            switch.ofctl("del-meters", fresh.br2)
            switch.ofctl("add-flow", fresh.br2, "priority=0,actions=NORMAL")


def _flow_view(line: str) -> tuple[str, str, str]:
    """(in_port, eth(...), actions) of one datapath flow line."""
    in_port = re.search(r"in_port\(([^)]*)\)", line)
    eth = re.search(r"eth\(([^)]*)\)", line)
    actions = line.rsplit("actions:", 1)[1]
    assert in_port and eth, line
    return in_port.group(1), eth.group(1), actions


def _settled_flows(switch: Daemon | RefVswitchd, bridge: str) -> list[str]:
    """``dpif/dump-flows -m`` once both directions are unicast (revalidated after learning)."""
    deadline = time.monotonic() + 10
    while True:
        lines = switch.appctl("dpif/dump-flows", "-m", bridge).stdout.splitlines()
        if (len(lines) == 2 and all("," not in line.rsplit("actions:", 1)[1] for line in lines)) \
                or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_same_traffic_same_flows_and_fdb_stats(fresh: Pair) -> None:
    fresh.traffic()
    ours = _settled_flows(fresh.ours, fresh.br)
    ref = _settled_flows(fresh.ref, fresh.br)
    p1, p2 = fresh.ports
    assert sorted(map(_flow_view, ours)) == sorted(map(_flow_view, ref)) == sorted([
        (p1, "src=02:00:00:00:00:01,dst=02:00:00:00:00:02", p2),
        (p2, "src=02:00:00:00:00:02,dst=02:00:00:00:00:01", p1)]), (ours, ref)
    numbered = fresh.ours.appctl("dpif/dump-flows", "BR".replace("BR", fresh.br)).stdout
    assert p1 not in numbered and len(numbered.splitlines()) == 2  # numbers without -m
    named = fresh.ours.appctl("dpif/dump-flows", "--names", fresh.br).stdout
    assert f"in_port({p1})" in named and "(0/0)" not in named  # names without -m's detail
    # br2 has no ports: none of the datapath's flows are its own
    assert fresh.same("dpif/dump-flows", "BR2") == ""
    assert len(fresh.ours.appctl("dpctl/dump-flows").stdout.splitlines()) == 2
    # the rule counters, once both have pulled all 6 frames from their datapaths
    normal = re.compile(r"n_packets=(\d+), n_bytes=(\d+), priority=0,actions=NORMAL")
    deadline = time.monotonic() + 10
    while True:
        ours, ref = _rules_text(fresh.ours, fresh.br), _rules_text(fresh.ref, fresh.br)
        counted = normal.fullmatch(ours[0]) if len(ours) == 1 else None
        if (ours == ref and counted and int(counted.group(1)) >= 6) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert ours == ref and counted and int(counted.group(1)) >= 6, (ours, ref)
    assert int(counted.group(2)) == 46 * int(counted.group(1))  # 46-byte frames
    # coverage: OVS's layout on both; ovsbpfd's counters (named as OVS's) saw the
    # events at once (OVS's threads add theirs to the totals only now and then)
    for switch in (fresh.ours, fresh.ref):
        assert COVERAGE_SHOW.fullmatch(switch.appctl("coverage/show").stdout)
    shown = fresh.ours.appctl("coverage/show").stdout
    for name in ("mac_learning_learned", "xlate_actions", "dpif_flow_put", "dpif_execute"):
        assert re.search(rf"^{name} .* total: [1-9]", shown, re.M), (name, shown)
        assert int(fresh.ours.appctl("coverage/read-counter", name).stdout) > 0
    stats = fresh.same("fdb/stats-show", "BR")
    assert "Total number of learned MAC entries     : 2\n" in stats
    # (ovs-vswitchd may learn again at once from counters it pushes after the
    # flush, so from here on only ovsbpfd is checked)
    fresh.same("fdb/flush", "BR")
    assert fresh.ours.appctl("fdb/show", fresh.br).stdout == " port  VLAN  MAC                Age\n"
    stats = fresh.ours.appctl("fdb/stats-show", fresh.br).stdout
    assert "table: 0/8192\n" in stats and "learned MAC entries     : 2\n" in stats
    assert "expired MAC entries     : 0\n" in stats  # a flush is not counted as expiry


def test_del_flows_purge_and_upcall_show(fresh: Pair) -> None:
    d, br = fresh.ours, fresh.br
    fresh.traffic()
    assert len(_settled_flows(d, br)) == 2
    shown = d.appctl("upcall/show").stdout
    assert UPCALL_SHOW.fullmatch(shown) and "(current 2)" in shown and "(keys 2)" in shown
    assert re.search(r"\(limit [1-9]\d*\)", shown), shown

    def normal_packets() -> int:
        out = d.ofctl("dump-flows", br).stdout
        return int(re.search(r"n_packets=(\d+).*actions=NORMAL", out).group(1))

    before = normal_packets()
    fresh.traffic()  # these stay in BPF: counted once pulled from the datapath
    assert d.appctl("revalidator/purge").stdout == ""
    assert d.appctl("dpctl/dump-flows").stdout == ""
    assert normal_packets() >= before + 6  # purged flows' last counters reached the rule
    assert "(keys 0)" in d.appctl("upcall/show").stdout

    fresh.traffic()
    assert len(_settled_flows(d, br)) == 2
    assert d.appctl("dpctl/del-flows", "ovs-system").stdout == ""
    assert d.appctl("dpctl/dump-flows").stdout == ""
    fresh.traffic()  # upcalls again and installs the flows again
    assert len(_settled_flows(d, br)) == 2
    assert d.appctl("dpctl/dump-dps").stdout == "bpf@ovs-system\n"
    assert d.appctl("dpctl/show", "-s", "bpf@ovs-system").stdout.startswith("bpf@ovs-system:\n")
