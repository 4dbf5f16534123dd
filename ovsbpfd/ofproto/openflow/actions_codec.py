"""ofp_action_* and ofp_instruction_* <-> ``ovsbpfd.ofproto.actions`` types.

Decoding rejects what OpenFlow 1.3 says to reject with OFPET_BAD_ACTION or
OFPET_BAD_INSTRUCTION codes: bad lengths, unknown or experimenter types,
impossible ports/groups/ethertypes, and malformed or unsettable set-field
OXMs.  Whether a port, group, table or meter exists is the core's question.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto.match import FIELDS_BY_NAME
from ovsbpfd.ofproto.ofp_errors import (
    OFPBAC_BAD_ARGUMENT,
    OFPBAC_BAD_EXPERIMENTER,
    OFPBAC_BAD_LEN,
    OFPBAC_BAD_OUT_GROUP,
    OFPBAC_BAD_OUT_PORT,
    OFPBAC_BAD_SET_ARGUMENT,
    OFPBAC_BAD_SET_LEN,
    OFPBAC_BAD_SET_TYPE,
    OFPBAC_BAD_TYPE,
    OFPBIC_BAD_EXPERIMENTER,
    OFPBIC_BAD_LEN,
    OFPBIC_UNKNOWN_INST,
    OFPBIC_UNSUP_INST,
    OFPET_BAD_ACTION,
    OFPET_BAD_INSTRUCTION,
)
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow.header import pad8
from ovsbpfd.ofproto.openflow.oxm import OxmDecodeError, decode_oxm, encode_oxm
from ovsbpfd.ofproto.openflow.reader import Reader
from ovsbpfd.ofproto.types import OfpError

TLV_HEADER = struct.Struct("!HH")
OFPG_MAX = 0xFFFFFF00

# Fields OpenFlow 1.3 forbids as set-field targets (spec A.2.5) plus the
# pseudo-field ipv6_exthdr, which describes the packet but is not a header.
UNSETTABLE_FIELDS = frozenset({"in_port", "in_phy_port", "metadata", "ipv6_exthdr"})

VLAN_ETHERTYPES = (0x8100, 0x88A8)
MPLS_ETHERTYPES = (0x8847, 0x8848)
PBB_ETHERTYPES = (0x88E7,)


def valid_output_port(port: int) -> bool:
    return (0 < port <= a.OFPP_MAX) or (port in a.PORT_NAMES and port != a.OFPP_ANY)


# ---------------------------------------------------------------- actions
_ACT_ONLY_HEADER = {
    a.ActCopyTtlOut: c.OFPAT_COPY_TTL_OUT,
    a.ActCopyTtlIn: c.OFPAT_COPY_TTL_IN,
    a.ActDecMplsTtl: c.OFPAT_DEC_MPLS_TTL,
    a.ActPopVlan: c.OFPAT_POP_VLAN,
    a.ActDecNwTtl: c.OFPAT_DEC_NW_TTL,
    a.ActPopPbb: c.OFPAT_POP_PBB,
}
_ACT_ETHERTYPE = {
    a.ActPushVlan: c.OFPAT_PUSH_VLAN,
    a.ActPushMpls: c.OFPAT_PUSH_MPLS,
    a.ActPopMpls: c.OFPAT_POP_MPLS,
    a.ActPushPbb: c.OFPAT_PUSH_PBB,
}
_ACT_TTL = {a.ActSetMplsTtl: c.OFPAT_SET_MPLS_TTL, a.ActSetNwTtl: c.OFPAT_SET_NW_TTL}


def encode_action(act: a.Action) -> bytes:
    kind = type(act)
    if isinstance(act, a.ActOutput):
        return struct.pack("!HHIH6x", c.OFPAT_OUTPUT, 16, act.port, act.max_len)
    if isinstance(act, a.ActSetField):
        oxm = encode_oxm(act.field, act.value)
        length = TLV_HEADER.size + len(oxm)
        return TLV_HEADER.pack(c.OFPAT_SET_FIELD, length + pad8(length)) + oxm + bytes(
            pad8(length))
    if isinstance(act, a.ActGroup):
        return struct.pack("!HHI", c.OFPAT_GROUP, 8, act.group_id)
    if isinstance(act, a.ActSetQueue):
        return struct.pack("!HHI", c.OFPAT_SET_QUEUE, 8, act.queue_id)
    if kind in _ACT_ONLY_HEADER:
        return struct.pack("!HH4x", _ACT_ONLY_HEADER[kind], 8)
    if kind in _ACT_ETHERTYPE:
        return struct.pack("!HHH2x", _ACT_ETHERTYPE[kind], 8, act.ethertype)  # type: ignore[union-attr]
    if kind in _ACT_TTL:
        return struct.pack("!HHB3x", _ACT_TTL[kind], 8, act.ttl)  # type: ignore[union-attr]
    raise TypeError(f"cannot encode action {act!r}")


def encode_actions(acts: tuple[a.Action, ...] | list[a.Action]) -> bytes:
    return b"".join(encode_action(act) for act in acts)


def _bad_action(code: int, message: str) -> OfpError:
    return OfpError(OFPET_BAD_ACTION, code, message)


def _decode_output(body: bytes) -> a.Action:
    port, max_len = struct.unpack_from("!IH", body)
    if not valid_output_port(port):
        raise _bad_action(OFPBAC_BAD_OUT_PORT, f"invalid output port 0x{port:x}")
    return a.ActOutput(port, max_len)


def _decode_group(body: bytes) -> a.Action:
    (group_id,) = struct.unpack_from("!I", body)
    if group_id > OFPG_MAX:
        raise _bad_action(OFPBAC_BAD_OUT_GROUP, f"invalid group 0x{group_id:x}")
    return a.ActGroup(group_id)


def _ethertype_action(cls: type, allowed: tuple[int, ...] | None) -> Callable[[bytes], a.Action]:
    def decode(body: bytes) -> a.Action:
        (ethertype,) = struct.unpack_from("!H", body)
        if allowed is not None and ethertype not in allowed:
            raise _bad_action(OFPBAC_BAD_ARGUMENT, f"bad ethertype 0x{ethertype:04x}")
        return cls(ethertype)
    return decode


def _decode_set_field(body: bytes) -> a.Action:
    reader = Reader(body, OFPET_BAD_ACTION, OFPBAC_BAD_SET_LEN)
    try:
        name, value, mask = decode_oxm(reader)
    except OxmDecodeError as exc:
        code = {"field": OFPBAC_BAD_SET_TYPE, "len": OFPBAC_BAD_SET_LEN}.get(
            exc.kind, OFPBAC_BAD_SET_ARGUMENT)
        raise _bad_action(code, f"set_field: {exc}") from exc
    if mask is not None:
        raise _bad_action(OFPBAC_BAD_SET_ARGUMENT, "set_field may not carry a mask")
    if name in UNSETTABLE_FIELDS:
        raise _bad_action(OFPBAC_BAD_SET_TYPE, f"{name} cannot be set")
    if len(body) != len(encode_oxm(name, 0)) + pad8(4 + len(encode_oxm(name, 0))) \
            or any(reader.rest()):
        raise _bad_action(OFPBAC_BAD_SET_LEN, "bad set_field padding")
    return a.ActSetField(name, value)


# type -> (exact total length or None for variable, body decoder)
_ACTION_DECODERS: dict[int, tuple[int | None, Callable[[bytes], a.Action]]] = {
    c.OFPAT_OUTPUT: (16, _decode_output),
    c.OFPAT_COPY_TTL_OUT: (8, lambda b: a.ActCopyTtlOut()),
    c.OFPAT_COPY_TTL_IN: (8, lambda b: a.ActCopyTtlIn()),
    c.OFPAT_SET_MPLS_TTL: (8, lambda b: a.ActSetMplsTtl(b[0])),
    c.OFPAT_DEC_MPLS_TTL: (8, lambda b: a.ActDecMplsTtl()),
    c.OFPAT_PUSH_VLAN: (8, _ethertype_action(a.ActPushVlan, VLAN_ETHERTYPES)),
    c.OFPAT_POP_VLAN: (8, lambda b: a.ActPopVlan()),
    c.OFPAT_PUSH_MPLS: (8, _ethertype_action(a.ActPushMpls, MPLS_ETHERTYPES)),
    c.OFPAT_POP_MPLS: (8, _ethertype_action(a.ActPopMpls, None)),
    c.OFPAT_SET_QUEUE: (8, lambda b: a.ActSetQueue(struct.unpack_from("!I", b)[0])),
    c.OFPAT_GROUP: (8, _decode_group),
    c.OFPAT_SET_NW_TTL: (8, lambda b: a.ActSetNwTtl(b[0])),
    c.OFPAT_DEC_NW_TTL: (8, lambda b: a.ActDecNwTtl()),
    c.OFPAT_SET_FIELD: (None, _decode_set_field),
    c.OFPAT_PUSH_PBB: (8, _ethertype_action(a.ActPushPbb, PBB_ETHERTYPES)),
    c.OFPAT_POP_PBB: (8, lambda b: a.ActPopPbb()),
}


def decode_actions(data: bytes) -> tuple[a.Action, ...]:
    """A list of ofp_action TLVs, checked as the spec requires."""
    reader = Reader(data, OFPET_BAD_ACTION, OFPBAC_BAD_LEN)
    out: list[a.Action] = []
    while reader.remaining:
        act_type, length = reader.unpack(TLV_HEADER)
        if length < 8 or length % 8 or length - TLV_HEADER.size > reader.remaining:
            raise _bad_action(OFPBAC_BAD_LEN, f"action type {act_type} length {length}")
        body = reader.take(length - TLV_HEADER.size)
        if act_type == c.OFPAT_EXPERIMENTER:
            raise _bad_action(OFPBAC_BAD_EXPERIMENTER, "experimenter actions unsupported")
        if act_type not in _ACTION_DECODERS:
            raise _bad_action(OFPBAC_BAD_TYPE, f"unknown action type {act_type}")
        exact_len, decode = _ACTION_DECODERS[act_type]
        if exact_len is not None and length != exact_len:
            raise _bad_action(OFPBAC_BAD_LEN, f"action type {act_type} length {length}")
        out.append(decode(body))
    return tuple(out)


# ---------------------------------------------------------------- instructions
# Decoded lists are sorted into execution order (spec 5.9) so the core never has to.
INSTRUCTION_ORDER = a.INSTRUCTION_ORDER


def encode_instruction(inst: a.Instruction) -> bytes:
    if isinstance(inst, a.InstGotoTable):
        return struct.pack("!HHB3x", c.OFPIT_GOTO_TABLE, 8, inst.table_id)
    if isinstance(inst, a.InstWriteMetadata):
        return struct.pack("!HH4xQQ", c.OFPIT_WRITE_METADATA, 24, inst.metadata, inst.mask)
    if isinstance(inst, a.InstWriteActions | a.InstApplyActions):
        body = encode_actions(inst.actions)
        kind = c.OFPIT_WRITE_ACTIONS if isinstance(inst, a.InstWriteActions) \
            else c.OFPIT_APPLY_ACTIONS
        return struct.pack("!HH4x", kind, 8 + len(body)) + body
    if isinstance(inst, a.InstClearActions):
        return struct.pack("!HH4x", c.OFPIT_CLEAR_ACTIONS, 8)
    if isinstance(inst, a.InstMeter):
        return struct.pack("!HHI", c.OFPIT_METER, 8, inst.meter_id)
    raise TypeError(f"cannot encode instruction {inst!r}")


def encode_instructions(insts: tuple[a.Instruction, ...] | list[a.Instruction]) -> bytes:
    return b"".join(encode_instruction(inst) for inst in insts)


def _bad_inst(code: int, message: str) -> OfpError:
    return OfpError(OFPET_BAD_INSTRUCTION, code, message)


def _decode_instruction(inst_type: int, length: int, body: bytes) -> a.Instruction:
    fixed = {c.OFPIT_GOTO_TABLE: 8, c.OFPIT_WRITE_METADATA: 24,
             c.OFPIT_CLEAR_ACTIONS: 8, c.OFPIT_METER: 8}
    if inst_type in fixed and length != fixed[inst_type]:
        raise _bad_inst(OFPBIC_BAD_LEN, f"instruction type {inst_type} length {length}")
    if inst_type == c.OFPIT_GOTO_TABLE:
        return a.InstGotoTable(body[0])
    if inst_type == c.OFPIT_WRITE_METADATA:
        metadata, mask = struct.unpack_from("!4xQQ", body)
        return a.InstWriteMetadata(metadata, mask)
    if inst_type in (c.OFPIT_WRITE_ACTIONS, c.OFPIT_APPLY_ACTIONS):
        acts = decode_actions(body[4:])
        return (a.InstWriteActions(acts) if inst_type == c.OFPIT_WRITE_ACTIONS
                else a.InstApplyActions(acts))
    if inst_type == c.OFPIT_CLEAR_ACTIONS:
        return a.InstClearActions()
    if inst_type == c.OFPIT_METER:
        return a.InstMeter(struct.unpack_from("!I", body)[0])
    if inst_type == c.OFPIT_EXPERIMENTER:
        raise _bad_inst(OFPBIC_BAD_EXPERIMENTER, "experimenter instructions unsupported")
    raise _bad_inst(OFPBIC_UNKNOWN_INST, f"unknown instruction type {inst_type}")


def decode_instructions(data: bytes) -> tuple[a.Instruction, ...]:
    """ofp_instruction TLVs, checked, in execution order, each type once.

    Controllers send the same instructions over and over (a flood of
    FLOW_MODs differs in the match), and the result is immutable, so the
    decoding of recent byte strings is remembered."""
    if len(data) > INSTRUCTION_CACHE_MAX_BYTES:
        return _decode_instructions(data)
    return _decode_instructions_cached(bytes(data))


INSTRUCTION_CACHE_MAX_BYTES = 1024


def _decode_instructions(data: bytes) -> tuple[a.Instruction, ...]:
    reader = Reader(data, OFPET_BAD_INSTRUCTION, OFPBIC_BAD_LEN)
    out: list[a.Instruction] = []
    while reader.remaining:
        inst_type, length = reader.unpack(TLV_HEADER)
        if length < 8 or length % 8 or length - TLV_HEADER.size > reader.remaining:
            raise _bad_inst(OFPBIC_BAD_LEN, f"instruction type {inst_type} length {length}")
        inst = _decode_instruction(inst_type, length, reader.take(length - TLV_HEADER.size))
        if any(type(prev) is type(inst) for prev in out):
            raise _bad_inst(OFPBIC_UNSUP_INST, f"instruction type {inst_type} repeated")
        out.append(inst)
    return tuple(sorted(out, key=lambda i: INSTRUCTION_ORDER[type(i)]))


_decode_instructions_cached = functools.lru_cache(maxsize=4096)(_decode_instructions)


def set_field_prereqs_missing(match_fields: dict[str, tuple[int, int | None]],
                              acts: tuple[a.Action, ...]) -> list[str]:
    """Set-field targets whose prerequisites the match does not guarantee.

    A push_vlan earlier in the list supplies a VLAN header; other fields
    need their eth_type/ip_proto prerequisites matched exactly.
    """
    bad: list[str] = []
    has_vlan = "vlan_vid" in match_fields and bool(match_fields["vlan_vid"][0] & 0x1000)
    for act in acts:
        if isinstance(act, a.ActPushVlan):
            has_vlan = True
        elif isinstance(act, a.ActPopVlan):
            has_vlan = False
        elif isinstance(act, a.ActSetField):
            if act.field in ("vlan_vid", "vlan_pcp"):
                if not has_vlan:
                    bad.append(act.field)
                continue
            for pre_name, allowed in FIELDS_BY_NAME[act.field].prereqs:
                pre = match_fields.get(pre_name)
                if pre is None or pre[1] is not None or (allowed and pre[0] not in allowed):
                    bad.append(act.field)
                    break
    return bad
