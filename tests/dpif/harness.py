"""The test-harness protocol every dpif provider's conformance run implements.

A harness owns one datapath and a way to put frames into it and see what
comes out, so the same conformance test code drives the dummy provider (its
inject/take_output API) and the bpf provider (veth pairs).
"""

from __future__ import annotations

from typing import Protocol

from ovsbpfd.dpif.dummy import DummyDpif
from ovsbpfd.dpif.provider import Dpif


class DatapathHarness(Protocol):
    dpif: Dpif

    def add_port(self, name: str) -> int:
        """Create a port (device) called ``name``; return its datapath port number."""
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

    def add_port(self, name: str) -> int:
        self._next_ifindex += 1
        return self.dpif.port_add(name, self._next_ifindex)

    def send(self, port_no: int, frame: bytes) -> None:
        self.dpif.inject(port_no, frame)

    def recv(self, port_no: int, timeout: float = 1.0) -> list[bytes]:
        return self.dpif.take_output(port_no)

    def close(self) -> None:
        self.dpif.destroy()
