"""Transmit frames from userspace on a datapath port's device (AF_PACKET)."""

from __future__ import annotations

import ctypes
import errno
import logging
import queue
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ovsbpfd.dpif.packet import finish_checksums

_libc = ctypes.CDLL(None, use_errno=True)
_sendto = _libc.sendto
_sendto.restype = ctypes.c_ssize_t
_sendto.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                    ctypes.c_char_p, ctypes.c_uint32]
# struct sockaddr_ll: family, protocol (0: unused for sending), ifindex, hatype,
# pkttype, halen, addr[8]
_SOCKADDR_LL = struct.Struct("=HHiHBB8s")


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_char_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_char_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_sendmmsg = _libc.sendmmsg
_sendmmsg.restype = ctypes.c_int
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
log = logging.getLogger(__name__)

SENDMMSG_MAX = 64  # frames per sendmmsg call
_MMSGHDR_SIZE = ctypes.sizeof(_Mmsghdr)
_IOVEC_SIZE = ctypes.sizeof(_Iovec)


@dataclass
class _Chunk:
    """Up to SENDMMSG_MAX frames ready for one sendmmsg."""

    msgs: ctypes.Array
    iovs: ctypes.Array
    keep: list[bytes]  # what the iovecs point at
    positions: list[int]  # index in the caller's list of each message


class PacketSender:
    """One raw AF_PACKET socket that can send on any device by ifindex.

    Frames go out with sendto() on a ``sockaddr_ll`` holding the ifindex
    itself: Python's own AF_PACKET addresses take a device name, which costs
    two ioctls per frame (index to name, and back).  ``send_many`` hands a
    whole batch to one sendmmsg(): besides saving the system calls, a
    receiver woken by the first frame is still awake for the next ones.

    Frames caught at a veth's ingress often carry a CHECKSUM_PARTIAL L4
    checksum (only the pseudo-header sum); they are finished before sending,
    since nothing below AF_PACKET would do it.
    """

    def __init__(self) -> None:
        self._sock: socket.socket | None = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._addrs: dict[int, bytes] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._pending = 0  # batches queued and not yet sent

    def _addr(self, ifindex: int) -> bytes | None:
        addr = self._addrs.get(ifindex)
        if addr is None:
            if not 0 < ifindex < 1 << 31:
                return None
            addr = _SOCKADDR_LL.pack(socket.AF_PACKET, 0, ifindex, 0, 0, 0, bytes(8))
            self._addrs[ifindex] = addr
        return addr

    def send(self, ifindex: int, frame: bytes) -> bool:
        """Send ``frame`` out of ``ifindex``; False if the device refused it."""
        self.wait_idle()  # frames queued before this one go first
        addr = self._addr(ifindex)
        if self._sock is None or addr is None:
            return False
        data = finish_checksums(frame)
        while True:
            sent = _sendto(self._sock.fileno(), data, len(data), 0, addr, len(addr))
            if sent >= 0:
                return True
            if ctypes.get_errno() != errno.EINTR:
                return False

    def send_many(self, frames: Sequence[tuple[int, bytes]]) -> list[bool]:
        """Send every ``(ifindex, frame)`` in order; per frame, whether it went.

        Same outcome as ``send`` on each in turn: a frame the kernel refuses
        is reported and the ones after it are still sent."""
        self.wait_idle()  # frames queued before these go first
        results = [False] * len(frames)
        for chunk in self._prepare(frames):
            self._transmit(chunk, results)
        return results

    def send_many_later(self, frames: Sequence[tuple[int, bytes]],
                        on_done: Callable[[list[bool]], None]) -> None:
        """``send_many`` on the sender thread: the frames are made ready
        here, the system calls (most of the cost: the kernel delivers each
        frame to its receiver there and then) run beside the caller's next
        work, the GIL released.  ``on_done(results)`` is called on that
        thread; frames queued earlier go first, and ``send``/``send_many``
        wait for everything queued."""
        if not frames:
            return
        chunks = self._prepare(frames)
        with self._idle:
            self._pending += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ovsbpfd-sender",
                                            daemon=True)
            self._thread.start()
        self._queue.put((chunks, len(frames), on_done))

    def wait_idle(self) -> None:
        """Until every frame queued with ``send_many_later`` has been sent."""
        if not self._pending:
            return
        with self._idle:
            while self._pending:
                self._idle.wait()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            chunks, count, on_done = item
            results = [False] * count
            try:
                for chunk in chunks:
                    self._transmit(chunk, results)
                on_done(results)
            except Exception:  # the callback's failure must not stop sending
                log.exception("sending queued frames failed")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _prepare(self, frames: Sequence[tuple[int, bytes]]) -> list[_Chunk]:
        """The mmsghdr arrays for ``frames``, SENDMMSG_MAX frames each
        (checksums finished; frames for a bad ifindex left out)."""
        chunks = []
        for start in range(0, len(frames), SENDMMSG_MAX):
            chunk = frames[start:start + SENDMMSG_MAX]
            msgs = (_Mmsghdr * len(chunk))()
            iovs = (_Iovec * len(chunk))()
            iov_at = ctypes.addressof(iovs)
            keep = []  # the bytes the pointers refer to, alive until sent
            positions = []
            n = 0
            for i, (ifindex, frame) in enumerate(chunk):
                addr = self._addr(ifindex)
                if addr is None:
                    continue
                data = finish_checksums(frame)
                keep.append(data)
                iov = iovs[n]
                iov.iov_base, iov.iov_len = data, len(data)
                hdr = msgs[n].msg_hdr
                hdr.msg_name, hdr.msg_namelen = addr, len(addr)
                hdr.msg_iov, hdr.msg_iovlen = iov_at + n * _IOVEC_SIZE, 1
                positions.append(start + i)
                n += 1
            chunks.append(_Chunk(msgs, iovs, keep, positions))
        return chunks

    def _transmit(self, chunk: _Chunk, results: list[bool]) -> None:
        sock = self._sock
        if sock is None:
            return
        fd, n, done = sock.fileno(), len(chunk.positions), 0
        base = ctypes.addressof(chunk.msgs)
        while done < n:
            sent = _sendmmsg(fd, base + done * _MMSGHDR_SIZE, n - done, 0)
            if sent > 0:
                for k in range(done, done + sent):
                    results[chunk.positions[k]] = True
                done += sent
            elif ctypes.get_errno() != errno.EINTR:
                done += 1  # this frame was refused: go on after it

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)  # after everything queued: all of it is sent
            self._thread.join()
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
