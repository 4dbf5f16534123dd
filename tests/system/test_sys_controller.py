"""A real controller drives ovsbpfd: os-ken's osken-manager with our learning switch.

osken-manager (os-ken 3.1.1) listens on a free loopback port; the bridge gets
``set-controller tcp:127.0.0.1:PORT``; three namespace hosts ping each other
through the BPF datapath, which works only if the controller's PACKET_OUT and
FLOW_MOD messages do.  Then the controller is stopped: in fail mode secure
new conversations stay dead, in standalone the bridge fails open to NORMAL
switching, as Open vSwitch does.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.daemon_proc import Daemon
from tests.system.netns import Host, unique_name

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("osken-manager") is None,
                       reason="needs os-ken 3.1.1 (osken-manager)"),
]

APP = Path(__file__).resolve().parents[2] / "contrib" / "osken_apps" / "learning_switch.py"
# ovsbpfd fails open three 5 s inactivity-probe intervals after the last
# controller went away (as ovs-vswitchd with the default probe interval).
FAIL_OPEN_AFTER = 15.0


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Controller:
    """One osken-manager process running the learning switch, started and ended by pid."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_loopback_port()
        self.log = workdir / "osken.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Controller:
        self.proc = subprocess.Popen(
            ["osken-manager", "--ofp-listen-host", "127.0.0.1",
             "--ofp-tcp-listen-port", str(self.port), "--log-file", str(self.log), str(APP)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"osken-manager exited:\n{self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"osken-manager did not listen:\n{self.log_text()}")

    @property
    def target(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        try:
            return self.log.read_text()
        except OSError:
            return "(no log)"

    def count(self, word: str) -> int:
        return sum(1 for line in self.log_text().splitlines() if f"{word} dpid=" in line)


class Network:
    def __init__(self, daemon: Daemon, bridge: str, hosts: list[Host],
                 controller: Controller) -> None:
        self.daemon = daemon
        self.bridge = bridge
        self.hosts = hosts
        self.controller = controller

    def is_connected(self) -> bool:
        out = self.daemon.vsctl("--columns=is_connected", "--bare", "list", "Controller").stdout
        return out.strip() == "true"

    def wait_connected(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_connected():
            assert time.monotonic() < deadline, (
                f"controller never connected\n{self.daemon.log_text()}\n"
                f"{self.controller.log_text()}")
            time.sleep(0.3)

    def reaches(self, src: Host, dst: Host, tries: int = 3) -> bool:
        return any(src.ping(dst.ip_addr, count=2, wait=1.0) for _ in range(tries))

    def flows(self) -> str:
        return self.daemon.ofctl("dump-flows", self.bridge).stdout


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    daemon = Daemon(tmp_path / "ovsbpfd")
    controller = Controller(tmp_path)
    bridge = unique_name("obkbr", 0)
    hosts = [Host(unique_name("obkns", i), unique_name("obkv", i), f"10.201.0.{i}")
             for i in (1, 2, 3)]
    try:
        controller.start()
        daemon.start()
        for host in hosts:
            host.create()
        daemon.vsctl("add-br", bridge)
        for host in hosts:
            daemon.vsctl("add-port", bridge, host.port)
        yield Network(daemon, bridge, hosts, controller)
    finally:
        try:
            daemon.stop(cleanup=True)
        finally:
            controller.stop()
            for host in hosts:
                host.close()


def _drive_with_controller(net: Network, fail_mode: str) -> None:
    net.daemon.vsctl("set-fail-mode", net.bridge, fail_mode)
    net.daemon.vsctl("set-controller", net.bridge, net.controller.target)
    net.wait_connected()
    h1, h2, h3 = net.hosts
    assert net.reaches(h1, h2), f"{net.flows()}\n{net.controller.log_text()}"
    assert net.reaches(h2, h3), f"{net.flows()}\n{net.controller.log_text()}"
    for word in ("FEATURES", "PACKET_IN", "FLOW_MOD", "PACKET_OUT"):
        assert net.controller.count(word) > 0, f"no {word} in\n{net.controller.log_text()}"
    flows = net.flows()
    assert "priority=0 actions=CONTROLLER:65535" in flows, flows
    assert "priority=10," in flows and "idle_timeout=60" in flows, flows


def test_learning_switch_controller_drives_forwarding(network: Network) -> None:
    _drive_with_controller(network, "secure")
    h1, _, h3 = network.hosts
    # Installed flows carry later packets without asking the controller again.
    packet_ins = network.controller.count("PACKET_IN")
    assert h1.ping(network.hosts[1].ip_addr, count=5, wait=1.0)
    assert network.controller.count("PACKET_IN") <= packet_ins + 2
    assert network.reaches(h1, h3)


def test_secure_loses_new_connectivity_without_controller(network: Network) -> None:
    _drive_with_controller(network, "secure")
    h1, _, h3 = network.hosts
    network.controller.stop()
    deadline = time.monotonic() + 10
    while network.is_connected():
        assert time.monotonic() < deadline, "is_connected stayed true"
        time.sleep(0.3)
    # h1 and h3 never talked: with nobody to answer PACKET_INs they cannot,
    # not now and not after the time a standalone bridge would fail open.
    assert not h1.ping(h3.ip_addr, count=2, wait=0.5)
    time.sleep(FAIL_OPEN_AFTER + 1)
    assert not h1.ping(h3.ip_addr, count=2, wait=0.5)
    assert "NORMAL" not in network.flows()


def test_standalone_fails_open_without_controller(network: Network) -> None:
    _drive_with_controller(network, "standalone")
    h1, _, h3 = network.hosts
    network.controller.stop()
    deadline = time.monotonic() + FAIL_OPEN_AFTER + 15
    while not h1.ping(h3.ip_addr, count=1, wait=1.0):
        assert time.monotonic() < deadline, \
            f"standalone bridge never failed open\n{network.daemon.log_text()}"
    assert network.reaches(h3, network.hosts[1])


def test_controller_reconnects_after_restart(network: Network) -> None:
    _drive_with_controller(network, "secure")
    features = network.controller.count("FEATURES")
    network.controller.stop()
    network.controller.start()  # same port: ovsbpfd's backoff loop finds it again
    network.wait_connected(timeout=30)
    deadline = time.monotonic() + 10
    while network.controller.count("FEATURES") <= features:
        assert time.monotonic() < deadline, network.controller.log_text()
        time.sleep(0.3)
    h1, _, h3 = network.hosts
    assert network.reaches(h1, h3)


def test_controller_row_settings(network: Network) -> None:
    """Controller columns as ovs-vsctl sets them: all accepted; with
    enable_async_messages=false the controller hears no PACKET_IN, so in
    fail mode secure nothing gets through, until the setting goes back."""
    net = network
    net.daemon.vsctl("set-fail-mode", net.bridge, "secure")
    net.daemon.vsctl("set-controller", net.bridge, net.controller.target)
    net.daemon.vsctl("set", "Controller", net.bridge, "inactivity_probe=3000",
                     "max_backoff=2000", "connection_mode=out-of-band",
                     "enable_async_messages=false", "controller_rate_limit=1000",
                     "controller_burst_limit=50")
    net.wait_connected()
    status = net.daemon.vsctl("--bare", "--columns=status", "list", "Controller").stdout
    assert "state=ACTIVE" in status and "sec_since_connect=" in status, status
    role = net.daemon.vsctl("--bare", "--columns=role", "list", "Controller").stdout
    assert role.strip() == "other"
    h1, h2, _ = net.hosts
    assert not h1.ping(h2.ip_addr, count=2, wait=0.5)
    assert net.controller.count("PACKET_IN") == 0
    net.daemon.vsctl("set", "Controller", net.bridge, "enable_async_messages=true")
    assert net.reaches(h1, h2), net.controller.log_text()
    assert net.controller.count("PACKET_IN") > 0
