"""Forwarding benchmark: iperf3 TCP through ovsbpfd beside a Linux bridge.

Both runs use the same two namespaces in one invocation, so the ratio is
meaningful on a noisy machine.  Run as root from the repository root:

    python3 -m bench.bench_forwarding [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.system.daemon_proc import Daemon
from tests.system.netns import Host, run, unique_name


def iperf(client: Host, server: Host, seconds: int) -> float:
    """TCP throughput client -> server in Gbit/s."""
    proc = server.popen("iperf3", "-s", "-1", "-B", server.ip_addr)
    try:
        time.sleep(0.5)
        out = client.exec("iperf3", "-c", server.ip_addr, "-t", str(seconds), "-J",
                          timeout=seconds + 30).stdout
    finally:
        proc.kill()
        proc.wait()
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def linux_bridge_run(hosts: list[Host], seconds: int) -> float:
    bridge = unique_name("obbr", 0)
    run("ip", "link", "add", bridge, "type", "bridge")
    try:
        run("ip", "link", "set", bridge, "up")
        for host in hosts:
            run("ip", "link", "set", host.port, "master", bridge)
        assert hosts[0].ping(hosts[1].ip_addr, count=2), "linux bridge: no ping"
        return iperf(hosts[0], hosts[1], seconds)
    finally:
        for host in hosts:
            run("ip", "link", "set", host.port, "nomaster", check=False)
        run("ip", "link", "del", bridge, check=False)


def ovsbpfd_run(daemon: Daemon, hosts: list[Host], seconds: int) -> tuple[float, int]:
    # Not br0: the bridge's LOCAL port is a device of that name, and the
    # machine may have a br0 of its own.
    bridge = unique_name("obobr", 2)
    daemon.vsctl("--may-exist", "add-br", bridge)
    for host in hosts:
        daemon.vsctl("--may-exist", "add-port", bridge, host.port)
    try:
        assert hosts[0].ping(hosts[1].ip_addr, count=2), "ovsbpfd: no ping"
        before = upcalls(daemon)
        gbps = iperf(hosts[0], hosts[1], seconds)
        return gbps, upcalls(daemon) - before
    finally:
        for host in hosts:
            daemon.vsctl("--if-exists", "del-port", bridge, host.port)


def upcalls(daemon: Daemon) -> int:
    out = daemon.appctl("dpctl/show").stdout
    return int(re.search(r"missed:(\d+)", out).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    hosts = [
        Host(unique_name("obbns", 1), unique_name("obbv", 1), "10.201.0.1"),
        Host(unique_name("obbns", 2), unique_name("obbv", 2), "10.201.0.2"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp))
        try:
            for host in hosts:
                host.create()
            daemon.start()
            bridge, ours, ups = [], [], []
            for round_no in range(1, args.rounds + 1):
                bridge.append(linux_bridge_run(hosts, args.seconds))
                gbps, n = ovsbpfd_run(daemon, hosts, args.seconds)
                ours.append(gbps)
                ups.append(n)
                print(f"round {round_no}/{args.rounds}: linux bridge {bridge[-1]:.2f} Gbit/s, "
                      f"ovsbpfd {gbps:.2f} Gbit/s, upcalls {n}", flush=True)
            lb, ob = statistics.median(bridge), statistics.median(ours)
            print(f"median: linux bridge {lb:.2f} Gbit/s, ovsbpfd {ob:.2f} Gbit/s, "
                  f"ratio {ob / lb:.2f}, upcalls per {args.seconds} s run {max(ups)} (max)")
        finally:
            daemon.stop(cleanup=True)
            for host in hosts:
                host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
