"""One OpenFlow switch (a bridge): ports, flow tables, NORMAL, and the
``SwitchCore`` calls the OpenFlow front end makes."""

from __future__ import annotations

import logging
import time

from ovsbpfd import coverage
from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.dpif.types import ETH_TYPE_IP, ETH_TYPE_IPV6, VLAN_TAG_PRESENT, FlowKey
from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.actions import (
    OFPCML_NO_BUFFER,
    OFPG_ALL,
    OFPP_ANY,
    OFPP_CONTROLLER,
    OFPP_LOCAL,
    OFPP_MAX,
    OFPP_NORMAL,
    PORT_NAMES,
    Action,
    ActOutput,
    InstApplyActions,
    InstMeter,
)
from ovsbpfd.ofproto.backer import DatapathBacker
from ovsbpfd.ofproto.fail_open import ControllerMonitor, FailOpen
from ovsbpfd.ofproto.fdb_stats import format_fdb_stats
from ovsbpfd.ofproto.flow_text import format_rule
from ovsbpfd.ofproto.groups import GroupTable
from ovsbpfd.ofproto.mac_learning import MacLearning
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.meters import MeterTable
from ovsbpfd.ofproto.ofp_errors import (
    OFPBRC_BUFFER_UNKNOWN,
    OFPPMFC_BAD_CONFIG,
    OFPPMFC_BAD_HW_ADDR,
    OFPPMFC_BAD_PORT,
)
from ovsbpfd.ofproto.pipeline import FlowModOutcome, Pipeline
from ovsbpfd.ofproto.port import BridgePort
from ovsbpfd.ofproto.reval_index import RuleChange
from ovsbpfd.ofproto.rule import Rule
from ovsbpfd.ofproto.switch_api import SwitchListener
from ovsbpfd.ofproto.types import (
    OFP_NO_BUFFER,
    OFPET_BAD_REQUEST,
    OFPET_PORT_MOD_FAILED,
    OFPFF_SEND_FLOW_REM,
    OFPPC_NO_FWD,
    OFPPC_NO_PACKET_IN,
    OFPPC_NO_RECV,
    OFPPC_PORT_DOWN,
    OFPPR_ADD,
    OFPPR_DELETE,
    OFPPR_MODIFY,
    OFPRR_DELETE,
    OFPRR_GROUP_DELETE,
    OFPTT_ALL,
    FlowMod,
    FlowRemoved,
    FlowStatsEntry,
    FlowStatsRequest,
    GroupMod,
    GroupStats,
    MeterMod,
    MeterStats,
    OfpError,
    OfPort,
    OfPortStats,
    PacketIn,
    TableStats,
)
from ovsbpfd.ofproto.validation import N_TABLES, check_actions, check_flow_mod
from ovsbpfd.ofproto.xlate import PacketInSpec, Xlate, XlateResult

log = logging.getLogger(__name__)

#: OVS's hidden fail-open rule sits above every OpenFlow priority (fail-open.h)
FAIL_OPEN_PRIORITY = 0xF0F0F0
_FLUSH = coverage.counter("ofproto_flush")
_PORT_MOD_CONFIG = OFPPC_PORT_DOWN | OFPPC_NO_RECV | OFPPC_NO_FWD | OFPPC_NO_PACKET_IN
_MIN_FRAME = 14


class OfprotoBridge:
    """Implements ``ovsbpfd.ofproto.switch_api.SwitchCore``."""

    n_tables = N_TABLES

    def __init__(self, backer: DatapathBacker, name: str, datapath_id: int,
                 fail_mode: str = "standalone") -> None:
        self.backer = backer
        self.name = name
        self.datapath_id = datapath_id
        self.fail_mode = fail_mode
        self.pipeline = Pipeline()
        self.mac = MacLearning()
        self.port_map: dict[int, BridgePort] = {}
        self.groups = GroupTable()
        self.meters = MeterTable(backer.dpif)
        self.fail_open = FailOpen()
        # OVS's hidden fail-open NORMAL rule (with its counters) while it is in place
        self.fail_open_rule: Rule | None = None
        self._listeners: list[SwitchListener] = []
        backer.add_bridge(self)
        self._add_default_flows()

    # ------------------------------------------------------------ configuration
    def _add_default_flows(self) -> None:
        """After a flush: ``priority=0 actions=NORMAL`` if standalone without controllers."""
        if self.fail_mode == "standalone" and not self.fail_open.had_controllers:
            self.pipeline.add_rule(
                Rule(0, 0, Match(), (InstApplyActions((ActOutput(OFPP_NORMAL),)),)))

    def flush_flows(self) -> None:
        """Delete every flow and set up the default ones again (OVS's flush)."""
        _FLUSH.inc()
        for rule in self.pipeline.rules():
            self.pipeline.remove_rule(rule)
            self._flow_removed(rule, OFPRR_DELETE)
        self._add_default_flows()
        self._changed()

    def set_fail_mode(self, fail_mode: str) -> None:
        """Without controllers the flows start over; with them, fail-open follows."""
        if fail_mode == self.fail_mode:
            return
        self.fail_mode = fail_mode
        self.fail_open.unsteady()
        if not self.fail_open.had_controllers:
            self.flush_flows()
        self._sync_controllers()

    def watch_controllers(self, monitor: ControllerMonitor | None) -> None:
        """Follow the connection manager's controllers (for the fail modes)."""
        self.fail_open.watch(monitor)
        self._sync_controllers()

    def _sync_controllers(self, now: float | None = None) -> None:
        """Apply controller changes: flush on gaining/losing them, fail-open in or out.

        Every FLOW_MOD comes here first; while the connection manager reports
        no status change the outcome cannot differ, and the full check is skipped."""
        fail_open = self.fail_open
        if fail_open.steady(now):
            return
        if fail_open.controllers_changed():
            self.flush_flows()
        should_open = fail_open.should_be_open(self.fail_mode, now)
        fail_open.checked(self.fail_mode, should_open)
        if should_open == self.fail_open_active:
            return
        if should_open:
            log.warning("%s: no controller connected for %.0f s, failing open", self.name,
                        self.fail_open.fail_after_s)
            self.flush_flows()
        else:
            log.warning("%s: no longer in fail-open mode", self.name)
        self.fail_open_rule = Rule(0, FAIL_OPEN_PRIORITY, Match(), (
            InstApplyActions((ActOutput(OFPP_NORMAL),)),)) if should_open else None
        self._changed()

    @property
    def fail_open_active(self) -> bool:
        return self.fail_open_rule is not None

    def set_datapath_id(self, datapath_id: int) -> None:
        self.datapath_id = datapath_id

    # ------------------------------------------------------------ ports
    def port_add(self, name: str, ifindex: int, hw_addr: bytes,
                 ofport_request: int | None = None, local: bool = False) -> int:
        """Attach the netdev and return its OpenFlow port number."""
        if self.port_by_name(name) is not None:
            raise ValueError(f"{name} is already a port of {self.name}")
        if local:
            ofport = OFPP_LOCAL
            if ofport in self.port_map:
                raise ValueError(f"{self.name} already has a LOCAL port")
        elif ofport_request is not None and 1 <= ofport_request <= OFPP_MAX \
                and ofport_request not in self.port_map:
            ofport = ofport_request
        else:
            ofport = next(n for n in range(1, OFPP_MAX) if n not in self.port_map)
        dp_port = self.backer.attach_port(self, ofport, name, ifindex, internal=local)
        port = BridgePort(ofport, dp_port, name, bytes(hw_addr), ifindex)
        self.port_map[ofport] = port
        self._changed()
        self._port_status(OFPPR_ADD, port.describe())
        return ofport

    def port_del(self, ofport: int) -> None:
        port = self.port_map.pop(ofport, None)
        if port is None:
            raise KeyError(ofport)
        self.backer.detach_port(port.dp_port)
        self.mac.flush_port(ofport)
        self._changed()
        self._port_status(OFPPR_DELETE, port.describe())

    def port_by_name(self, name: str) -> OfPort | None:
        port = self._port_named(name)
        return port.describe() if port is not None else None

    def _port_named(self, name: str) -> BridgePort | None:
        return next((p for p in self.port_map.values() if p.name == name), None)

    def set_port_state(self, ofport: int, link_up: bool, admin_up: bool) -> None:
        port = self.port_map[ofport]
        config = (port.config & ~OFPPC_PORT_DOWN) | (0 if admin_up else OFPPC_PORT_DOWN)
        if port.link_up == link_up and port.config == config:
            return
        port.link_up, port.config = link_up, config
        self._changed()
        self._port_status(OFPPR_MODIFY, port.describe())

    def set_port_vlan(self, ofport: int, tag: int | None, trunks: list[int]) -> None:
        """Access port of VLAN ``tag``, or (tag None) trunk of ``trunks`` (empty: all)."""
        port = self.port_map[ofport]
        new_trunks = frozenset(trunks)
        if port.vlan_tag == tag and port.trunks == new_trunks:
            return
        port.vlan_tag, port.trunks = tag, new_trunks
        self.mac.flush_port(ofport)
        self._changed()

    def port_mod(self, port_no: int, hw_addr: bytes, config: int, mask: int) -> None:
        """OFPT_PORT_MOD: change the port's OFPPC_* bits under ``mask``."""
        port = self.port_map.get(port_no)
        if port is None:
            raise OfpError(OFPET_PORT_MOD_FAILED, OFPPMFC_BAD_PORT, f"no port {port_no}")
        if bytes(hw_addr) != port.hw_addr:
            raise OfpError(OFPET_PORT_MOD_FAILED, OFPPMFC_BAD_HW_ADDR, "hw_addr mismatch")
        if mask & ~_PORT_MOD_CONFIG:
            raise OfpError(OFPET_PORT_MOD_FAILED, OFPPMFC_BAD_CONFIG, f"config mask {mask:#x}")
        new = (port.config & ~mask) | (config & mask)
        if new != port.config:
            port.config = new
            self._changed()
            self._port_status(OFPPR_MODIFY, port.describe())

    def ports(self) -> list[OfPort]:
        return [self.port_map[n].describe() for n in sorted(self.port_map)]

    def port_stats(self, port_no: int) -> list[OfPortStats]:
        if port_no == OFPP_ANY:
            ports = [self.port_map[n] for n in sorted(self.port_map)]
        elif port_no in self.port_map:
            ports = [self.port_map[port_no]]
        else:
            raise OfpError(OFPET_BAD_REQUEST, ec.OFPBRC_BAD_PORT, f"no port {port_no}")
        now = time.monotonic()
        out = []
        for port in ports:
            try:
                dp = self.backer.dpif.port_stats(port.dp_port)
            except Exception:
                log.exception("port stats of %s", port.name)
                continue
            elapsed = now - port.created
            out.append(OfPortStats(port.ofport, dp.rx_packets, dp.tx_packets, dp.rx_bytes,
                                   dp.tx_bytes, dp.rx_dropped, dp.tx_dropped,
                                   duration_sec=int(elapsed),
                                   duration_nsec=int((elapsed % 1) * 1e9)))
        return out

    # ------------------------------------------------------------ flows
    def flow_mod(self, fm: FlowMod) -> None:
        self._sync_controllers()
        self.check_flow_mod(fm)
        self._applied([self.pipeline.apply(fm)])

    def flow_mod_batch(self, fms: list[FlowMod]) -> None:
        """Apply every FLOW_MOD of ``fms`` in order, or none of them (a bundle
        commit).  A refusal undoes the ones applied before it and raises the
        ``BatchFailed`` with the index of the refused one and its OfpError."""
        self._sync_controllers()
        self._applied(self.pipeline.apply_all(list(fms), self.check_flow_mod))

    def check_flow_mod(self, fm: FlowMod) -> None:
        check_flow_mod(fm, self.groups.__contains__, self.meters.__contains__)
        if fm.buffer_id != OFP_NO_BUFFER:
            raise OfpError(OFPET_BAD_REQUEST, OFPBRC_BUFFER_UNKNOWN,
                           "this switch does not buffer packets")

    def _applied(self, outcomes: list[FlowModOutcome]) -> None:
        """After FLOW_MODs: FLOW_REMOVED for deleted rules, revalidation of the
        datapath flows the changed rules may touch."""
        for outcome in outcomes:
            for rule, reason in outcome.removed:
                self._flow_removed(rule, reason)
        if not self.backer.revalidator.records:  # no datapath flow to fix
            self.pipeline.take_reorders()
            return
        changes = [RuleChange(self, r.table_id, r.match, r.priority)
                   for outcome in outcomes for r in outcome.changed_rules()]
        self.backer.revalidate_rules(changes + self._reorders())

    def _reorders(self) -> list[RuleChange]:
        return [RuleChange(self, table_id, None, reorder=(low, high))
                for table_id, low, high in self.pipeline.take_reorders()]

    def flow_stats(self, req: FlowStatsRequest) -> list[FlowStatsEntry]:
        return self.pipeline.flow_stats(req)

    def table_stats(self) -> list[TableStats]:
        return self.pipeline.table_stats()

    def packet_out(self, in_port: int, actions: tuple[Action, ...], data: bytes) -> None:
        if in_port not in self.port_map and in_port not in (OFPP_CONTROLLER, OFPP_ANY):
            raise OfpError(OFPET_BAD_REQUEST, ec.OFPBRC_BAD_PORT, f"in_port {in_port}")
        if len(data) < _MIN_FRAME:
            raise OfpError(OFPET_BAD_REQUEST, ec.OFPBRC_BAD_PACKET, "no Ethernet frame")
        port = self.port_map.get(in_port)
        key = parse_packet(bytes(data), port.dp_port if port is not None else 0)
        check_actions(actions, _packet_match(key), packet_out=True,
                      group_exists=self.groups.__contains__)
        ofport = OFPP_CONTROLLER if in_port == OFPP_ANY else in_port
        result = Xlate(self, key, ofport, side_effects=True).translate_actions(actions)
        for rule in result.rules:
            rule.credit(1, len(data))
        for counter in result.counters:
            counter.credit(1, len(data))
        self.backer.mac_table_changed([(self, vlan, mac) for vlan, mac in result.mac_changes],
                                      result.mac_evicted)
        self.backer.execute(bytes(data), result.actions)

    async def barrier(self) -> None:
        await self.backer.wait_revalidated()

    def settle(self) -> None:
        """The datapath catches up with the changes made so far (see
        ``DatapathBacker.settle``); the OpenFlow channel calls it after each read."""
        self.backer.settle()

    def barrier_now(self) -> bool:
        """The barrier without a coroutine: the pending revalidation runs
        here, so nothing is ever left to wait for."""
        self.backer.run_revalidation()
        return True

    # ------------------------------------------------------------ groups (GroupMeterCore)
    def group_mod(self, gm: GroupMod) -> None:
        self._sync_controllers()
        outcome = self.groups.apply(
            gm, lambda actions: check_actions(actions, None,
                                              group_exists=self.groups.__contains__))
        for group_id in outcome.deleted:
            self._remove_rules(self.pipeline.select(OFPTT_ALL, Match(), 0, False,
                                                    out_group=group_id), OFPRR_GROUP_DELETE)
        if outcome.changed:
            self._changed()

    def group_desc(self) -> list[GroupMod]:
        return [g.describe() for g in self.groups.sorted()]

    def group_stats(self, group_id: int) -> list[GroupStats]:
        groups = self.groups.sorted() if group_id == OFPG_ALL else \
            [g for g in (self.groups.get(group_id),) if g is not None]
        now = time.monotonic()
        out = []
        for group in groups:
            flows = len(self.pipeline.select(OFPTT_ALL, Match(), 0, False,
                                             out_group=group.group_id))
            out.append(group.stats(flows + self.groups.referrers(group.group_id), now))
        return out

    # ------------------------------------------------------------ meters (GroupMeterCore)
    def meter_mod(self, mm: MeterMod) -> None:
        self._sync_controllers()
        deleted = self.meters.apply(mm)
        if deleted:
            gone = set(deleted)
            self._remove_rules([r for r in self.pipeline.rules() if _meter_of(r) in gone],
                               OFPRR_DELETE)
        self._changed()

    def meter_features(self) -> tuple[int, int, int, int, int]:
        """(max_meter, band_types, capabilities, max_bands, max_color) of the datapath."""
        return self.meters.features()

    def meter_config(self, meter_id: int) -> list[MeterMod]:
        return [m.config for m in self.meters.selected(meter_id)]

    def meter_stats(self, meter_id: int) -> list[MeterStats]:
        counts: dict[int, int] = {}
        for rule in self.pipeline.rules():
            meter = _meter_of(rule)
            if meter is not None:
                counts[meter] = counts.get(meter, 0) + 1
        return self.meters.stats(meter_id, counts)

    def _remove_rules(self, rules: list[Rule], reason: int) -> None:
        for rule in rules:
            self.pipeline.remove_rule(rule)
            self._flow_removed(rule, reason)

    # ------------------------------------------------------------ listeners
    def add_listener(self, listener: SwitchListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: SwitchListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, method: str, *args: object) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, method)(*args)
            except Exception:
                log.exception("listener %s failed", method)

    def _port_status(self, reason: int, port: OfPort) -> None:
        self._notify("port_status", reason, port)

    def _flow_removed(self, rule: Rule, reason: int) -> None:
        if not rule.flags & OFPFF_SEND_FLOW_REM:
            return
        sec, nsec = rule.duration()
        self._notify("flow_removed", FlowRemoved(
            rule.cookie, rule.priority, reason, rule.table_id, sec, nsec,
            rule.idle_timeout, rule.hard_timeout, rule.packet_count, rule.byte_count,
            rule.match))

    # ------------------------------------------------------------ for the backer
    def translate_key(self, key: FlowKey, in_ofport: int, side_effects: bool) -> XlateResult:
        return Xlate(self, key, in_ofport, side_effects=side_effects).translate()

    def packet_in_cookie(self, spec: PacketInSpec) -> int:
        return self.backer.packet_in_cookie(spec)

    def emit_packet_in(self, spec: PacketInSpec, data: bytes, total_len: int) -> None:
        fields: dict[str, int | tuple[int, int | None]] = {"in_port": spec.in_port}
        if spec.metadata:
            fields["metadata"] = spec.metadata
        if spec.max_len != OFPCML_NO_BUFFER:
            data = data[:spec.max_len]
        self._notify("packet_in", PacketIn(spec.reason, spec.table_id, spec.cookie,
                                           Match(fields), bytes(data), total_len))

    def credit_tables(self, looked_up, matched, packets: int) -> None:
        tables = self.pipeline.tables
        for table_id in looked_up:
            tables[table_id].lookup_count += packets
        for table_id in matched:
            tables[table_id].matched_count += packets

    def refresh_mac(self, vlan: int, mac: bytes, port: int) -> None:
        self.mac.refresh(vlan, mac, port)

    def periodic(self) -> None:
        """Expire rules by timeout (FLOW_REMOVED) and MAC entries by age; fail modes."""
        self._sync_controllers()
        expired = self.pipeline.expire()
        for rule, reason in expired:
            self._flow_removed(rule, reason)
        aged = self.mac.expire()
        self.backer.revalidate_rules([RuleChange(self, r.table_id, r.match, r.priority)
                                      for r, _reason in expired] + self._reorders())
        self.backer.mac_table_changed([(self, vlan, mac) for vlan, mac in aged])

    def _changed(self) -> None:
        self.pipeline.take_reorders()  # a full pass covers them
        self.backer.request_revalidation()

    # ------------------------------------------------------------ appctl views
    def fdb_show(self) -> str:
        now = time.monotonic()
        lines = [" port  VLAN  MAC                Age"]
        for entry in self.mac.entries():
            name = PORT_NAMES.get(entry.port, str(entry.port))
            mac = ":".join(f"{b:02x}" for b in entry.mac)
            lines.append(f"{name:>5}  {entry.vlan:4d}  {mac}  {int(now - entry.last_seen):3d}")
        return "\n".join(lines) + "\n"

    def fdb_flush(self) -> None:
        """Forget every learned MAC (``fdb/flush``); the flows that looked them up
        are re-translated (they flood until the addresses are learned again)."""
        removed = [(self, e.vlan, e.mac) for e in self.mac.entries()]
        self.mac.flush()
        self.backer.mac_table_changed(removed)

    def fdb_stats_show(self) -> str:
        return format_fdb_stats(self.name, self.mac)

    def fdb_stats_clear(self) -> None:
        self.mac.clear_stats()

    def dump_datapath_flows(self, verbose: bool = False, names: bool = False) -> str:
        """``dpif/dump-flows``: the datapath flows whose in_port is one of this
        bridge's ports, ports by name when ``names``."""
        return self.backer.dump_bridge_flows(self, verbose, names)

    def dump_flows(self, offload_stats: bool = False) -> str:
        """``bridge/dump-flows``: every OpenFlow rule of every table, in OVS's
        text, and the hidden fail-open rule while it is in place."""
        now = time.monotonic()
        hidden = [self.fail_open_rule] if self.fail_open_rule is not None else []
        return "".join(format_rule(rule, offload_stats, now) + "\n"
                       for rule in hidden + self.pipeline.rules())

    def trace(self, flow_spec: str) -> str:
        from ovsbpfd.ofproto.trace import run_trace

        return run_trace(self, flow_spec)

    def destroy(self) -> None:
        self.meters.destroy()
        self.backer.remove_bridge(self)
        self.port_map.clear()
        self._listeners.clear()


def _meter_of(rule: Rule) -> int | None:
    return next((i.meter_id for i in rule.instructions if isinstance(i, InstMeter)), None)


def _packet_match(key: FlowKey) -> Match:
    """What a PACKET_OUT's packet is, for the actions' consistency checks."""
    fields: dict[str, int | tuple[int, int | None]] = {"eth_type": key.eth_type}
    if key.vlan_tci & VLAN_TAG_PRESENT:
        fields["vlan_vid"] = key.vlan_tci & 0x1FFF
    if key.eth_type in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        fields["ip_proto"] = key.nw_proto
    return Match(fields)
