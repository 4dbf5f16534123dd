"""Status records the vswitch writes back into the database, and their texts.

The error strings are the ones Open vSwitch writes into ``Interface.error``,
because people and scripts grep for them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ovsbpfd.netdev import NetdevInfo

OFPP_LOCAL_DB = 65534  # how the DB spells OFPP_LOCAL (OpenFlow 1.0 numbering)
OFPP_LOCAL = 0xFFFFFFFE

#: Interface.statistics keys, from the kernel's IFLA_STATS64 names
STAT_KEYS = {
    "rx_packets": "rx_packets",
    "rx_bytes": "rx_bytes",
    "tx_packets": "tx_packets",
    "tx_bytes": "tx_bytes",
    "rx_dropped": "rx_dropped",
    "tx_dropped": "tx_dropped",
    "rx_errors": "rx_errors",
    "tx_errors": "tx_errors",
    "collisions": "collisions",
    "rx_crc_err": "rx_crc_errors",
    "rx_frame_err": "rx_frame_errors",
    "rx_over_err": "rx_over_errors",
    "rx_missed_errors": "rx_missed_errors",
}


def no_such_device(name: str) -> str:
    return f"could not open network device {name} ({os.strerror(19)})"


def could_not_add(name: str, err: int) -> str:
    return f"could not add network device {name} to ofproto ({os.strerror(err)})"


def unsupported_type(name: str) -> str:
    return f"{name}: unsupported interface type"


def db_ofport(ofport: int) -> int:
    """OpenFlow port number as the DB stores it (LOCAL is 65534)."""
    return OFPP_LOCAL_DB if ofport == OFPP_LOCAL else ofport


@dataclass
class InterfaceStatus:
    """What ``Interface`` columns should say about one interface."""

    ofport: int = -1
    error: str | None = None
    ifindex: int | None = None
    mac_in_use: str | None = None
    admin_state: str | None = None  # "up" / "down"
    link_state: str | None = None
    mtu: int | None = None
    statistics: dict[str, int] = field(default_factory=dict)

    @classmethod
    def failed(cls, error: str) -> InterfaceStatus:
        return cls(ofport=-1, error=error)

    @classmethod
    def attached(cls, ofport: int, visible: NetdevInfo, counted: NetdevInfo) -> InterfaceStatus:
        """``visible`` is the device users see; ``counted`` the one the switch uses."""
        return cls(
            ofport=db_ofport(ofport),
            ifindex=visible.ifindex,
            mac_in_use=visible.mac_str,
            admin_state="up" if visible.admin_up else "down",
            link_state="up" if visible.link_up else "down",
            mtu=visible.mtu,
            statistics=statistics_of(counted),
        )


def statistics_of(info: NetdevInfo) -> dict[str, int]:
    return {key: int(info.stats[src]) for key, src in STAT_KEYS.items() if src in info.stats}


@dataclass
class ControllerStatus:
    is_connected: bool = False
    role: str | None = None
    status: dict[str, str] = field(default_factory=dict)
