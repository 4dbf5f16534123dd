"""Restarting the daemon does not stop forwarding: ports and flows are taken over.

Real daemon on the bpf datapath, two namespace hosts, a continuous ping
through the bridge while the daemon is stopped with SIGTERM and started
again.  The pinned datapath forwards meanwhile; the new process adopts the
same datapath ports and the installed megaflows, so no packet is lost, no
flow upcalls again, ofports stay and our tc filter never leaves the ports.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.system.daemon_proc import Daemon, bridge_with_hosts
from tests.system.netns import Host, run, unique_name

pytestmark = pytest.mark.system


@dataclass
class Setup:
    daemon: Daemon
    bridge: str
    h1: Host
    h2: Host

    def get(self, table: str, record: str, column: str) -> str:
        return self.daemon.vsctl("get", table, record, column).stdout.strip()

    def missed(self) -> int:
        out = self.daemon.appctl("dpctl/show").stdout
        match = re.search(r"missed:(\d+)", out)
        assert match, out
        return int(match.group(1))

    def datapath_ports(self) -> list[str]:
        out = self.daemon.appctl("dpctl/show").stdout
        return sorted(line.strip() for line in out.splitlines() if line.strip().startswith("port "))

    def flow_packets(self, src: Host, dst: Host) -> int:
        """Packets counted on the datapath flow from ``src``'s to ``dst``'s MAC."""
        out = self.daemon.appctl("dpctl/dump-flows").stdout
        for line in out.splitlines():
            if f"src={src.mac()}" in line and f"dst={dst.mac()}" in line:
                return int(re.search(r"packets:(\d+)", line).group(1))
        raise AssertionError(f"no flow {src.mac()} -> {dst.mac()} in:\n{out}")

    def restart(self) -> float:
        """SIGTERM the daemon and start it again; return how long it took."""
        began = time.monotonic()
        assert self.daemon.proc is not None
        self.daemon.proc.send_signal(signal.SIGTERM)
        assert self.daemon.proc.wait(timeout=20) == 0
        self.daemon.start()
        return time.monotonic() - began


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    daemon = Daemon(tmp_path, datapath="bpf")
    hosts = [Host(unique_name("rsns", i), unique_name("rsv", i), f"10.251.0.{i}")
             for i in (1, 2)]
    bridge = unique_name("rsbr", 0)
    try:
        with bridge_with_hosts(daemon, hosts, bridge):
            yield Setup(daemon, bridge, *hosts)
    finally:
        for dev in (bridge, unique_name("rsi", 1)):
            run("ip", "link", "del", dev, check=False)


class FilterWatch:
    """Samples our ports' tc ingress filters from a thread until stopped."""

    def __init__(self, devices: list[str]) -> None:
        self.devices = devices
        self.samples = 0
        self.missing: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for dev in self.devices:
                out = run("tc", "filter", "show", "dev", dev, "ingress", check=False).stdout
                if "bpf" not in out:
                    self.missing.append(dev)
            self.samples += 1
            time.sleep(0.02)

    def __enter__(self) -> FilterWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def ping_summary(text: str) -> tuple[int, int]:
    match = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    assert match, text
    return int(match.group(1)), int(match.group(2))


def test_restart_under_ping_loses_nothing_and_adopts_flows(setup: Setup) -> None:
    d, h1, h2 = setup.daemon, setup.h1, setup.h2
    internal = unique_name("rsi", 1)
    d.vsctl("add-port", setup.bridge, internal, "--", "set", "Interface", internal, "type=internal")
    assert h1.ping(h2.ip_addr, count=2), d.log_text()
    ofports = [setup.get("Interface", h.port, "ofport") for h in (h1, h2)]
    dp_ports = setup.datapath_ports()
    assert len(dp_ports) == 4, dp_ports  # LOCAL, the internal port and both hosts
    pinger = h1.popen("ping", "-i", "0.05", "-W", "1", h2.ip_addr)
    try:
        with FilterWatch([h1.port, h2.port]) as watch:
            time.sleep(1.0)
            missed_before = setup.missed()
            packets_before = setup.flow_packets(h1, h2)
            took = setup.restart()
            # the new process has taken over by the time ovs-vsctl sees its ofports
            deadline = time.monotonic() + 10
            while [setup.get("Interface", h.port, "ofport") for h in (h1, h2)] != ofports:
                assert time.monotonic() < deadline, d.log_text()
                time.sleep(0.1)
            time.sleep(1.5)
    finally:
        pinger.send_signal(signal.SIGINT)
        try:
            out, _err = pinger.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pinger.kill()
            out, _err = pinger.communicate()
    sent, received = ping_summary(out)
    missed_after = setup.missed()
    print(f"restart took {took:.2f}s; ping {received}/{sent}; "
          f"upcalls across the restart: {missed_after - missed_before}")
    assert sent > 40, out
    assert sent - received <= 1, f"{sent - received} of {sent} pings lost:\n{d.log_text()}"
    assert missed_after - missed_before < 10
    assert watch.samples > 10 and watch.missing == [], watch.missing
    # the same megaflow went on counting (adopted, never deleted and re-created)
    assert setup.flow_packets(h1, h2) > packets_before + 20
    assert setup.datapath_ports() == dp_ports
    assert "datapath takeover: " in d.log_text() and " 0 deleted" in d.log_text()
    for host in (h1, h2):
        assert setup.get("Interface", host.port, "error") == "[]"
    # learning survived too: the unicast flows still go to one port, and new
    # traffic still works after the takeover
    fdb = d.appctl("fdb/show", setup.bridge).stdout
    assert h1.mac() in fdb and h2.mac() in fdb, fdb
    assert h2.ping(h1.ip_addr, count=2)


def dp_port_of(show: str, name: str) -> int:
    match = re.search(rf"port (\d+): {re.escape(name)}\b", show)
    assert match, show
    return int(match.group(1))


def test_restart_removes_ports_whose_device_went_away(setup: Setup) -> None:
    d, h1, h2 = setup.daemon, setup.h1, setup.h2
    assert h1.ping(h2.ip_addr, count=2), d.log_text()
    gone = dp_port_of(d.appctl("dpctl/show").stdout, h2.port)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=20) == 0
    h2.close()  # the device goes while no daemon runs
    d.start()
    deadline = time.monotonic() + 10
    while "No such device" not in setup.get("Interface", h2.port, "error"):
        assert time.monotonic() < deadline, d.log_text()
        time.sleep(0.1)
    show = d.appctl("dpctl/show").stdout
    assert h2.port not in show and dp_port_of(show, h1.port) > 0, show
    # no flow comes from or goes to the port that is gone
    for line in d.appctl("dpctl/dump-flows").stdout.splitlines():
        actions = line.rsplit("actions:", 1)[1].split(",")
        assert f"in_port({gone})" not in line and str(gone) not in actions, line
