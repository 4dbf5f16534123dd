"""A bridge port as the switch core sees it: both port numbers, state, VLAN mode."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ovsbpfd.ofproto.types import (
    OFPPC_NO_FWD,
    OFPPC_PORT_DOWN,
    OFPPS_LINK_DOWN,
    OFPPS_LIVE,
    OfPort,
)

SPEED_10GB_KBPS = 10_000_000
OFPPF_10GB_FD = 1 << 6
OFPPF_COPPER = 1 << 11


@dataclass
class BridgePort:
    ofport: int
    dp_port: int
    name: str
    hw_addr: bytes
    ifindex: int = 0
    config: int = 0  # OFPPC_* bits
    link_up: bool = True
    vlan_tag: int | None = None  # access port VLAN (Port.tag), None for a trunk
    trunks: frozenset[int] = frozenset()  # empty: trunk of every VLAN
    created: float = field(default_factory=time.monotonic)

    @property
    def state(self) -> int:
        return OFPPS_LIVE if self.link_up and not self.config & OFPPC_PORT_DOWN \
            else OFPPS_LINK_DOWN if not self.link_up else 0

    def can_forward(self) -> bool:
        """May packets be sent out of this port by FLOOD/NORMAL?"""
        return self.link_up and not self.config & (OFPPC_NO_FWD | OFPPC_PORT_DOWN)

    def in_vlan(self, vlan: int) -> bool:
        if self.vlan_tag is not None:
            return self.vlan_tag == vlan
        return not self.trunks or vlan in self.trunks

    def describe(self) -> OfPort:
        features = OFPPF_10GB_FD | OFPPF_COPPER
        return OfPort(self.ofport, self.name, self.hw_addr, config=self.config,
                      state=self.state, curr=features, supported=0, advertised=0,
                      curr_speed=SPEED_10GB_KBPS, max_speed=0)
