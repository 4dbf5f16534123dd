"""Transmit frames from userspace on a datapath port's device (AF_PACKET)."""

from __future__ import annotations

import socket

from ovsbpfd.dpif.packet import finish_checksums


class PacketSender:
    """One raw AF_PACKET socket that can send on any device by ifindex.

    Frames caught at a veth's ingress often carry a CHECKSUM_PARTIAL L4
    checksum (only the pseudo-header sum); they are finished before sending,
    since nothing below AF_PACKET would do it.
    """

    def __init__(self) -> None:
        self._sock: socket.socket | None = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)

    def send(self, ifindex: int, frame: bytes) -> bool:
        """Send ``frame`` out of ``ifindex``; False if the device refused it."""
        if self._sock is None:
            return False
        try:
            name = socket.if_indextoname(ifindex)
            self._sock.sendto(finish_checksums(frame), (name, 0))
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
