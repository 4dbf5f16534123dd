"""One OpenFlow flow entry and what it remembers about its life."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ovsbpfd.ofproto.actions import (
    OFPG_ANY,
    OFPP_ANY,
    ActGroup,
    Action,
    ActOutput,
    InstApplyActions,
    Instruction,
    InstWriteActions,
)
from ovsbpfd.ofproto.match import Match


@dataclass(eq=False, slots=True)
class Rule:
    """A flow entry.  Identity matters (revalidation records point at rules),
    so rules compare by object, not by value.  Slots: a table holds many."""

    table_id: int
    priority: int
    match: Match
    instructions: tuple[Instruction, ...] = ()
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0
    created: float = field(default_factory=time.monotonic)
    last_used: float = 0.0
    packet_count: int = 0
    byte_count: int = 0

    def __post_init__(self) -> None:
        if not self.last_used:
            self.last_used = self.created

    def actions(self) -> list[Action]:
        """Every action in apply- and write-actions instructions."""
        found: list[Action] = []
        for inst in self.instructions:
            if isinstance(inst, (InstApplyActions, InstWriteActions)):
                found.extend(inst.actions)
        return found

    def outputs_to(self, port: int) -> bool:
        """True for OFPP_ANY, or if some output action names ``port``."""
        if port == OFPP_ANY:
            return True
        return any(isinstance(a, ActOutput) and a.port == port for a in self.actions())

    def uses_group(self, group_id: int) -> bool:
        if group_id == OFPG_ANY:
            return True
        return any(isinstance(a, ActGroup) and a.group_id == group_id
                   for a in self.actions())

    def cookie_matches(self, cookie: int, cookie_mask: int) -> bool:
        return (self.cookie & cookie_mask) == (cookie & cookie_mask)

    def credit(self, packets: int, nbytes: int, when: float | None = None) -> None:
        """Add datapath traffic to the counters and mark the rule used."""
        if packets <= 0 and nbytes <= 0:
            return
        self.packet_count += packets
        self.byte_count += nbytes
        self.last_used = time.monotonic() if when is None else when

    def duration(self, now: float | None = None) -> tuple[int, int]:
        elapsed = (time.monotonic() if now is None else now) - self.created
        sec = int(elapsed)
        return sec, int((elapsed - sec) * 1e9)

    def is_table_miss(self) -> bool:
        return self.priority == 0 and len(self.match) == 0
