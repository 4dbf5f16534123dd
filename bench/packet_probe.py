"""Send and catch raw frames between two interfaces of one namespace.

Run inside the namespace that holds both veth peers of a switch's ports
(``ip netns exec NS python3 bench/packet_probe.py ...``); it prints one JSON
line.  Times are CLOCK_MONOTONIC, which every namespace shares, so the caller
can compare them with its own ``time.monotonic()``.

- ``first``: send one frame every ``--interval`` s on ``--tx`` and report the
  time the first one arrived on ``--rx`` (after printing ``READY``).
- ``burst``: send ``--count`` frames, each to a different IPv4 destination
  (each one a new datapath flow), and report how many arrived and when the
  first and last did.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
MARKER = b"ovsbpfd-bench"
SRC_MAC = bytes.fromhex("02aabbccdd01")
DST_MAC = bytes.fromhex("02aabbccdd02")


def ipv4_of(index: int) -> bytes:
    return bytes([10, (index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF])


def frame(dst_index: int, seq: int) -> bytes:
    """An Ethernet/IPv4/UDP frame to 10.x.y.z = ``dst_index`` carrying ``seq``."""
    payload = MARKER + struct.pack("!I", seq)
    udp = struct.pack("!HHHH", 40000, 50000, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                         bytes([192, 168, 250, 1]), ipv4_of(dst_index))
    checksum = _checksum(header)
    header = header[:10] + struct.pack("!H", checksum) + header[12:]
    return DST_MAC + SRC_MAC + b"\x08\x00" + header + udp


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def open_socket(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    return sock


def is_ours(data: bytes) -> bool:
    return data[6:12] == SRC_MAC and MARKER in data


def first_arrival(tx: socket.socket, rx: socket.socket, interval: float,
                  timeout: float) -> dict:
    print("READY", flush=True)
    packet = frame(1, 0)
    deadline = time.monotonic() + timeout
    next_send = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_send:
            tx.send(packet)
            next_send = now + interval
        ready, _, _ = select.select([rx], [], [], max(0.0, next_send - time.monotonic()))
        if ready:
            data = rx.recv(65535)
            if is_ours(data):
                return {"first": time.monotonic()}
    return {"first": None}


def burst(tx: socket.socket, rx: socket.socket, count: int, settle: float) -> dict:
    """Send every frame as fast as possible, reading arrivals in between;
    then keep reading until nothing came for ``settle`` seconds."""
    frames = [frame(i, i) for i in range(count)]
    arrivals: list[float] = []
    started = time.monotonic()
    for packet in frames:
        tx.send(packet)
        _drain(rx, arrivals, 0.0)
    sent_at = time.monotonic()
    while len(arrivals) < count and _drain(rx, arrivals, settle):
        pass
    return {"sent": count, "received": len(arrivals), "send_seconds": sent_at - started,
            "first": arrivals[0] if arrivals else None,
            "last": arrivals[-1] if arrivals else None}


def _drain(rx: socket.socket, arrivals: list[float], wait: float) -> bool:
    """Read what has arrived (waiting up to ``wait`` for the first); False if nothing."""
    got = False
    while select.select([rx], [], [], wait)[0]:
        if is_ours(rx.recv(65535)):
            arrivals.append(time.monotonic())
        got, wait = True, 0.0
    return got


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["first", "burst"])
    parser.add_argument("--tx", required=True)
    parser.add_argument("--rx", required=True)
    parser.add_argument("--interval", type=float, default=0.0005)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=1.0)
    args = parser.parse_args()
    tx, rx = open_socket(args.tx), open_socket(args.rx)
    if args.mode == "first":
        result = first_arrival(tx, rx, args.interval, args.timeout)
    else:
        result = burst(tx, rx, args.count, args.settle)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
