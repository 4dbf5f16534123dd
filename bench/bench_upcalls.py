"""Upcall throughput of the userspace half, in one process (for profiling).

The same workload as part 4 of ``bench.bench_openflow`` (a burst of frames
to distinct IPv4 destinations, each one a datapath miss that one of
``--rules`` ``ip,nw_dst=X actions=output:2`` rules forwards), but with the
bridge, backer and bpf datapath built in this process instead of a daemon,
so that ``--profile`` can show where the time of an upcall goes.  Figures
that compare with ovs-vswitchd come from ``bench.bench_openflow``; this
driver only compares ovsbpfd with itself.

    python3 -m bench.bench_upcalls [--rules 10000] [--burst 5000] [--rounds 3]
                                   [--profile FILE.prof] [--gc-threshold 20000 20 100]
                                   [--stages module:Class.method,...]

``--stages`` wraps the named methods and prints their call counts and mean
wall time (e.g. ``ovsbpfd.ofproto.bridge:OfprotoBridge.translate_key``);
``--gc-threshold`` sets the collector as the daemon does (``tune_gc``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from ovsbpfd.dpif.bpf.provider import BpfDpif
from ovsbpfd.ofproto.actions import ActOutput, InstApplyActions
from ovsbpfd.ofproto.backer import DatapathBacker
from ovsbpfd.ofproto.bridge import OfprotoBridge
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod

PROBE = Path(__file__).resolve().parent / "packet_probe.py"


def sh(*argv: str, check: bool = True) -> None:
    subprocess.run(argv, check=check, capture_output=True)


class Rig:
    """Two veth pairs whose peers share one namespace, bridged by ovsbpfd."""

    def __init__(self, tag: str) -> None:
        self.netns = f"obu{tag}"
        self.devs = [f"obu{tag}a", f"obu{tag}b"]
        self.pin_root = f"/sys/fs/bpf/ovsbpfd-bench-upcalls-{tag}"
        self.dpif: BpfDpif | None = None

    def __enter__(self) -> Rig:
        sh("ip", "netns", "add", self.netns)
        for dev in self.devs:
            sh("ip", "link", "add", dev, "type", "veth", "peer", "name", dev + "p")
            sh("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            sh("ip", "link", "set", dev + "p", "netns", self.netns)
            sh("ip", "netns", "exec", self.netns, "sysctl", "-qw",
               f"net.ipv6.conf.{dev}p.disable_ipv6=1")
            sh("ip", "-n", self.netns, "link", "set", dev + "p", "up")
            sh("ip", "link", "set", dev, "up")
        self.dpif = BpfDpif(pin_root=self.pin_root)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.dpif is not None:
                self.dpif.destroy()
        finally:
            for dev in self.devs:
                sh("ip", "link", "del", dev, check=False)
            sh("ip", "netns", "del", self.netns, check=False)
            shutil.rmtree(self.pin_root, ignore_errors=True)

    def burst(self, count: int) -> subprocess.Popen:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, str(PROBE), "burst",
             "--count", str(count), "--settle", "1", "--tx", self.devs[0] + "p",
             "--rx", self.devs[1] + "p"], stdout=subprocess.PIPE, text=True)


STAGE_TIMES: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])


def time_stages(targets: list[tuple[object, str]]) -> None:
    """Wrap each ``(class, method)`` to add its wall time to STAGE_TIMES
    (cheaper and less distorting than a profiler)."""
    for owner, name in targets:
        original = getattr(owner, name)
        label = f"{owner.__name__}.{name}"

        def timed(*args, _original=original, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                entry = STAGE_TIMES[_label]
                entry[0] += time.perf_counter() - started
                entry[1] += 1

        setattr(owner, name, timed)


def forwarding_rules(count: int) -> list[FlowMod]:
    return [FlowMod(OFPFC_ADD, Match({"eth_type": 0x0800,
                                      "ipv4_dst": (0x0A000000 | (i & 0xFFFFFF), None)}),
                    (InstApplyActions((ActOutput(2),)),), priority=100)
            for i in range(count)]


async def one_round(rig: Rig, rules: int, burst: int, profiler: cProfile.Profile | None
                    ) -> tuple[float, int, int]:
    assert rig.dpif is not None
    backer = DatapathBacker(rig.dpif)
    bridge = OfprotoBridge(backer, "brbench", 0x1, fail_mode="secure")
    try:
        for ofport, dev in enumerate(rig.devs, 1):
            bridge.port_add(dev, int(Path(f"/sys/class/net/{dev}/ifindex").read_text()),
                            bytes([2, 0, 0, 0, 0x77, ofport]), ofport_request=ofport)
        bridge.flow_mod_batch(forwarding_rules(rules))
        await backer.start()
        if profiler is not None:
            profiler.enable()
        probe = rig.burst(burst)
        out, _ = await asyncio.to_thread(probe.communicate)
        if profiler is not None:
            profiler.disable()
        result = json.loads(out.strip().splitlines()[-1])
        span = max((result["last"] or 0) - (result["first"] or 0), 1e-6)
        return result["received"] / span, result["received"], rig.dpif.stats().n_flows
    finally:
        await backer.stop()
        bridge.destroy()
        rig.dpif.flow_flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="write cProfile stats of the bursts here")
    parser.add_argument("--gc-threshold", type=int, nargs=3, metavar=("G0", "G1", "G2"),
                        help="gc.set_threshold for the run (the daemon's may differ)")
    parser.add_argument("--stages", default="",
                        help="comma-separated module:Class.method to time, e.g. "
                             "ovsbpfd.ofproto.revalidator:Revalidator.install")
    args = parser.parse_args()
    targets = []
    for spec in filter(None, args.stages.split(",")):
        module, _, qualname = spec.partition(":")
        cls_name, _, method = qualname.partition(".")
        targets.append((getattr(__import__(module, fromlist=[cls_name]), cls_name), method))
    time_stages(targets)
    if args.gc_threshold:
        gc.set_threshold(*args.gc_threshold)
    profiler = cProfile.Profile() if args.profile else None
    rates = []
    with Rig(f"{os.getpid() % 100000}") as rig:
        for n in range(args.rounds):
            rate, received, flows = asyncio.run(
                one_round(rig, args.rules, min(args.burst, args.rules), profiler))
            rates.append(rate)
            print(f"round {n + 1}: {rate:.0f} upcalls/s, {received} frames out, "
                  f"{flows} datapath flows", flush=True)
    print(f"median: {statistics.median(rates):.0f} upcalls/s")
    for label, (seconds, calls) in STAGE_TIMES.items():
        print(f"  {label}: {calls} calls, {seconds / max(calls, 1) * 1e6:.1f} us each, "
              f"{seconds:.3f} s")
    if profiler is not None:
        profiler.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
