"""The seam between the OpenFlow front end and the switch core.

``SwitchCore`` is what a connection handler may call on a bridge;
``SwitchListener`` is what the core calls back for asynchronous messages.
The connection manager implements the listener and fans events out to every
connection whose role and async config want them.
"""

from __future__ import annotations

from typing import Protocol

from ovsbpfd.ofproto.actions import Action
from ovsbpfd.ofproto.types import (
    FlowMod,
    FlowRemoved,
    FlowStatsEntry,
    FlowStatsRequest,
    GroupMod,
    GroupStats,
    MeterMod,
    MeterStats,
    OfPort,
    OfPortStats,
    PacketIn,
    TableStats,
)


class SwitchListener(Protocol):
    def packet_in(self, msg: PacketIn) -> None: ...

    def flow_removed(self, msg: FlowRemoved) -> None: ...

    def port_status(self, reason: int, port: OfPort) -> None: ...


class SwitchCore(Protocol):
    name: str
    datapath_id: int
    n_tables: int

    def ports(self) -> list[OfPort]:
        """Every port including LOCAL (OFPP_LOCAL), sorted by number."""
        ...

    def port_stats(self, port_no: int) -> list[OfPortStats]:
        """Stats of one port, or of all when ``port_no`` is OFPP_ANY.

        Raises OfpError(OFPET_BAD_REQUEST, OFPBRC_BAD_PORT) if unknown."""
        ...

    def flow_mod(self, fm: FlowMod) -> None:
        """Apply a FLOW_MOD (raises OfpError on rejection, changing nothing)."""
        ...

    def check_flow_mod(self, fm: FlowMod) -> None:
        """Raise the OfpError ``flow_mod(fm)`` would raise for the message
        itself (match, actions, groups, meters), without applying it."""
        ...

    def flow_mod_batch(self, fms: list[FlowMod]) -> None:
        """Apply all of ``fms`` in order or none (a bundle commit); a refusal
        raises BatchFailed naming the refused message."""
        ...

    def flow_stats(self, req: FlowStatsRequest) -> list[FlowStatsEntry]: ...

    def table_stats(self) -> list[TableStats]: ...

    def packet_out(self, in_port: int, actions: tuple[Action, ...], data: bytes) -> None:
        """Run ``data`` through ``actions`` as if received on ``in_port``."""
        ...

    async def barrier(self) -> None:
        """Return once every earlier change has reached the datapath."""
        ...

    def add_listener(self, listener: SwitchListener) -> None: ...

    def remove_listener(self, listener: SwitchListener) -> None: ...


class GroupMeterCore(Protocol):
    """Optional part of a core (added for issue 4).  The front end calls these
    only on a core that has them; otherwise GROUP_MOD and METER_MOD are
    refused and group/meter multiparts report none."""

    def group_mod(self, gm: GroupMod) -> None:
        """Apply a GROUP_MOD (raises OfpError, changing nothing, on rejection)."""
        ...

    def group_desc(self) -> list[GroupMod]: ...

    def group_stats(self, group_id: int) -> list[GroupStats]:
        """One group, or all when ``group_id`` is OFPG_ALL."""
        ...

    def meter_mod(self, mm: MeterMod) -> None: ...

    def meter_config(self, meter_id: int) -> list[MeterMod]:
        """One meter, or all when ``meter_id`` is OFPM_ALL."""
        ...

    def meter_stats(self, meter_id: int) -> list[MeterStats]: ...
