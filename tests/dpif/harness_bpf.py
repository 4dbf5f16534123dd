"""The test harness over ``BpfDpif``: every port is a veth pair.

The datapath end of each pair stays in the root namespace (TC redirects only
reach devices of the program's own namespace) under a unique name; the peer,
the "host" side, lives alone in a namespace of its own, so that the kernel of
one host never short-cuts traffic to another.  IPv6 is off on both ends, so
the kernel sends no frames of its own.  ``send`` writes a frame on the peer
(it then arrives at the datapath's ingress), ``recv`` reads what the
datapath sent out of the port, tags restored from PACKET_AUXDATA.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import select
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ovsbpfd.dpif.bpf.provider import BpfDpif
from tests.dpif.harness import Attach

SOL_PACKET = 263
PACKET_AUXDATA = 8
SO_RCVBUFFORCE = 33  # socket(7): SO_RCVBUF past rmem_max, as root
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
ETH_P_ALL = 0x0003
CLONE_NEWNET = 0x40000000
_AUXDATA = struct.Struct("=IIIHHHH")
_libc = ctypes.CDLL(None, use_errno=True)


def run(*args: str) -> str:
    """Run a command, raising with its stderr when it fails."""
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(netns: str) -> Iterator[None]:
    """Run the block with this thread in ``netns`` (sockets made there stay there)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def restore_vlan(frame: bytes, ancdata: list[tuple[int, int, bytes]]) -> bytes:
    """Put back the VLAN tag the kernel moved from the frame into auxdata."""
    for level, kind, data in ancdata:
        if level != SOL_PACKET or kind != PACKET_AUXDATA or len(data) < _AUXDATA.size:
            continue
        status, _, _, _, _, tci, tpid = _AUXDATA.unpack_from(data)
        if status & TP_STATUS_VLAN_VALID:
            if not status & TP_STATUS_VLAN_TPID_VALID:
                tpid = 0x8100
            return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
    return frame


@dataclass
class HarnessPort:
    port_no: int
    dev: str  # datapath end, root namespace
    peer: str  # host end, inside netns
    netns: str
    sock: socket.socket  # AF_PACKET on the peer


class BpfHarness:
    """DatapathHarness (tests/dpif/harness.py) over real veth pairs."""

    def __init__(self, pin_root: str) -> None:
        self.tag = secrets.token_hex(2)
        self._ports: dict[int, HarnessPort] = {}
        self._counter = 0
        self.dpif = BpfDpif(pin_root=pin_root)

    # ------------------------------------------------------------ ports
    def add_port(self, name: str, attach: Attach | None = None,
                 mtu: int | None = None) -> int:
        self._counter += 1
        base = f"ob{self.tag}{self._counter}"
        dev, peer, netns = base + "d", base + "h", base
        run("ip", "netns", "add", netns)
        try:
            self._make_veth(dev, peer, netns)
            if mtu is not None:
                run("ip", "link", "set", dev, "mtu", str(mtu))
                run("ip", "-n", netns, "link", "set", peer, "mtu", str(mtu))
            with in_netns(netns):
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
                # Room for a burst of a few thousand small frames even when the
                # reader is slow (the default ~212 KB holds about 270).
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
                sock.bind((peer, ETH_P_ALL))
            sock.setblocking(False)
            port_no = (attach or self.dpif.port_add)(name, socket.if_nametoindex(dev))
        except BaseException:
            subprocess.run(["ip", "link", "del", dev], capture_output=True)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
            raise
        self._ports[port_no] = HarnessPort(port_no, dev, peer, netns, sock)
        return port_no

    @staticmethod
    def _make_veth(dev: str, peer: str, netns: str) -> None:
        run("ip", "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", netns)
        with open(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6", "w") as knob:
            knob.write("1")
        run("ip", "netns", "exec", netns, "sysctl", "-qw",
            f"net.ipv6.conf.{peer}.disable_ipv6=1", "net.ipv6.conf.lo.disable_ipv6=1")
        run("ip", "link", "set", dev, "up")
        run("ip", "-n", netns, "link", "set", peer, "up")
        run("ip", "-n", netns, "link", "set", "lo", "up")

    def port(self, port_no: int) -> HarnessPort:
        return self._ports[port_no]

    # ------------------------------------------------------------ frames
    def send(self, port_no: int, frame: bytes) -> None:
        self._ports[port_no].sock.send(frame)

    def recv(self, port_no: int, timeout: float = 1.0) -> list[bytes]:
        """Frames that came out of the port: wait up to ``timeout`` for the
        first, then keep taking frames until the port has been quiet 50 ms."""
        sock = self._ports[port_no].sock
        frames: list[bytes] = []
        deadline = time.monotonic() + timeout
        while True:
            wait = deadline - time.monotonic() if not frames else 0.05
            readable, _, _ = select.select([sock], [], [], max(wait, 0.0))
            if not readable:
                return frames
            frames += self._drain(sock)

    @staticmethod
    def _drain(sock: socket.socket) -> list[bytes]:
        frames = []
        while True:
            try:
                data, ancdata, _, addr = sock.recvmsg(65536, socket.CMSG_SPACE(_AUXDATA.size))
            except BlockingIOError:
                return frames
            if addr[2] != PACKET_OUTGOING:
                frames.append(restore_vlan(data, ancdata))

    # ------------------------------------------------------------ teardown
    def close(self) -> None:
        """Remove ports, devices, namespaces and pins, even after a failure."""
        try:
            self.dpif.destroy()
        finally:
            for port in self._ports.values():
                port.sock.close()
                subprocess.run(["ip", "link", "del", port.dev], capture_output=True)
                subprocess.run(["ip", "netns", "del", port.netns], capture_output=True)
            self._ports.clear()


@contextlib.contextmanager
def bpf_harness() -> Iterator[BpfHarness]:
    """A BpfHarness on a fresh pin root, removed with everything else afterwards."""
    pin_root = f"/sys/fs/bpf/ovsbpfd-test-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        harness = BpfHarness(pin_root)
        try:
            yield harness
        finally:
            harness.close()
    finally:
        shutil.rmtree(pin_root, ignore_errors=True)
