"""FLOW_MOD / PACKET_OUT checks: refuse up front what the switch cannot do.

Everything the datapath cannot carry out is rejected here with the error the
OpenFlow 1.3 spec names, so nothing is ever silently ignored at xlate time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ovsbpfd.ofproto import ofp_errors as ec
from ovsbpfd.ofproto.actions import (
    OFPP_ALL,
    OFPP_CONTROLLER,
    OFPP_FLOOD,
    OFPP_IN_PORT,
    OFPP_LOCAL,
    OFPP_MAX,
    OFPP_NORMAL,
    OFPP_TABLE,
    ActDecNwTtl,
    ActGroup,
    Action,
    ActOutput,
    ActPopVlan,
    ActPushVlan,
    ActSetField,
    ActSetNwTtl,
    ActSetQueue,
    InstApplyActions,
    InstClearActions,
    InstGotoTable,
    InstMeter,
    Instruction,
    InstWriteActions,
    InstWriteMetadata,
)
from ovsbpfd.ofproto.flow_fields import SETTABLE_FIELDS, SUPPORTED_FIELDS
from ovsbpfd.ofproto.match import FIELDS_BY_NAME, OFPVID_PRESENT, Match
from ovsbpfd.ofproto.rewrites import SET_TARGETS
from ovsbpfd.ofproto.types import (
    OFPET_BAD_ACTION,
    OFPET_BAD_INSTRUCTION,
    OFPET_BAD_MATCH,
    OFPET_FLOW_MOD_FAILED,
    OFPET_METER_MOD_FAILED,
    OFPFC_ADD,
    OFPFC_DELETE_STRICT,
    OFPFC_MODIFY,
    OFPFC_MODIFY_STRICT,
    OFPFF_CHECK_OVERLAP,
    OFPFF_NO_BYT_COUNTS,
    OFPFF_NO_PKT_COUNTS,
    OFPFF_RESET_COUNTS,
    OFPFF_SEND_FLOW_REM,
    OFPTT_ALL,
    FlowMod,
    OfpError,
)

N_TABLES = 254
Exists = Callable[[int], bool]  # does this group / meter id exist?
_KNOWN_FLAGS = (OFPFF_SEND_FLOW_REM | OFPFF_CHECK_OVERLAP | OFPFF_RESET_COUNTS
                | OFPFF_NO_PKT_COUNTS | OFPFF_NO_BYT_COUNTS)
_RESERVED_OUTPUTS = frozenset({OFPP_IN_PORT, OFPP_NORMAL, OFPP_FLOOD, OFPP_ALL,
                               OFPP_CONTROLLER, OFPP_LOCAL})
_ETH_TYPES_VLAN_PUSH = (0x8100, 0x88A8)


def _none(_object_id: int) -> bool:
    return False


def check_flow_mod(fm: FlowMod, group_exists: Exists = _none,
                   meter_exists: Exists = _none) -> None:
    """Raise ``OfpError`` if ``fm`` must be refused."""
    if not OFPFC_ADD <= fm.command <= OFPFC_DELETE_STRICT:
        raise OfpError(OFPET_FLOW_MOD_FAILED, ec.OFPFMFC_BAD_COMMAND, "unknown command")
    if fm.table_id >= N_TABLES and not (fm.table_id == OFPTT_ALL and fm.command != OFPFC_ADD):
        raise OfpError(OFPET_FLOW_MOD_FAILED, ec.OFPFMFC_BAD_TABLE_ID,
                       f"table {fm.table_id} does not exist")
    if fm.flags & ~_KNOWN_FLAGS:
        raise OfpError(OFPET_FLOW_MOD_FAILED, ec.OFPFMFC_BAD_FLAGS, "unknown flags")
    check_match(fm.match)
    if fm.command in (OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT):
        check_instructions(fm.instructions, fm.table_id, fm.match, group_exists,
                           meter_exists)


# Match signatures whose fields the datapath all handles (a flood of
# FLOW_MODs repeats a few), and instructions known to be valid in a table
# whatever the match (checked once per decoded instructions object: the codec
# hands out the same object for the same bytes).
_SUPPORTED_SIGNATURES: set[tuple[tuple[str, int], ...]] = set()
_VALID_INSTRUCTIONS: dict[tuple[int, int], tuple[Instruction, ...]] = {}
_VERDICT_CACHE_MAX = 4096
# What a match cannot change the verdict on: no group or meter (they come
# and go), no action whose check reads the match.
_MATCH_FREE_INSTRUCTIONS = (InstApplyActions, InstWriteActions, InstClearActions,
                            InstGotoTable, InstWriteMetadata)


def check_match(match: Match) -> None:
    signature = match.signature()
    if signature not in _SUPPORTED_SIGNATURES:
        for name in match:
            if name not in SUPPORTED_FIELDS:
                raise OfpError(OFPET_BAD_MATCH, ec.OFPBMC_BAD_FIELD,
                               f"the datapath cannot match on {name}")
        if len(_SUPPORTED_SIGNATURES) >= _VERDICT_CACHE_MAX:
            _SUPPORTED_SIGNATURES.clear()
        _SUPPORTED_SIGNATURES.add(signature)
    if match.missing_prereqs():
        raise OfpError(OFPET_BAD_MATCH, ec.OFPBMC_BAD_PREREQ,
                       f"prerequisites missing for {', '.join(match.missing_prereqs())}")
    vid = match.get("vlan_vid")
    if vid is not None and vid[1] is None and vid[0] & 0xFFF and not vid[0] & OFPVID_PRESENT:
        raise OfpError(OFPET_BAD_MATCH, ec.OFPBMC_BAD_VALUE,
                       "vlan_vid without OFPVID_PRESENT")


def check_instructions(instructions: Iterable[Instruction], table_id: int, match: Match,
                       group_exists: Exists = _none, meter_exists: Exists = _none) -> None:
    key = (id(instructions), table_id)
    if _VALID_INSTRUCTIONS.get(key) is instructions:
        return
    _check_instructions(instructions, table_id, match, group_exists, meter_exists)
    if isinstance(instructions, tuple) and _match_free(instructions):
        if len(_VALID_INSTRUCTIONS) >= _VERDICT_CACHE_MAX:
            _VALID_INSTRUCTIONS.clear()
        _VALID_INSTRUCTIONS[key] = instructions  # held, so its id stays its own


def _match_free(instructions: tuple[Instruction, ...]) -> bool:
    """Whether the checks of these instructions depend on nothing but them
    and the table: only outputs, no groups, meters or rewrites."""
    return all(isinstance(inst, _MATCH_FREE_INSTRUCTIONS)
               and all(type(act) is ActOutput for act in getattr(inst, "actions", ()))
               for inst in instructions)


def _check_instructions(instructions: Iterable[Instruction], table_id: int, match: Match,
                        group_exists: Exists, meter_exists: Exists) -> None:
    seen: set[type] = set()
    for inst in instructions:
        if type(inst) in seen:
            raise OfpError(OFPET_BAD_INSTRUCTION, ec.OFPBIC_UNSUP_INST,
                           f"duplicate {type(inst).__name__}")
        seen.add(type(inst))
        if isinstance(inst, InstGotoTable):
            if inst.table_id >= N_TABLES or (table_id != OFPTT_ALL
                                             and inst.table_id <= table_id):
                raise OfpError(OFPET_BAD_INSTRUCTION, ec.OFPBIC_BAD_TABLE_ID,
                               f"goto_table:{inst.table_id} from table {table_id}")
        elif isinstance(inst, InstMeter):
            if not meter_exists(inst.meter_id):
                raise OfpError(OFPET_METER_MOD_FAILED, ec.OFPMMFC_UNKNOWN_METER,
                               f"meter {inst.meter_id} does not exist")
        elif isinstance(inst, InstApplyActions):
            check_actions(inst.actions, match, group_exists=group_exists)
        elif isinstance(inst, InstWriteActions):
            check_actions(_action_set_order(inst.actions), match, group_exists=group_exists)
        elif not isinstance(inst, (InstClearActions, InstWriteMetadata)):
            raise OfpError(OFPET_BAD_INSTRUCTION, ec.OFPBIC_UNKNOWN_INST,
                           f"unknown instruction {inst!r}")


def _action_set_order(actions: Iterable[Action]) -> list[Action]:
    """Pushes run before set-fields in an action set."""
    return sorted(actions, key=lambda a: 0 if isinstance(a, (ActPushVlan, ActPopVlan)) else 1)


def match_has_vlan(match: Match) -> bool:
    vid = match.get("vlan_vid")
    return bool(vid and vid[0] & OFPVID_PRESENT and match.mask_of("vlan_vid") & OFPVID_PRESENT)


def check_actions(actions: Iterable[Action], match: Match | None, *,
                  packet_out: bool = False, group_exists: Exists = _none) -> None:
    """Refuse actions the datapath cannot perform (BAD_ACTION codes).

    ``match`` says what the packets are (for MATCH_INCONSISTENT); None for a
    group's bucket, which any packet may reach: there a rewrite of a field
    the packet lacks does nothing, as in OVS."""
    vlan_known = match is None or match_has_vlan(match)
    for act in actions:
        if isinstance(act, ActOutput):
            _check_output_port(act.port, packet_out)
        elif isinstance(act, ActPushVlan):
            if act.ethertype not in _ETH_TYPES_VLAN_PUSH:
                raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_BAD_ARGUMENT,
                               f"push_vlan ethertype {act.ethertype:#x}")
            vlan_known = True
        elif isinstance(act, ActPopVlan):
            vlan_known = False
        elif isinstance(act, ActSetField):
            _check_set_field(act, vlan_known, match)
        elif isinstance(act, (ActSetNwTtl, ActDecNwTtl)):
            if isinstance(act, ActSetNwTtl) and not 0 <= act.ttl <= 0xFF:
                raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_BAD_ARGUMENT, f"ttl {act.ttl}")
            if match is not None and not _is_ip_match(match):
                raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_MATCH_INCONSISTENT,
                               "TTL actions need an IPv4 or IPv6 match")
        elif isinstance(act, ActGroup):
            if not group_exists(act.group_id):
                raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_BAD_OUT_GROUP,
                               f"group {act.group_id} does not exist")
        elif isinstance(act, ActSetQueue):
            raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_BAD_QUEUE,
                           f"queue {act.queue_id} does not exist")
        else:
            raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_BAD_TYPE,
                           f"the datapath cannot perform {type(act).__name__}")


def _check_output_port(port: int, packet_out: bool) -> None:
    if port == 0 or (port > OFPP_MAX and port not in _RESERVED_OUTPUTS
                     and not (packet_out and port == OFPP_TABLE)):
        raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_BAD_OUT_PORT, f"output to port {port:#x}")


def _is_ip_match(match: Match) -> bool:
    eth_type = match.get("eth_type")
    return eth_type is not None and eth_type[0] in (0x0800, 0x86DD)


def _check_set_field(act: ActSetField, vlan_known: bool, match: Match | None) -> None:
    if act.field not in FIELDS_BY_NAME or act.field not in SETTABLE_FIELDS:
        raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_BAD_SET_TYPE,
                       f"the datapath cannot set {act.field}")
    field = FIELDS_BY_NAME[act.field]
    limit = {"vlan_vid": 0x1FFF, "vlan_pcp": 0x7, "ip_dscp": 0x3F,
             "ip_ecn": 0x3}.get(act.field, field.full_mask)
    if not 0 <= act.value <= limit:
        raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_BAD_SET_ARGUMENT,
                       f"{act.field} value {act.value:#x}")
    if act.field in SET_TARGETS:
        if match is not None and act.field in Match(
                dict(match), **{act.field: act.value}).missing_prereqs():
            raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_MATCH_INCONSISTENT,
                           f"set_field {act.field}: the match does not meet its prerequisites")
        return
    if not vlan_known:
        raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_MATCH_INCONSISTENT,
                       f"set_field {act.field} needs a VLAN header (match one or push_vlan)")
