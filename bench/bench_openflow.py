"""OpenFlow benchmark: ovsbpfd beside Debian's ovs-vswitchd (userspace datapath).

Both switches run in the same invocation with the same bridge, ports and
flows, and every figure is printed with its ratio (ovsbpfd / ovs-vswitchd):

1. FLOW_MODs per second installing ``--flows`` flows with ``ovs-ofctl
   add-flows FILE``;
2. the same with a raw client: every FLOW_MOD pipelined on the management
   socket, one BARRIER at the end;
3. the time from sending a FLOW_MOD to the first packet it forwards (a
   sender offers one frame every 0.5 ms that no flow forwards yet);
4. upcall translations per second with ``--rules`` rules in the table: a
   burst of frames to distinct IPv4 destinations, each one a datapath miss
   that a rule forwards; every frame that comes out was translated.

Run as root from the repository root (a few minutes with the defaults):

    python3 -m bench.bench_openflow [--flows 100000] [--rules 10000,100000]
                                    [--burst 5000] [--latency-rounds 5]
                                    [--only addflows,raw,latency,upcall]
                                    [--placement free|same|cross]

Note what part 1 measures: ovs-ofctl add-flows (OVS 3.1) sends each FLOW_MOD
followed by a BARRIER and waits for the BARRIER_REPLY before the next, so it
is a request/response round trip per flow, not a pipelined stream.  Its rate
depends on whether the scheduler runs ovs-ofctl and the switch on one CPU
(each round trip is then two context switches) or on two (each direction
then wakes an idle vCPU, tens of microseconds on a VM), and the kernel
decides that differently for the two switches.  ``--placement same`` or
``cross`` pins ovs-ofctl and both switch daemons for part 1 so that the two
are compared in the same situation; ``free`` (the default) leaves it to the
kernel.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ovsbpfd.ofproto.actions import ActOutput, InstApplyActions
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow.messages import (
    BarrierRequest,
    FlowModMessage,
    Hello,
    encode_message,
)
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod
from tests.system.daemon_proc import Daemon
from tests.system.netns import run, unique_name
from tests.system.refvswitchd import RefVswitchd

PROBE = Path(__file__).resolve().parent / "packet_probe.py"
FORWARD_PRIORITY = 100
OFPT_ERROR, OFPT_BARRIER_REPLY = 1, 21
#: what ``--only`` chooses from: the four measurements, in the order they run
PARTS = ("addflows", "raw", "latency", "upcall")
#: ``--placement``: (switch CPU, ovs-ofctl CPU) for part 1, None: unpinned
PLACEMENTS: dict[str, tuple[int, int] | None] = {"free": None, "same": (0, 0),
                                                 "cross": (0, 1)}


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def ipv4(index: int) -> str:
    return f"10.{(index >> 16) & 0xFF}.{(index >> 8) & 0xFF}.{index & 0xFF}"


def flow_text(index: int) -> str:
    return f"priority={FORWARD_PRIORITY},ip,nw_dst={ipv4(index)},actions=output:2"


def flow_mod_bytes(index: int, xid: int) -> bytes:
    match = Match({"eth_type": 0x0800, "ipv4_dst": (0x0A000000 | (index & 0xFFFFFF), None)})
    fm = FlowMod(OFPFC_ADD, match, (InstApplyActions((ActOutput(2),)),),
                 priority=FORWARD_PRIORITY)
    return encode_message(FlowModMessage(fm, xid=xid))


# ---------------------------------------------------------------- switches
@dataclass
class Switch:
    """One switch under test: its ovs-ofctl, management socket and probe namespace."""

    name: str
    ofctl: Callable[..., subprocess.CompletedProcess]
    vsctl: Callable[..., subprocess.CompletedProcess]
    pid: int  # the switch daemon (ovsbpfd, ovs-vswitchd), for --placement
    mgmt: Path
    netns: str
    tx: str  # peer of ofport 1 (in ``netns``)
    rx: str  # peer of ofport 2 (in ``netns``)
    bridge_settings: tuple[str, ...] = ()

    def fresh_bridge(self, bridge: str, ports: list[str]) -> None:
        """The bridge made anew (fail mode secure: no flows) with ofports 1 and 2,
        so that no phase inherits datapath flows or rules from the one before."""
        self.vsctl("--if-exists", "del-br", bridge, timeout=600)
        self.vsctl("add-br", bridge, "--", "set", "Bridge", bridge, "fail_mode=secure",
                   *self.bridge_settings)
        for ofport, port in enumerate(ports, 1):
            self.vsctl("add-port", bridge, port, "--", "set", "Interface", port,
                       f"ofport_request={ofport}")

    def probe(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, str(PROBE), *args,
             "--tx", self.tx, "--rx", self.rx],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def veth_into(netns: str, name: str) -> str:
    """A veth ``name`` in the root namespace whose peer (returned) is up in ``netns``."""
    peer = name + "p"
    run("ip", "link", "add", name, "type", "veth", "peer", "name", peer)
    run("sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1")
    run("ip", "link", "set", peer, "netns", netns)
    run("ip", "netns", "exec", netns, "sysctl", "-qw", f"net.ipv6.conf.{peer}.disable_ipv6=1")
    run("ip", "-n", netns, "link", "set", peer, "up")
    run("ip", "link", "set", name, "up")
    return peer


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Every thread of process ``pid`` on ``cpus``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


@contextlib.contextmanager
def placed(switch: Switch, placement: tuple[int, int] | None) -> Iterator[None]:
    """The switch daemon and the clients this process starts (ovs-ofctl) on
    the CPUs ``placement`` names, for the duration; unpinned again after."""
    if placement is None:
        yield
        return
    everywhere = os.sched_getaffinity(0)
    switch_cpu, client_cpu = placement
    set_affinity(switch.pid, {switch_cpu})
    os.sched_setaffinity(0, {client_cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, everywhere)
        set_affinity(switch.pid, everywhere)


# ---------------------------------------------------------------- measurements
def ofctl_add_flows(switch: Switch, bridge: str, path: Path, count: int,
                    placement: tuple[int, int] | None = None) -> float:
    with placed(switch, placement):
        started = time.monotonic()
        switch.ofctl("add-flows", bridge, str(path), timeout=1800)
        seconds = time.monotonic() - started
    n = flow_count(switch, bridge)
    assert n == count, f"{switch.name}: {n} flows after add-flows of {count}"
    return count / seconds


def flow_count(switch: Switch, bridge: str) -> int:
    out = switch.ofctl("dump-aggregate", bridge).stdout
    return int(out.split("flow_count=")[1].split()[0])


def raw_flow_mods(switch: Switch, bridge: str, messages: list[bytes]) -> float:
    """Pipeline ``messages`` then one BARRIER; FLOW_MODs per second until its reply."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(switch.mgmt))
        sock.sendall(encode_message(Hello()))
        reader = MessageReader(sock)
        reader.next()  # the switch's HELLO
        barrier_xid = 0xFFFFFFF0
        payload = b"".join(messages) + encode_message(BarrierRequest(xid=barrier_xid))
        started = time.monotonic()
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        errors = 0
        while True:
            msg_type, xid, _ = reader.next()
            if msg_type == OFPT_ERROR:
                errors += 1
            if msg_type == OFPT_BARRIER_REPLY and xid == barrier_xid:
                break
        seconds = time.monotonic() - started
        sender.join()
    assert errors == 0, f"{switch.name}: {errors} errors"
    n = flow_count(switch, bridge)
    assert n == len(messages), f"{switch.name}: {n} flows after {len(messages)} FLOW_MODs"
    return len(messages) / seconds


class MessageReader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def next(self) -> tuple[int, int, bytes]:
        while True:
            if len(self.buf) >= 8:
                length = struct.unpack_from("!H", self.buf, 2)[0]
                if len(self.buf) >= length:
                    frame, self.buf = self.buf[:length], self.buf[length:]
                    return frame[1], struct.unpack_from("!I", frame, 4)[0], frame
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("switch closed the connection")
            self.buf += chunk


def flow_mod_latency(switch: Switch, bridge: str, rounds: int) -> list[float]:
    """Seconds from sending a forwarding FLOW_MOD to the first packet out."""
    results = []
    for _ in range(rounds):
        switch.ofctl("del-flows", bridge)  # table miss: everything is dropped (few flows)
        probe = switch.probe("first", "--interval", "0.0005", "--timeout", "10")
        try:
            assert probe.stdout.readline().strip() == "READY"
            time.sleep(0.5)  # the drop is now a datapath flow
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(switch.mgmt))
                sock.sendall(encode_message(Hello()))
                MessageReader(sock).next()
                fm = FlowMod(OFPFC_ADD, Match({"in_port": 1}),
                             (InstApplyActions((ActOutput(2),)),), priority=FORWARD_PRIORITY)
                message = encode_message(FlowModMessage(fm, xid=7))
                sent = time.monotonic()
                sock.sendall(message)
                out, err = probe.communicate(timeout=30)
        finally:
            if probe.poll() is None:
                probe.kill()
                probe.wait()
        first = json.loads(out.strip().splitlines()[-1])["first"]
        assert first is not None, f"{switch.name}: no packet forwarded\n{err}"
        results.append(first - sent)
    return results


def install_rules(switch: Switch, bridge: str, rules: int) -> None:
    messages = [flow_mod_bytes(i, i + 1) for i in range(rules)]
    raw_flow_mods(switch, bridge, messages)


def upcall_rate(switch: Switch, burst: int) -> tuple[float, int]:
    """Frames to ``burst`` distinct destinations; (translations/s, frames out)."""
    probe = switch.probe("burst", "--count", str(burst), "--settle", "2")
    out, err = probe.communicate(timeout=600)
    result = json.loads(out.strip().splitlines()[-1])
    if not result["received"]:
        raise AssertionError(f"{switch.name}: no frame came out\n{err}")
    span = max(result["last"] - result["first"], 1e-6)
    return result["received"] / span, result["received"]


# ---------------------------------------------------------------- main
def ratio(ours: float, ref: float) -> str:
    return f"{ours / ref:6.2f}x" if ref else "   n/a"


def report(rows: list[tuple[str, float, float, str]]) -> None:
    print(f"\n{'measurement':52} {'ovsbpfd':>12} {'ovs-vswitchd':>13} {'ratio':>8}")
    for label, ours, ref, unit in rows:
        print(f"{label:52} {ours:12.1f} {ref:13.1f} {ratio(ours, ref):>8}  {unit}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--rules", default="10000,100000",
                        help="comma-separated rule counts for the upcall test")
    parser.add_argument("--burst", type=int, default=5000, help="frames per upcall burst")
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(PARTS),
                        help="comma-separated parts to run, of: " + ", ".join(PARTS))
    parser.add_argument("--placement", choices=sorted(PLACEMENTS), default="free",
                        help="CPUs of ovs-ofctl and the switch in part 1: left to the "
                             "kernel, one CPU, or two (needs 2 CPUs)")
    args = parser.parse_args()
    parts = {p for p in args.only.split(",") if p}
    if parts - set(PARTS):
        parser.error(f"unknown parts {sorted(parts - set(PARTS))}")
    rule_counts = [int(n) for n in args.rules.split(",") if n]

    workdir = Path(tempfile.mkdtemp(prefix="ovsbpfd-bench-of-"))
    bridge = unique_name("obobr", 0)
    ours_ns = unique_name("obons", 1)
    ports = [unique_name("obop", i) for i in (1, 2)]
    daemon = Daemon(workdir / "ovsbpfd")
    ref = RefVswitchd(workdir / "ovs-vswitchd", unique_name("obons", 2))
    made_ns = made_ports = False
    rows: list[tuple[str, float, float, str]] = []
    try:
        progress("starting ovsbpfd (bpf datapath) and ovs-vswitchd (netdev datapath)")
        daemon.start()
        ref.start()
        run("ip", "netns", "add", ours_ns)
        made_ns = True
        ref.add_bridge(bridge, "fail_mode=secure")
        peers = []
        made_ports = True
        for ofport, port in enumerate(ports, 1):
            peers.append(veth_into(ours_ns, port))
            ref.add_veth_port(bridge, port, ofport)
        switches = [
            Switch("ovsbpfd", daemon.ofctl, daemon.vsctl, daemon.proc.pid,
                   daemon.rundir / f"{bridge}.mgmt", ours_ns, *peers),
            Switch("ovs-vswitchd", ref.ofctl, ref.vsctl, ref.vswitchd.pid,
                   ref.rundir / f"{bridge}.mgmt", ref.netns, ports[0] + "p", ports[1] + "p",
                   ("datapath_type=netdev",)),
        ]

        if "addflows" in parts:
            flows_file = workdir / "flows.txt"
            flows_file.write_text("".join(flow_text(i) + "\n" for i in range(args.flows)))
            rates = []
            for switch in switches:
                switch.fresh_bridge(bridge, ports)
                progress(f"{switch.name}: ovs-ofctl add-flows of {args.flows} flows")
                rates.append(ofctl_add_flows(switch, bridge, flows_file, args.flows,
                                             PLACEMENTS[args.placement]))
                progress(f"{switch.name}: {rates[-1]:.0f} FLOW_MODs/s")
            where = "" if args.placement == "free" else f" ({args.placement} CPU)"
            rows.append((f"ovs-ofctl add-flows, {args.flows} flows{where}", *rates,
                         "FLOW_MOD/s"))

        if "raw" in parts:
            messages = [flow_mod_bytes(i, i + 1) for i in range(args.flows)]
            rates = []
            for switch in switches:
                switch.fresh_bridge(bridge, ports)
                progress(f"{switch.name}: {args.flows} pipelined FLOW_MODs + barrier")
                rates.append(raw_flow_mods(switch, bridge, messages))
                progress(f"{switch.name}: {rates[-1]:.0f} FLOW_MODs/s")
            rows.append((f"raw client, {args.flows} FLOW_MODs + 1 barrier", *rates,
                         "FLOW_MOD/s"))

        medians = []
        for switch in switches if "latency" in parts else ():
            switch.fresh_bridge(bridge, ports)
            progress(f"{switch.name}: FLOW_MOD to first forwarded packet, "
                     f"{args.latency_rounds} rounds")
            samples = flow_mod_latency(switch, bridge, args.latency_rounds)
            medians.append(statistics.median(samples) * 1000)
            progress(f"{switch.name}: " + ", ".join(f"{s * 1000:.1f}" for s in samples) + " ms")
        if medians:
            rows.append(("FLOW_MOD -> first packet forwarded (median)", *medians, "ms"))

        for rules in rule_counts if "upcall" in parts else ():
            rates = []
            for switch in switches:
                switch.fresh_bridge(bridge, ports)
                progress(f"{switch.name}: {rules} rules, burst of {args.burst} new flows")
                install_rules(switch, bridge, rules)
                rate, received = upcall_rate(switch, min(args.burst, rules))
                rates.append(rate)
                progress(f"{switch.name}: {rate:.0f} translations/s "
                         f"({received} of {min(args.burst, rules)} frames out)")
            rows.append((f"upcall translations, {rules} rules", *rates, "upcalls/s"))
    finally:
        progress("cleaning up")
        try:
            daemon.stop(cleanup=True)
        except subprocess.TimeoutExpired:  # busy: end it by pid, as stop() would
            assert daemon.proc is not None
            daemon.proc.kill()
            daemon.proc.wait()
            shutil.rmtree(daemon.pin_root, ignore_errors=True)
            run("ip", "link", "del", bridge, check=False)  # its LOCAL port device
        finally:
            ref.stop()
            if made_ports:
                for port in ports:
                    run("ip", "link", "del", port, check=False)
            if made_ns:
                run("ip", "netns", "del", ours_ns, check=False)
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
