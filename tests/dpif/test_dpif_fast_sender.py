"""The AF_PACKET sender's thread: frames queued with ``send_many_later`` go
out in order, before anything sent after them, each reported once."""

from __future__ import annotations

import secrets
import select
import socket
import subprocess
import threading
import time

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.bpf.packet_io import PacketSender
from tests.dpif.harness_bpf import ETH_P_ALL, in_netns, run

A, B = bytes([0x02, 0, 0, 0, 0x7A, 1]), bytes([0x02, 0, 0, 0, 0x7A, 2])


def frame(i: int) -> bytes:
    return pb.udp_frame(A, B, "10.8.0.1", "10.8.0.2", 1000 + i % 60000, 9, payload=b"s%05d" % i)


def test_dpif_fast_sender_thread_keeps_order_and_reports_each_frame() -> None:
    tag = secrets.token_hex(2)
    dev, peer, netns = f"obs{tag}d", f"obs{tag}h", f"obs{tag}"
    run("ip", "netns", "add", netns)
    sender = PacketSender()
    try:
        run("ip", "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", netns)
        run("ip", "link", "set", dev, "up")
        run("ip", "-n", netns, "link", "set", peer, "up")
        with in_netns(netns):
            rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            rx.bind((peer, ETH_P_ALL))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        ifindex = socket.if_nametoindex(dev)
        reports: list[tuple[int, list[bool]]] = []
        threads: set[str] = set()

        def on_done(batch: int):
            def record(results: list[bool]) -> None:
                threads.add(threading.current_thread().name)
                reports.append((batch, results))
            return record

        sent = [frame(i) for i in range(700)]
        batches = [sent[i:i + 100] for i in range(0, 600, 100)]
        for n, batch in enumerate(batches):  # one with a device that does not exist
            frames = [(ifindex, f) for f in batch] + ([(0x7FFFFFF0, batch[0])] if n == 2 else [])
            sender.send_many_later(frames, on_done(n))
        assert sender.send_many([(ifindex, f) for f in sent[600:650]]) == [True] * 50
        assert sender.send(ifindex, sent[650])
        sender.send_many_later([(ifindex, f) for f in sent[651:]], on_done(6))
        sender.wait_idle()

        assert [n for n, _ in reports] == list(range(7))
        assert all(all(r) for n, r in reports if n != 2)
        assert reports[2][1] == [True] * 100 + [False]
        assert threads == {"ovsbpfd-sender"}
        got: list[bytes] = []
        deadline = time.monotonic() + 5
        while len(got) < len(sent) and time.monotonic() < deadline:
            if select.select([rx], [], [], 0.2)[0]:
                data = rx.recv(65535)
                if data[6:12] == A:
                    got.append(data)
        assert got == sent, "every frame once, in the order handed over"
        rx.close()
    finally:
        sender.close()
        subprocess.run(["ip", "link", "del", dev], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
