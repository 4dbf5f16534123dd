"""Transmit frames from userspace on a datapath port's device (AF_PACKET)."""

from __future__ import annotations

import ctypes
import errno
import socket
import struct

from ovsbpfd.dpif.packet import finish_checksums

_libc = ctypes.CDLL(None, use_errno=True)
_sendto = _libc.sendto
_sendto.restype = ctypes.c_ssize_t
_sendto.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                    ctypes.c_char_p, ctypes.c_uint32]
# struct sockaddr_ll: family, protocol (0: unused for sending), ifindex, hatype,
# pkttype, halen, addr[8]
_SOCKADDR_LL = struct.Struct("=HHiHBB8s")


class PacketSender:
    """One raw AF_PACKET socket that can send on any device by ifindex.

    Frames go out with sendto() on a ``sockaddr_ll`` holding the ifindex
    itself: Python's own AF_PACKET addresses take a device name, which costs
    two ioctls per frame (index to name, and back).

    Frames caught at a veth's ingress often carry a CHECKSUM_PARTIAL L4
    checksum (only the pseudo-header sum); they are finished before sending,
    since nothing below AF_PACKET would do it.
    """

    def __init__(self) -> None:
        self._sock: socket.socket | None = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._addrs: dict[int, bytes] = {}

    def send(self, ifindex: int, frame: bytes) -> bool:
        """Send ``frame`` out of ``ifindex``; False if the device refused it."""
        if self._sock is None:
            return False
        addr = self._addrs.get(ifindex)
        if addr is None:
            if not 0 < ifindex < 1 << 31:
                return False
            addr = _SOCKADDR_LL.pack(socket.AF_PACKET, 0, ifindex, 0, 0, 0, bytes(8))
            self._addrs[ifindex] = addr
        data = finish_checksums(frame)
        while True:
            sent = _sendto(self._sock.fileno(), data, len(data), 0, addr, len(addr))
            if sent >= 0:
                return True
            if ctypes.get_errno() != errno.EINTR:
                return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
