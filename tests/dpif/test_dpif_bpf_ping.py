"""Real hosts (namespaces with kernel IP stacks) talking through the BPF datapath.

ns-a and ns-b are the peers of two harness ports.  With a static pair of
flows everything (ARP, ICMP, a TCP stream) stays in BPF: no upcall at all.
Without flows, a small userspace loop forwards every miss with ``execute``,
which has to finish the partial checksums veth packets carry.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from ovsbpfd.dpif.packet import internet_checksum
from ovsbpfd.dpif.types import FlowKey, Output
from tests.dpif.harness import upcall_fd_readable
from tests.dpif.harness_bpf import BpfHarness, bpf_harness, in_netns, run

IP_A, IP_B = "10.80.0.1", "10.80.0.2"
IN_PORT_ONLY = FlowKey(in_port=0xFFFFFFFF)


@pytest.fixture
def hosts() -> Iterator[tuple[BpfHarness, int, int]]:
    with bpf_harness() as harness:
        a, b = harness.add_port("host-a"), harness.add_port("host-b")
        for port_no, addr in ((a, IP_A), (b, IP_B)):
            port = harness.port(port_no)
            run("ip", "-n", port.netns, "addr", "add", f"{addr}/24", "dev", port.peer)
        yield harness, a, b


def ping(netns: str, dst: str, count: int = 3, timeout: float = 1.0) -> int:
    """Echo replies received for ``count`` ICMP echo requests sent from ``netns``."""
    with in_netns(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    with sock:
        sock.settimeout(timeout)
        ident, replies = os.getpid() & 0xFFFF, 0
        for seq in range(count):
            body = struct.pack("!HH", ident, seq) + b"ovsbpfd-ping"
            header = struct.pack("!BBH", 8, 0, internet_checksum(b"\x08\x00\x00\x00" + body))
            sock.sendto(header + body, (dst, 0))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    packet = sock.recv(2048)
                except TimeoutError:
                    break
                icmp = packet[(packet[0] & 0x0F) * 4:]
                if icmp[0] == 0 and icmp[4:8] == struct.pack("!HH", ident, seq):
                    replies += 1
                    break
    return replies


def test_dpif_bpf_ping_and_tcp_through_static_flows(hosts: tuple[BpfHarness, int, int]) -> None:
    harness, a, b = hosts
    dpif = harness.dpif
    dpif.flow_put(FlowKey(in_port=a), IN_PORT_ONLY, [Output(b)])
    dpif.flow_put(FlowKey(in_port=b), IN_PORT_ONLY, [Output(a)])

    assert ping(harness.port(a).netns, IP_B) == 3
    assert ping(harness.port(b).netns, IP_A) == 3

    server = subprocess.Popen(["ip", "netns", "exec", harness.port(b).netns,
                               "iperf3", "-s", "-1", "-B", IP_B],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        client = subprocess.run(["ip", "netns", "exec", harness.port(a).netns,
                                 "iperf3", "-c", IP_B, "-t", "1", "-J"],
                                capture_output=True, text=True, timeout=20)
    finally:
        server.kill()
        server.wait()
    result = json.loads(client.stdout)
    assert result["end"]["sum_received"]["bytes"] > 1_000_000

    stats = dpif.stats()
    assert stats.n_missed == 0 and stats.n_lost == 0
    assert stats.n_hit > 100
    packets = {f.key.in_port: f.stats.packets for f in dpif.flow_dump()}
    assert packets[a] > 100 and packets[b] > 100
    assert dpif.port_stats(a).rx_packets == packets[a]
    assert dpif.port_stats(b).tx_packets == packets[a]


class ExecuteForwarder:
    """A minimal slow path: every miss on one port is executed out of the other."""

    def __init__(self, harness: BpfHarness, a: int, b: int) -> None:
        self.dpif, self.other = harness.dpif, {a: b, b: a}
        self.executed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ExecuteForwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            upcall_fd_readable(self.dpif, 0.05)
            for upcall in self.dpif.recv():
                if not upcall.truncated:
                    self.dpif.execute(upcall.packet, [Output(self.other[upcall.key.in_port])])
                    self.executed += 1


def test_dpif_bpf_execute_forwards_real_tcp(hosts: tuple[BpfHarness, int, int]) -> None:
    harness, a, b = hosts
    with in_netns(harness.port(b).netns):
        listener = socket.create_server((IP_B, 7070))
    with in_netns(harness.port(a).netns):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with listener, client, ExecuteForwarder(harness, a, b) as forwarder:
        assert ping(harness.port(a).netns, IP_B, count=2) == 2
        listener.settimeout(5)
        client.settimeout(5)
        client.connect((IP_B, 7070))
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            client.sendall(b"hello through execute")
            assert conn.recv(100) == b"hello through execute"
            conn.sendall(b"and back")
            assert client.recv(100) == b"and back"
    assert forwarder.executed >= 8  # ARP, ICMP and the TCP segments, both ways
    assert harness.dpif.stats().n_hit == 0
