"""Translation: run one packet through a bridge's OpenFlow pipeline.

The result is what the datapath needs to handle every packet like it: the
datapath actions, and the megaflow mask (the FlowKey bits any decision
depended on; in_port always exact).  It also lists the rules that were hit
(to credit their counters) and what NORMAL learned.

Side effects (MAC learning, table lookup counters) happen only when
``side_effects`` is set, so the revalidator can re-translate installed flows
without changing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ovsbpfd import coverage
from ovsbpfd.dpif.types import (
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    ETH_TYPE_VLAN,
    VLAN_TAG_PRESENT,
    DpAction,
    FlowKey,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    Userspace,
)
from ovsbpfd.ofproto.actions import (
    INSTRUCTION_ORDER,
    OFPP_ALL,
    OFPP_CONTROLLER,
    OFPP_FLOOD,
    OFPP_IN_PORT,
    OFPP_LOCAL,
    OFPP_MAX,
    OFPP_NORMAL,
    OFPP_TABLE,
    PORT_NAMES,
    ActDecNwTtl,
    ActGroup,
    Action,
    ActOutput,
    ActPopVlan,
    ActPushVlan,
    ActSetField,
    ActSetNwTtl,
    InstApplyActions,
    InstClearActions,
    InstGotoTable,
    InstMeter,
    InstWriteActions,
    InstWriteMetadata,
)
from ovsbpfd.ofproto.flow_fields import (
    KeyMask,
    add_field_mask,
    merge_masks,
    packet_values,
    to_flow_key,
)
from ovsbpfd.ofproto.group_select import Liveness, hash_fields
from ovsbpfd.ofproto.groups import Counter, Group, GroupTable
from ovsbpfd.ofproto.mac_learning import MacLearning, is_multicast
from ovsbpfd.ofproto.match import FIELDS_BY_NAME
from ovsbpfd.ofproto.meters import MeterTable
from ovsbpfd.ofproto.pipeline import Pipeline
from ovsbpfd.ofproto.port import BridgePort
from ovsbpfd.ofproto.rewrites import SET_TARGETS, TTL_TARGET, Rewrites
from ovsbpfd.ofproto.rule import Rule
from ovsbpfd.ofproto.types import (
    OFPGT_ALL,
    OFPGT_FF,
    OFPGT_INDIRECT,
    OFPGT_SELECT,
    OFPPC_NO_FWD,
    OFPPC_NO_PACKET_IN,
    OFPPC_NO_RECV,
    OFPPC_PORT_DOWN,
    OFPPS_LIVE,
    OFPR_ACTION,
    OFPR_INVALID_TTL,
    OFPR_NO_MATCH,
)

_RESERVED_MULTICAST_PREFIX = bytes.fromhex("0180c20000")  # 01:80:c2:00:00:0x (STP, LLDP..)
_MAX_PIPELINE_PASSES = 4  # output:TABLE nesting bound
_MAX_GROUP_DEPTH = 32  # chained groups (loops are refused at GROUP_MOD)
_NO_MASK = FlowKey()  # a result's mask until _finish sets it
_XLATE_ACTIONS = coverage.counter("xlate_actions")  # translations, as OVS counts them


@dataclass(frozen=True)
class PacketInSpec:
    """Everything a PACKET_IN needs besides the packet: what a datapath
    ``userspace`` action's cookie stands for."""

    bridge: str
    in_port: int
    reason: int
    table_id: int
    cookie: int
    max_len: int
    metadata: int = 0


class XlateBridge(Protocol):
    """What translation reads from a bridge."""

    name: str
    pipeline: Pipeline
    port_map: dict[int, BridgePort]  # ofport -> port
    mac: MacLearning
    groups: GroupTable
    meters: MeterTable
    fail_open_rule: Rule | None  # OVS's hidden fail-open rule, while it is in place

    def packet_in_cookie(self, spec: PacketInSpec) -> int: ...


@dataclass
class TableLookup:
    """One table lookup of a translation, as the revalidator's change index
    needs it: the field values the table saw, the priority of the rule hit
    (-1 for none) and every subtable visited with the packet's key there."""

    table_id: int
    values: dict[str, int]
    hit_priority: int
    visited: dict[tuple[tuple[str, int], ...], tuple[int, ...] | None]


@dataclass
class XlateResult:
    actions: list[DpAction]
    mask: FlowKey
    rules: list[Rule] = field(default_factory=list)
    tables: list[int] = field(default_factory=list)  # tables looked up, in order
    learned: list[tuple[int, bytes, int]] = field(default_factory=list)  # (vlan, mac, port)
    # MAC-learning entries (vlan, mac) this translation learned anew or moved;
    # and whether learning may have evicted an entry to make room.
    mac_changes: list[tuple[int, bytes]] = field(default_factory=list)
    mac_evicted: bool = False
    # MAC-learning entries (vlan, destination mac) NORMAL looked up
    mac_lookups: list[tuple[int, bytes]] = field(default_factory=list)
    # group and bucket counters the packet went through (credited like rules)
    counters: list[Counter] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)
    lookups: list[TableLookup] = field(default_factory=list)


def _action_set_rank(act: Action) -> int:
    """OpenFlow 1.3 section 5.10 execution order of an action set."""
    if isinstance(act, ActPopVlan):
        return 1
    if isinstance(act, ActPushVlan):
        return 4
    if isinstance(act, ActDecNwTtl):
        return 6
    if isinstance(act, (ActSetField, ActSetNwTtl)):
        return 7
    if isinstance(act, ActGroup):
        return 9
    if isinstance(act, ActOutput):
        return 10
    return 8


def _action_set_slot(act: Action) -> object:
    return ("set_field", act.field) if isinstance(act, ActSetField) else type(act)


class Xlate:
    """One translation.  Use ``translate`` or ``translate_actions``."""

    def __init__(self, bridge: XlateBridge, key: FlowKey, in_ofport: int, *,
                 side_effects: bool, tracing: bool = False) -> None:
        self.bridge = bridge
        self.key = key
        self.in_ofport = in_ofport
        self.side_effects = side_effects
        self.tracing = tracing
        self.mask: KeyMask = {}
        self.metadata = 0
        # VLAN stacks (outermost first) of (tci without the present bit, tpid):
        # as the pipeline sees the packet, and as the datapath actions left it.
        tags = [(key.vlan_tci & ~VLAN_TAG_PRESENT, ETH_TYPE_VLAN)] \
            if key.vlan_tci & VLAN_TAG_PRESENT else []
        self.vlans = list(tags)
        self.dp_vlans = list(tags)
        self.result = XlateResult([], _NO_MASK)
        self.action_set: dict[object, Action] = {}
        self.passes = 0
        self.rewrites = Rewrites()
        self.group_depth = 0
        self.halted = False  # dec_ttl reached zero: nothing more happens

    # ------------------------------------------------------------ entry points
    def translate(self) -> XlateResult:
        """The pipeline from table 0 (a datapath miss)."""
        _XLATE_ACTIONS.inc()
        if self._input_blocked():
            return self._finish()
        rule = getattr(self.bridge, "fail_open_rule", None)
        if rule is not None:
            # OVS's fail-open rule: above every flow, NORMAL for everything,
            # counted like a table-0 rule (bridge/dump-flows shows it).
            self._note("fail-open: no controller for too long, acting as a learning switch")
            self.result.tables.append(0)
            self.result.rules.append(rule)
            if self.side_effects:
                table = self.bridge.pipeline.tables[0]
                table.lookup_count += 1
                table.matched_count += 1
            self._normal()
            return self._finish()
        self._run_pipeline(0)
        return self._finish()

    def translate_actions(self, actions: tuple[Action, ...]) -> XlateResult:
        """A PACKET_OUT's action list (which may send the packet to TABLE)."""
        _XLATE_ACTIONS.inc()
        self._do_actions(actions, None)
        return self._finish()

    def _finish(self) -> XlateResult:
        self.result.mask = _mask_key(self.mask)
        return self.result

    def _note(self, text: str) -> None:
        if self.tracing:
            self.result.trace.append(text)

    def _input_blocked(self) -> bool:
        port = self.bridge.port_map.get(self.in_ofport)
        if port is not None and port.config & OFPPC_NO_RECV:
            self._note(f"in_port {self.in_ofport} has no-recv set: drop")
            return True
        return False

    # ------------------------------------------------------------ pipeline
    def _current_key(self) -> FlowKey:
        """The packet as the pipeline sees it now (rewrites and VLAN changes applied)."""
        key = self.rewrites.view(self.key)
        tci = (self.vlans[0][0] | VLAN_TAG_PRESENT) if self.vlans else 0
        return key if tci == key.vlan_tci else key.replace(vlan_tci=tci)

    def _run_pipeline(self, table_id: int) -> None:
        self.passes += 1
        if self.passes > _MAX_PIPELINE_PASSES:
            self._note("too many pipeline passes: drop")
            return
        saved_set, self.action_set = self.action_set, {}
        tables = self.bridge.pipeline.tables
        next_table: int | None = table_id
        while next_table is not None and not self.halted:
            table = tables[next_table]
            values = packet_values(self._current_key(), self.in_ofport, self.metadata)
            visited: dict = {}
            rule = table.lookup(values, self.mask, visited)
            self.result.lookups.append(TableLookup(
                next_table, values, rule.priority if rule is not None else -1, visited))
            self.result.tables.append(next_table)
            if self.side_effects:
                table.lookup_count += 1
            if rule is None:
                if self.tracing:
                    self._note(f"{next_table}. No match: drop")
                break
            if self.side_effects:
                table.matched_count += 1
            self.result.rules.append(rule)
            if self.tracing:
                self._note(f"{next_table}. {_describe_rule(rule)}")
            next_table = self._do_instructions(rule)
        self._do_action_set()
        self.action_set = saved_set

    def _do_instructions(self, rule: Rule) -> int | None:
        goto = None
        instructions = rule.instructions
        if len(instructions) > 1:
            instructions = sorted(instructions, key=lambda i: INSTRUCTION_ORDER.get(type(i), 9))
        for inst in instructions:
            if self.halted:
                return None
            if isinstance(inst, InstMeter):
                self._meter(inst.meter_id)
            elif isinstance(inst, InstApplyActions):
                self._do_actions(inst.actions, rule)
            elif isinstance(inst, InstClearActions):
                self.action_set.clear()
            elif isinstance(inst, InstWriteActions):
                for act in inst.actions:
                    self.action_set[_action_set_slot(act)] = act
            elif isinstance(inst, InstWriteMetadata):
                self.metadata = (self.metadata & ~inst.mask) | (inst.metadata & inst.mask)
            elif isinstance(inst, InstGotoTable):
                goto = inst.table_id
        return goto

    def _meter(self, meter_id: int) -> None:
        meter = self.bridge.meters.get(meter_id)
        if meter is None:  # deleted meters take their flows with them
            self._note(f"   meter:{meter_id}: no such meter")
            return
        self.result.actions.append(Meter(meter.dp_id))
        if self.tracing:
            self._note(f"   meter:{meter_id} -> datapath meter {meter.dp_id}")

    def _do_action_set(self) -> None:
        if not self.action_set or self.halted:
            self.action_set = {}
            return
        acts = sorted(self.action_set.values(), key=_action_set_rank)
        if any(isinstance(a, ActGroup) for a in acts):
            acts = [a for a in acts if not isinstance(a, ActOutput)]
        self._note("   action set: " + ", ".join(_describe_action(a) for a in acts))
        self.action_set = {}
        self._do_actions(tuple(acts), self.result.rules[-1] if self.result.rules else None)

    # ------------------------------------------------------------ actions
    def _do_actions(self, actions: tuple[Action, ...], rule: Rule | None) -> None:
        for act in actions:
            if self.halted:
                return
            if isinstance(act, ActOutput):
                self._output(act, rule)
            elif isinstance(act, ActPushVlan):
                tci = self.vlans[0][0] if self.vlans else 0
                self.vlans.insert(0, (tci, act.ethertype))
            elif isinstance(act, ActPopVlan):
                if self.vlans:
                    self.vlans.pop(0)
            elif isinstance(act, ActSetField):
                self._set_field(act)
            elif isinstance(act, ActGroup):
                self._group(act.group_id, rule)
            elif isinstance(act, ActSetNwTtl):
                if self._is_ip():
                    self.rewrites.write(TTL_TARGET, act.ttl)
            elif isinstance(act, ActDecNwTtl):
                self._dec_ttl(rule)
            else:  # refused at FLOW_MOD time; never silently reached
                raise ValueError(f"untranslatable action {act!r}")

    # ------------------------------------------------------------ header rewrites
    def _has_field(self, name: str) -> bool:
        """Does the packet have OXM field ``name``?  Its prerequisites are consulted."""
        for pre_name, _allowed in FIELDS_BY_NAME[name].prereqs:
            if pre_name in ("eth_type", "ip_proto", "icmpv6_type"):
                add_field_mask(self.mask, pre_name, FIELDS_BY_NAME[pre_name].full_mask)
        values = packet_values(self._current_key(), self.in_ofport, self.metadata)
        return name in values

    def _is_ip(self) -> bool:
        add_field_mask(self.mask, "eth_type", 0xFFFF)
        return self.key.eth_type in (ETH_TYPE_IP, ETH_TYPE_IPV6)

    def _dec_ttl(self, rule: Rule | None) -> None:
        """dec_nw_ttl: TTL 0 or 1 goes to controllers as INVALID_TTL, never on."""
        if not self._is_ip():
            self._note("   dec_ttl on a non-IP packet: nothing to do")
            return
        self.mask["nw_ttl"] = 0xFF
        ttl = self.rewrites.read(self.key, TTL_TARGET)
        if ttl > 1:
            self.rewrites.write(TTL_TARGET, ttl - 1)
            return
        self._note(f"   dec_ttl: TTL {ttl} expired, packet-in (invalid_ttl) and drop")
        self._to_controller(0xFFFF, rule, OFPR_INVALID_TTL)
        self.halted = True

    def _set_field(self, act: ActSetField) -> None:
        target = SET_TARGETS.get(act.field)
        if target is not None:
            if self._has_field(act.field):
                self.rewrites.write(target, act.value)
            else:
                self._note(f"   set_field {act.field}: the packet has no such field")
            return
        if not self.vlans:
            self._note(f"   set_field {act.field} on an untagged packet: ignored")
            return
        tci, tpid = self.vlans[0]
        if act.field == "vlan_vid":
            tci = (tci & ~0x0FFF) | (act.value & 0x0FFF)
        elif act.field == "vlan_pcp":
            tci = (tci & 0x1FFF) | ((act.value & 7) << 13)
        self.vlans[0] = (tci & ~VLAN_TAG_PRESENT, tpid)

    def _output(self, act: ActOutput, rule: Rule | None) -> None:
        port = act.port
        if port <= OFPP_MAX or port == OFPP_LOCAL:
            if port == self.in_ofport:
                self._note(f"   output:{_port_name(port)} is the input port: skipped")
                return
            self._emit_to(port)
        elif port == OFPP_IN_PORT:
            self._emit_to(self.in_ofport)
        elif port == OFPP_NORMAL:
            self._normal()
        elif port in (OFPP_FLOOD, OFPP_ALL):
            for ofport, bport in sorted(self.bridge.port_map.items()):
                if ofport != self.in_ofport and (bport.can_forward() or port == OFPP_ALL):
                    self._emit_to(ofport)
        elif port == OFPP_CONTROLLER:
            self._to_controller(act.max_len, rule)
        elif port == OFPP_TABLE:
            self._run_pipeline(0)

    # ------------------------------------------------------------ groups
    def _group(self, group_id: int, rule: Rule | None) -> None:
        group = self.bridge.groups.get(group_id)
        if group is None or self.group_depth >= _MAX_GROUP_DEPTH:
            self._note(f"   group:{group_id}: no such group, dropped")
            return
        self.result.counters.append(group.counter)
        if group.type in (OFPGT_ALL,):
            chosen = list(range(len(group.buckets)))
        elif group.type == OFPGT_INDIRECT:
            chosen = [0] if group.buckets else []
        elif group.type == OFPGT_SELECT:
            flow_hash, consulted = hash_fields(self._current_key())
            merge_masks(self.mask, consulted)
            pick = self._liveness().select(group, flow_hash)
            chosen = [] if pick is None else [pick]
        elif group.type == OFPGT_FF:
            pick = self._liveness().first_live(group)
            chosen = [] if pick is None else [pick]
        else:
            chosen = []
        if self.tracing:
            self._note(f"   group:{group_id} -> bucket(s) {chosen or 'none live'}")
        for index in chosen:
            self._bucket(group, index, rule)

    def _bucket(self, group: Group, index: int, rule: Rule | None) -> None:
        """Run one bucket on a clone of the packet: nothing it changes outlives it."""
        self.result.counters.append(group.bucket_counters[index])
        saved = (self.rewrites.save(), list(self.vlans), self.halted)
        self.group_depth += 1
        try:
            self._do_actions(group.buckets[index].actions, rule)
        finally:
            self.group_depth -= 1
            pending, self.vlans, self.halted = saved
            self.rewrites.restore(pending)

    def _liveness(self) -> Liveness:
        ports = self.bridge.port_map

        def port_live(ofport: int) -> bool:
            port = ports.get(ofport)
            return port is not None and bool(port.state & OFPPS_LIVE)

        return Liveness(port_live, self.bridge.groups.get)

    # ------------------------------------------------------------ output
    def _emit_to(self, ofport: int) -> None:
        bport = self.bridge.port_map.get(ofport)
        if bport is None:
            self._note(f"   output:{_port_name(ofport)}: no such port, dropped")
            return
        if bport.config & (OFPPC_NO_FWD | OFPPC_PORT_DOWN):
            self._note(f"   output:{_port_name(ofport)}: port does not forward, dropped")
            return
        self._commit()
        self.result.actions.append(_output_action(bport.dp_port))
        if self.tracing:
            self._note(f"   output:{_port_name(ofport)} -> datapath port {bport.dp_port}")

    def _to_controller(self, max_len: int, rule: Rule | None,
                       reason: int | None = None) -> None:
        in_port = self.bridge.port_map.get(self.in_ofport)
        if in_port is not None and in_port.config & OFPPC_NO_PACKET_IN:
            self._note("   controller: in_port has no-packet-in set, skipped")
            return
        if reason is None:
            reason = OFPR_NO_MATCH if rule is not None and rule.is_table_miss() \
                else OFPR_ACTION
        spec = PacketInSpec(self.bridge.name, self.in_ofport, reason,
                            rule.table_id if rule is not None else 0,
                            rule.cookie if rule is not None else 0xFFFFFFFFFFFFFFFF,
                            max_len, self.metadata)
        self._commit()
        self.result.actions.append(Userspace(self.bridge.packet_in_cookie(spec)))
        self._note("   output:CONTROLLER")

    def _commit(self) -> None:
        """Bring the datapath's packet to what the pipeline sees: rewrites, then VLANs."""
        self.result.actions.extend(self.rewrites.commit(self.key, self.mask))
        self._commit_vlans()

    def _commit_vlans(self) -> None:
        """Emit the pops and pushes that bring the datapath's packet to ``vlans``."""
        want, have = self.vlans, self.dp_vlans
        if want == have:
            return
        same = 0
        while (same < len(want) and same < len(have)
               and want[len(want) - 1 - same] == have[len(have) - 1 - same]):
            same += 1
        for _ in range(len(have) - same):
            self.result.actions.append(PopVlan())
        for tci, tpid in reversed(want[:len(want) - same]):
            self.result.actions.append(PushVlan(tci, tpid))
        self.dp_vlans = list(want)

    # ------------------------------------------------------------ NORMAL
    def _normal(self) -> None:
        """An L2 learning switch with access/trunk VLANs, as OVS's NORMAL."""
        for name in ("eth_src", "eth_dst"):
            add_field_mask(self.mask, name, (1 << 48) - 1)
        self.mask["vlan_tci"] = self.mask.get("vlan_tci", 0) | 0xFFFF
        key = self.rewrites.view(self.key)
        in_port = self.bridge.port_map.get(self.in_ofport)
        outer = self.vlans[0][0] if self.vlans else None
        vid = outer & 0x0FFF if outer is not None else 0
        if in_port is not None and in_port.vlan_tag is not None:
            if vid:
                self._note(f"   NORMAL: VLAN {vid} tagged packet on access port: drop")
                return
            vlan = in_port.vlan_tag
        else:
            vlan = vid
            if in_port is not None and not in_port.in_vlan(vlan):
                self._note(f"   NORMAL: VLAN {vlan} not trunked on the input port: drop")
                return
        if key.eth_dst[:5] == _RESERVED_MULTICAST_PREFIX and key.eth_dst[5] <= 0x0F:
            self._note("   NORMAL: reserved multicast destination: drop")
            return
        if in_port is not None and not is_multicast(key.eth_src):
            self.result.learned.append((vlan, key.eth_src, self.in_ofport))
            table = self.bridge.mac
            if self.side_effects and self._learn(table, vlan, key.eth_src):
                self._note(f"   NORMAL: learned {_mac(key.eth_src)} on port "
                           f"{_port_name(self.in_ofport)} in VLAN {vlan}")
        pcp = outer >> 13 if outer is not None else 0
        entry = None
        if not is_multicast(key.eth_dst):
            self.result.mac_lookups.append((vlan, key.eth_dst))
            entry = self.bridge.mac.lookup(vlan, key.eth_dst)
        saved = self.vlans
        base = saved[1:] if outer is not None else list(saved)
        if entry is not None and entry.port in self.bridge.port_map:
            if entry.port == self.in_ofport:
                self._note("   NORMAL: destination is on the input port: drop")
            else:
                if self.tracing:
                    self._note(f"   NORMAL: forwarding to learned port {_port_name(entry.port)}")
                self._normal_output(entry.port, vlan, pcp, base)
        else:
            if self.tracing:
                self._note(f"   NORMAL: flooding in VLAN {vlan}")
            for ofport, bport in sorted(self.bridge.port_map.items()):
                if ofport != self.in_ofport and bport.can_forward() and bport.in_vlan(vlan):
                    self._normal_output(ofport, vlan, pcp, base)
        self.vlans = saved

    def _learn(self, table: MacLearning, vlan: int, mac: bytes) -> bool:
        """Learn ``mac`` on the input port; True if that changed the table."""
        full = len(table) >= table.max_entries
        if not table.learn(vlan, mac, self.in_ofport):
            return False
        self.result.mac_changes.append((vlan, mac))
        self.result.mac_evicted |= full  # a new entry may have pushed out another
        return True

    def _normal_output(self, ofport: int, vlan: int, pcp: int,
                       base: list[tuple[int, int]]) -> None:
        """Output in ``vlan``: untagged to access ports and for VLAN 0."""
        bport = self.bridge.port_map[ofport]
        if bport.vlan_tag is not None or vlan == 0:
            self.vlans = list(base)
        else:
            self.vlans = [((pcp << 13) | vlan, ETH_TYPE_VLAN)] + base
        self._emit_to(ofport)


_OUTPUTS: dict[int, Output] = {}


def _remembered(cache: dict, key: Any, make: Callable[[], Any]) -> Any:
    """cache[key], made by make() the first time; the cache is emptied when
    it reaches _MASK_KEYS_MAX entries, so it never grows without bound."""
    value = cache.get(key)
    if value is None:
        if len(cache) >= _MASK_KEYS_MAX:
            cache.clear()
        value = cache[key] = make()
    return value


def _output_action(dp_port: int) -> Output:
    """The (immutable) Output action for ``dp_port``, made once per port."""
    return _remembered(_OUTPUTS, dp_port, lambda: Output(dp_port))


_MASK_KEYS: dict[tuple[tuple[str, int], ...], FlowKey] = {}
_MASK_KEYS_MAX = 4096  # distinct megaflow masks remembered (a datapath holds a few dozen)


def _mask_key(acc: KeyMask) -> FlowKey:
    """``to_flow_key(acc)``, the same FlowKey for the same bits: most
    translations end in one of a few masks, and a shared mask keeps its
    packed form and integer for every datapath call that follows."""
    return _remembered(_MASK_KEYS, tuple(acc.items()), lambda: to_flow_key(acc))


def _mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _port_name(port: int) -> str:
    return PORT_NAMES.get(port, str(port))


def _describe_action(act: Action) -> str:
    if isinstance(act, ActOutput):
        return f"output:{_port_name(act.port)}" if act.port != OFPP_NORMAL else "NORMAL"
    if isinstance(act, ActSetField):
        return f"set_field:{act.value}->{act.field}"
    if isinstance(act, ActPushVlan):
        return f"push_vlan:{act.ethertype:#06x}"
    if isinstance(act, ActPopVlan):
        return "pop_vlan"
    if isinstance(act, ActGroup):
        return f"group:{act.group_id}"
    if isinstance(act, ActSetNwTtl):
        return f"set_nw_ttl:{act.ttl}"
    if isinstance(act, ActDecNwTtl):
        return "dec_ttl"
    return type(act).__name__


def _describe_rule(rule: Rule) -> str:
    parts = [f"{name}={value:#x}" + (f"/{mask:#x}" if mask is not None else "")
             for name, (value, mask) in rule.match.items()]
    head = ",".join(parts + [f"priority {rule.priority}"])
    if rule.cookie:
        head += f", cookie {rule.cookie:#x}"
    return head
