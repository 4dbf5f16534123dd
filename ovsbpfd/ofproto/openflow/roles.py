"""Controller role arbitration across one switch's connections (spec 6.3.5).

At most one master; a new master turns the old one into a slave; MASTER and
SLAVE requests carry a generation id that must not go backwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ovsbpfd.ofproto.ofp_errors import (
    OFPET_ROLE_REQUEST_FAILED,
    OFPRRFC_BAD_ROLE,
    OFPRRFC_STALE,
)
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.types import OfpError


class HasRole(Protocol):
    role: int


class RoleArbiter:
    def __init__(self) -> None:
        self.generation_id: int | None = None

    def request(self, conn: HasRole, role: int, generation_id: int,
                peers: Iterable[HasRole]) -> tuple[int, int]:
        """Apply a ROLE_REQUEST; returns (role, generation_id) for the reply."""
        if role > c.OFPCR_ROLE_SLAVE:
            raise OfpError(OFPET_ROLE_REQUEST_FAILED, OFPRRFC_BAD_ROLE, f"role {role}")
        if role in (c.OFPCR_ROLE_MASTER, c.OFPCR_ROLE_SLAVE):
            if self.generation_id is not None:
                distance = (generation_id - self.generation_id) & 0xFFFFFFFFFFFFFFFF
                if distance >= 1 << 63:  # negative as a signed 64-bit difference
                    raise OfpError(OFPET_ROLE_REQUEST_FAILED, OFPRRFC_STALE,
                                   f"generation {generation_id} is stale")
            self.generation_id = generation_id
        if role != c.OFPCR_ROLE_NOCHANGE:
            if role == c.OFPCR_ROLE_MASTER:
                for peer in peers:
                    if peer is not conn and peer.role == c.OFPCR_ROLE_MASTER:
                        peer.role = c.OFPCR_ROLE_SLAVE
            conn.role = role
        return conn.role, self.generation_id or 0
