"""The walking switch end to end: ovs-vsctl builds it, BPF forwards, OpenFlow sees it.

Real daemon, real ovs-vsctl/ovs-ofctl/ovs-appctl, two namespaces on veths.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.daemon_proc import Daemon, bridge_with_hosts
from tests.system.netns import Host, run, unique_name

pytestmark = pytest.mark.system


class Switch:
    def __init__(self, daemon: Daemon, bridge: str, h1: Host, h2: Host) -> None:
        self.daemon = daemon
        self.bridge = bridge
        self.h1 = h1
        self.h2 = h2

    def upcalls(self) -> int:
        """Datapath misses so far, from `dpctl/show`'s lookups line."""
        out = self.daemon.appctl("dpctl/show").stdout
        match = re.search(r"missed:(\d+)", out)
        assert match, out
        return int(match.group(1))

    def normal_flow_packets(self) -> int:
        out = self.daemon.ofctl("dump-flows", self.bridge).stdout
        for line in out.splitlines():
            if "actions=NORMAL" in line and "priority=0" in line:
                return int(re.search(r"n_packets=(\d+)", line).group(1))
        raise AssertionError(f"no NORMAL flow in:\n{out}")

    def ofport(self, host: Host) -> int:
        return int(self.daemon.vsctl("get", "Interface", host.port, "ofport").stdout)


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[Switch]:
    daemon = Daemon(tmp_path)
    hosts = [
        Host(unique_name("obfns", 1), unique_name("obfv", 1), "10.200.0.1"),
        Host(unique_name("obfns", 2), unique_name("obfv", 2), "10.200.0.2"),
    ]
    bridge = unique_name("obfbr", 0)
    with bridge_with_hosts(daemon, hosts, bridge):
        yield Switch(daemon, bridge, *hosts)


def test_ports_attached_with_bpf_filter(switch: Switch) -> None:
    for host in (switch.h1, switch.h2):
        filters = run("tc", "filter", "show", "dev", host.port, "ingress").stdout
        assert "bpf" in filters, filters
        assert switch.ofport(host) >= 1


def test_standalone_bridge_forwards_and_flows_stay_in_bpf(switch: Switch) -> None:
    assert switch.h1.ping(switch.h2.ip_addr, count=3), switch.daemon.log_text()
    out = switch.daemon.ofctl("dump-flows", switch.bridge).stdout
    flows = [line for line in out.splitlines() if "actions=" in line]
    assert len(flows) == 1 and "priority=0" in flows[0] and "actions=NORMAL" in flows[0], out

    server = switch.h2.popen("iperf3", "-s", "-1", "-B", switch.h2.ip_addr)
    try:
        time.sleep(0.5)
        before = switch.upcalls()
        result = switch.h1.exec("iperf3", "-c", switch.h2.ip_addr, "-t", "10", "-J",
                                timeout=40)
        after = switch.upcalls()
    finally:
        server.kill()
        server.wait()
    report = json.loads(result.stdout)
    gbps = report["end"]["sum_received"]["bits_per_second"] / 1e9
    print(f"iperf3 through ovsbpfd: {gbps:.2f} Gbit/s, upcalls during the run: {after - before}")
    assert gbps > 0.1
    assert after - before < 10, f"{after - before} upcalls during a 10 s iperf3 run"


def test_normal_flow_counters_grow(switch: Switch) -> None:
    assert switch.h1.ping(switch.h2.ip_addr, count=1)
    first = switch.normal_flow_packets()
    assert switch.h1.ping(switch.h2.ip_addr, count=5)
    deadline = time.monotonic() + 3
    while switch.normal_flow_packets() < first + 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert switch.normal_flow_packets() >= first + 10


def test_drop_flow_stops_pings_and_deleting_it_restores_them(switch: Switch) -> None:
    assert switch.ofport(switch.h1) == 1
    assert switch.h1.ping(switch.h2.ip_addr, count=2)
    switch.daemon.ofctl("add-flow", switch.bridge, "priority=10,in_port=1,actions=drop")
    time.sleep(1.0)
    assert not switch.h1.ping(switch.h2.ip_addr, count=3, wait=0.5)
    switch.daemon.ofctl("del-flows", switch.bridge, "in_port=1")
    time.sleep(1.0)
    assert switch.h1.ping(switch.h2.ip_addr, count=2)


def test_dpctl_dump_flows_shows_megaflows(switch: Switch) -> None:
    assert switch.h1.ping(switch.h2.ip_addr, count=2)
    out = switch.daemon.appctl("dpctl/dump-flows").stdout
    assert "in_port(" in out and "actions:" in out, out
    fdb = switch.daemon.appctl("fdb/show", switch.bridge).stdout
    assert switch.h1.mac() in fdb and switch.h2.mac() in fdb, fdb


def move_into_namespace(device: str, ns: str, ip_addr: str) -> Host:
    """Put an ovsbpfd-made device into a fresh namespace with an address there."""
    run("ip", "netns", "add", ns)
    host = Host(ns, device, ip_addr)
    run("ip", "link", "set", device, "netns", ns)
    host.exec("ip", "addr", "add", f"{ip_addr}/24", "dev", device)
    host.exec("ip", "link", "set", device, "up")
    return host


def test_internal_and_local_ports_are_addressable_hosts(switch: Switch) -> None:
    internal = unique_name("obfi", 1)
    switch.daemon.vsctl("add-port", switch.bridge, internal, "--", "set", "Interface", internal,
                        "type=internal")
    moved: list[tuple[str, str]] = []
    try:
        for device, ns, addr in ((internal, unique_name("obfins", 1), "10.200.0.3"),
                                 (switch.bridge, unique_name("obflns", 1), "10.200.0.4")):
            move_into_namespace(device, ns, addr)
            moved.append((device, ns))
            assert Host(ns, device, addr).ping(switch.h1.ip_addr, count=2), (
                f"{device}: {switch.daemon.log_text()}")
        fdb = switch.daemon.appctl("fdb/show", switch.bridge).stdout
        assert "LOCAL" in fdb, fdb
    finally:
        for device, ns in moved:  # hand the devices back so the bridge can delete them
            run("ip", "-n", ns, "link", "set", device, "netns", "1", check=False)
            run("ip", "netns", "del", ns, check=False)
