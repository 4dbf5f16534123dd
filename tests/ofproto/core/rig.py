"""A bridge over the dummy datapath, driven synchronously by tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from ovsbpfd.dpif.dummy import DummyDpif
from ovsbpfd.ofproto.backer import DatapathBacker
from ovsbpfd.ofproto.bridge import OfprotoBridge
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import (
    OFPFC_DELETE,
    OFPTT_ALL,
    FlowMod,
    FlowRemoved,
    OfPort,
    PacketIn,
)


def host_mac(n: int) -> bytes:
    return bytes([0x02, 0, 0, 0, 0, n])


@dataclass
class Recorder:
    """A SwitchListener that keeps every asynchronous message."""

    packet_ins: list[PacketIn] = field(default_factory=list)
    removed: list[FlowRemoved] = field(default_factory=list)
    port_events: list[tuple[int, OfPort]] = field(default_factory=list)

    def packet_in(self, msg: PacketIn) -> None:
        self.packet_ins.append(msg)

    def flow_removed(self, msg: FlowRemoved) -> None:
        self.removed.append(msg)

    def port_status(self, reason: int, port: OfPort) -> None:
        self.port_events.append((reason, port))


class Rig:
    def __init__(self, n_ports: int = 3, name: str = "br0",
                 backer: DatapathBacker | None = None) -> None:
        self.dpif = backer.dpif if backer is not None else DummyDpif()
        self.backer = backer or DatapathBacker(self.dpif)
        self.bridge = OfprotoBridge(self.backer, name, 0x1234)
        self.events = Recorder()
        self.bridge.add_listener(self.events)
        self.ofports = [self.bridge.port_add(f"{name}p{i}", 100 * len(self.backer.bridges) + i,
                                             host_mac(0x80 + i)) for i in range(1, n_ports + 1)]

    def dp_port(self, ofport: int) -> int:
        return self.bridge.port_map[ofport].dp_port

    def send(self, ofport: int, frame: bytes) -> None:
        """Receive ``frame`` on ``ofport`` and let userspace finish its work."""
        self.dpif.inject(self.dp_port(ofport), frame)
        self.settle()

    def settle(self) -> None:
        while self.backer.handle_upcalls():
            pass
        self.backer.run_revalidation()

    def received(self, ofport: int) -> list[bytes]:
        return self.dpif.take_output(self.dp_port(ofport))

    def all_received(self) -> dict[int, list[bytes]]:
        return {p: self.received(p) for p in self.ofports}

    def misses(self) -> int:
        return self.dpif.stats().n_missed

    def close(self) -> None:
        self.bridge.destroy()
        self.dpif.close()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def count_translations(rig: Rig) -> list[int]:
    """Wrap the revalidator's translator; the list's one item counts its
    calls from now on (how many datapath flows a change re-translated)."""
    calls = [0]
    inner = rig.backer.revalidator.translate

    def counting(key):
        calls[0] += 1
        return inner(key)

    rig.backer.revalidator.translate = counting
    return calls


@contextlib.contextmanager
def empty_rig(n_ports: int = 3) -> Iterator[Rig]:
    """A rig whose flow tables start empty (no NORMAL rule), closed afterwards."""
    rig = Rig(n_ports)
    try:
        rig.bridge.flow_mod(FlowMod(OFPFC_DELETE, Match(), table_id=OFPTT_ALL))
        yield rig
    finally:
        rig.close()
