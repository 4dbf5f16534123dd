"""A minimal SwitchCore for exercising the front end before the real core.

It stores rules in a list and answers stats; it records packet_outs and
barriers so tests can see what the front end called.
"""

from __future__ import annotations

import asyncio

from ovsbpfd.ofproto.actions import OFPG_ALL, OFPP_LOCAL, Action
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.ofp_errors import (
    OFPBRC_BAD_PORT,
    OFPET_BAD_REQUEST,
    OFPET_GROUP_MOD_FAILED,
    OFPGMFC_GROUP_EXISTS,
)
from ovsbpfd.ofproto.types import (
    OFPFC_ADD,
    OFPFC_DELETE,
    OFPFC_DELETE_STRICT,
    OFPFC_MODIFY,
    OFPFC_MODIFY_STRICT,
    OFPGC_ADD,
    OFPGC_DELETE,
    OFPM_ALL,
    OFPMC_DELETE,
    OFPTT_ALL,
    FlowMod,
    FlowStatsEntry,
    FlowStatsRequest,
    GroupMod,
    GroupStats,
    MeterMod,
    MeterStats,
    OfpError,
    OfPort,
    OfPortStats,
    TableStats,
)


def _covers(general: Match, specific: Match) -> bool:
    """Whether every packet matching ``specific`` matches ``general``."""
    for name, (value, _mask) in general.items():
        gmask = general.mask_of(name)
        if specific.mask_of(name) & gmask != gmask:
            return False
        if specific[name][0] & gmask != value:
            return False
    return True


class StubCore:
    def __init__(self, name: str = "br0", n_ports: int = 2) -> None:
        self.name = name
        self.datapath_id = 0x0000AABBCCDDEEFF
        self.n_tables = 254
        self.rules: list[FlowMod] = []
        self.listeners: list = []
        self.packet_outs: list[tuple[int, tuple[Action, ...], bytes]] = []
        self.barriers = 0
        self.barrier_delay = 0.0
        self.flow_mods_seen = 0
        self._ports = [OfPort(i, f"p{i}", bytes([2, 0, 0, 0, 0, i])) for i in
                       range(1, n_ports + 1)]
        self._ports.append(OfPort(OFPP_LOCAL, name, bytes([2, 0, 0, 0, 0, 0xFE])))

    def ports(self) -> list[OfPort]:
        return sorted(self._ports, key=lambda p: p.port_no)

    def port_stats(self, port_no: int) -> list[OfPortStats]:
        numbers = [p.port_no for p in self.ports()]
        if port_no == 0xFFFFFFFF:
            return [OfPortStats(n, rx_packets=n) for n in numbers]
        if port_no not in numbers:
            raise OfpError(OFPET_BAD_REQUEST, OFPBRC_BAD_PORT)
        return [OfPortStats(port_no, rx_packets=port_no)]

    def check_flow_mod(self, fm: FlowMod) -> None:
        """The stub accepts every well-formed FLOW_MOD."""

    def flow_mod_batch(self, fms: list[FlowMod]) -> None:
        """All or none: the stub's only refusal is none, so apply in order."""
        for fm in fms:
            self.flow_mod(fm)

    def flow_mod(self, fm: FlowMod) -> None:
        self.flow_mods_seen += 1
        strict = fm.command in (OFPFC_MODIFY_STRICT, OFPFC_DELETE_STRICT)

        def selected(rule: FlowMod) -> bool:
            if fm.table_id != OFPTT_ALL and rule.table_id != fm.table_id:
                return False
            if (rule.cookie ^ fm.cookie) & fm.cookie_mask:
                return False
            if strict:
                return rule.match == fm.match and rule.priority == fm.priority
            return _covers(fm.match, rule.match)

        if fm.command == OFPFC_ADD:
            self.rules = [r for r in self.rules if not (
                r.table_id == fm.table_id and r.match == fm.match
                and r.priority == fm.priority)]
            self.rules.append(fm)
        elif fm.command in (OFPFC_MODIFY, OFPFC_MODIFY_STRICT):
            for r in self.rules:
                if selected(r):
                    r.instructions = fm.instructions
        elif fm.command in (OFPFC_DELETE, OFPFC_DELETE_STRICT):
            self.rules = [r for r in self.rules if not selected(r)]

    def flow_stats(self, req: FlowStatsRequest) -> list[FlowStatsEntry]:
        out = []
        for r in self.rules:
            if req.table_id != OFPTT_ALL and r.table_id != req.table_id:
                continue
            if not _covers(req.match, r.match):
                continue
            out.append(FlowStatsEntry(r.table_id, 1, 500, r.priority, r.idle_timeout,
                                      r.hard_timeout, r.flags, r.cookie, 3, 180, r.match,
                                      r.instructions))
        return out

    def table_stats(self) -> list[TableStats]:
        return [TableStats(t, sum(r.table_id == t for r in self.rules), 10, 4)
                for t in range(self.n_tables)]

    def packet_out(self, in_port: int, actions: tuple[Action, ...], data: bytes) -> None:
        self.packet_outs.append((in_port, actions, data))

    async def barrier(self) -> None:
        if self.barrier_delay:
            await asyncio.sleep(self.barrier_delay)
        self.barriers += 1

    def add_listener(self, listener) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener) -> None:
        self.listeners.remove(listener)


class StubGroupMeterCore(StubCore):
    """A StubCore that also keeps groups and meters (GroupMeterCore)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.groups: dict[int, GroupMod] = {}
        self.meters: dict[int, MeterMod] = {}

    def group_mod(self, gm: GroupMod) -> None:
        if gm.command == OFPGC_ADD:
            if gm.group_id in self.groups:
                raise OfpError(OFPET_GROUP_MOD_FAILED, OFPGMFC_GROUP_EXISTS)
            self.groups[gm.group_id] = gm
        elif gm.command == OFPGC_DELETE:
            if gm.group_id == OFPG_ALL:
                self.groups.clear()
            self.groups.pop(gm.group_id, None)
        else:
            self.groups[gm.group_id] = gm

    def group_desc(self) -> list[GroupMod]:
        return [self.groups[g] for g in sorted(self.groups)]

    def group_stats(self, group_id: int) -> list[GroupStats]:
        ids = sorted(self.groups) if group_id == OFPG_ALL else [group_id]
        return [GroupStats(g, 0, 5, 300, 1, 0, tuple((2, 120) for _ in self.groups[g].buckets))
                for g in ids if g in self.groups]

    def meter_mod(self, mm: MeterMod) -> None:
        if mm.command == OFPMC_DELETE:
            self.meters.pop(mm.meter_id, None)
        else:
            self.meters[mm.meter_id] = mm

    def meter_config(self, meter_id: int) -> list[MeterMod]:
        ids = sorted(self.meters) if meter_id == OFPM_ALL else [meter_id]
        return [self.meters[m] for m in ids if m in self.meters]

    def meter_stats(self, meter_id: int) -> list[MeterStats]:
        return [MeterStats(mm.meter_id, 1, 10, 1000, 2, 0, tuple((1, 64) for _ in mm.bands))
                for mm in self.meter_config(meter_id)]
