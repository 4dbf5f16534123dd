"""The test-harness protocol every dpif provider's conformance run implements.

A harness owns one datapath and a way to put frames into it and see what
comes out, so the same conformance test code drives the dummy provider (its
inject/take_output API) and the bpf provider (veth pairs).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import Protocol

from ovsbpfd.dpif.dummy import DummyDpif
from ovsbpfd.dpif.provider import Dpif
from ovsbpfd.dpif.types import Upcall

Attach = Callable[[str, int], int]


class DatapathHarness(Protocol):
    dpif: Dpif

    def add_port(self, name: str, attach: Attach | None = None) -> int:
        """Create a port (device) called ``name``; return its datapath port number.

        ``attach(name, ifindex) -> port_no`` attaches the device to the
        datapath; by default ``dpif.port_add``.  A bridge test passes its own
        so that the bridge, not the test, owns the port.
        """
        ...

    def send(self, port_no: int, frame: bytes) -> None:
        """Make ``frame`` arrive at the datapath on ``port_no``."""
        ...

    def recv(self, port_no: int, timeout: float = 1.0) -> list[bytes]:
        """Frames the datapath sent out of ``port_no`` since the last recv.

        Waits up to ``timeout`` for at least one; [] if none came.
        """
        ...

    def close(self) -> None:
        """Remove everything the harness created."""
        ...


class DummyHarness:
    """The harness over ``DummyDpif``: synchronous, so recv never waits."""

    def __init__(self) -> None:
        self.dpif = DummyDpif()
        self._next_ifindex = 1000

    def add_port(self, name: str, attach: Attach | None = None) -> int:
        self._next_ifindex += 1
        return (attach or self.dpif.port_add)(name, self._next_ifindex)

    def send(self, port_no: int, frame: bytes) -> None:
        if any(p.port_no == port_no for p in self.dpif.port_list()):
            self.dpif.inject(port_no, frame)
        # else: the "device" is no longer attached, so the datapath never sees it

    def recv(self, port_no: int, timeout: float = 1.0) -> list[bytes]:
        return self.dpif.take_output(port_no)

    def close(self) -> None:
        self.dpif.destroy()


# ------------------------------------------------------------ test helpers
# Generic over providers: a real datapath is asynchronous and its ports may
# carry stray frames the kernel sends (IPv6 ND and the like), so helpers look
# for the expected frame rather than demanding an exact list.


def eventually(check: Callable[[], bool], timeout: float = 2.0, interval: float = 0.02) -> bool:
    """True as soon as ``check()`` is; False if it never is within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def collect(
    harness: DatapathHarness, port_no: int, want: bytes, count: int = 1, timeout: float = 2.0
) -> int:
    """How many copies of ``want`` came out of ``port_no`` (stops at ``count``)."""
    return len(collect_many(harness, port_no, [want] * count, timeout))


def collect_many(
    harness: DatapathHarness, port_no: int, wanted: list[bytes], timeout: float = 2.0
) -> list[bytes]:
    """The frames of ``wanted`` that came out of ``port_no``, in arrival order.

    Stops once all have come, when ``timeout`` runs out, or when a recv comes
    back empty (it already waited).  Other frames are ignored.
    """
    deadline = time.monotonic() + timeout
    missing = list(wanted)
    got: list[bytes] = []
    while missing:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        frames = harness.recv(port_no, timeout=remaining)
        if not frames:
            break
        for frame in frames:
            if frame in missing:
                missing.remove(frame)
                got.append(frame)
    return got


def upcall_fd_readable(dpif: Dpif, timeout: float = 0.0) -> bool:
    readable, _, _ = select.select([dpif.upcall_fd()], [], [], timeout)
    return bool(readable)


def gather_upcalls(
    dpif: Dpif, match: Callable[[Upcall], bool], count: int = 1, timeout: float = 2.0
) -> list[Upcall]:
    """Drain upcalls until ``count`` satisfy ``match`` (or time runs out); return those."""
    deadline = time.monotonic() + timeout
    found: list[Upcall] = []
    while len(found) < count:
        found += [u for u in dpif.recv() if match(u)]
        remaining = deadline - time.monotonic()
        if len(found) >= count or remaining <= 0:
            break
        upcall_fd_readable(dpif, min(remaining, 0.1))
    return found


def upcalls_for(dpif: Dpif, frame: bytes, count: int = 1, timeout: float = 2.0) -> list[Upcall]:
    """The upcalls carrying ``frame`` (whole, or its truncated prefix)."""
    def carries(upcall: Upcall) -> bool:
        return upcall.packet_len == len(frame) and frame.startswith(upcall.packet)

    return gather_upcalls(dpif, carries, count, timeout)
