"""OXM TLVs and the ofp_match structure <-> ``ovsbpfd.ofproto.match.Match``.

Decoding checks what OpenFlow 1.3 (and Open vSwitch) check, in the same
order: lengths, known class/field, masks only on maskable fields, no value
bits outside the mask, values within the field's width, no duplicates, and
finally prerequisites.  Each failure is the spec's OFPET_BAD_MATCH code.
"""

from __future__ import annotations

import operator
import struct

from ovsbpfd.ofproto.match import FIELDS_BY_CODE, FIELDS_BY_NAME, OFPXMC_OPENFLOW_BASIC, Match
from ovsbpfd.ofproto.ofp_errors import (
    OFPBMC_BAD_FIELD,
    OFPBMC_BAD_LEN,
    OFPBMC_BAD_MASK,
    OFPBMC_BAD_PREREQ,
    OFPBMC_BAD_TYPE,
    OFPBMC_BAD_VALUE,
    OFPBMC_BAD_WILDCARDS,
    OFPBMC_DUP_FIELD,
    OFPET_BAD_MATCH,
)
from ovsbpfd.ofproto.openflow.constants import OFPMT_OXM
from ovsbpfd.ofproto.openflow.header import pad8
from ovsbpfd.ofproto.openflow.reader import Reader
from ovsbpfd.ofproto.types import OfpError

OXM_HEADER = struct.Struct("!I")
MATCH_HEADER = struct.Struct("!HH")

# Significant bits of fields narrower than their wire width; a value with
# bits above these is OFPBMC_BAD_VALUE.
VALUE_BITS = {
    "vlan_vid": 13, "vlan_pcp": 3, "ip_dscp": 6, "ip_ecn": 2,
    "ipv6_flabel": 20, "mpls_label": 20, "mpls_tc": 3, "mpls_bos": 1,
    "ipv6_exthdr": 9,
}


# The order Open vSwitch writes OXM fields in (L2 before L3 before L4, the
# prerequisite eth_type/ip_proto before the fields needing them).  The order
# carries no meaning, but following it makes our bytes equal to ovs-ofctl's.
ENCODE_ORDER = (
    "in_port", "in_phy_port", "eth_src", "eth_dst", "eth_type", "vlan_vid", "vlan_pcp",
    "mpls_tc", "mpls_bos", "mpls_label", "pbb_isid", "ipv4_src", "ipv4_dst", "ipv6_src",
    "ipv6_dst", "ip_dscp", "ip_ecn", "ipv6_flabel", "ipv6_exthdr", "ip_proto", "tcp_src",
    "tcp_dst", "udp_src", "udp_dst", "sctp_src", "sctp_dst", "icmpv4_type", "icmpv4_code",
    "icmpv6_type", "icmpv6_code", "ipv6_nd_target", "ipv6_nd_sll", "ipv6_nd_tll", "arp_op",
    "arp_spa", "arp_tpa", "arp_sha", "arp_tha", "tunnel_id", "metadata",
)
_ENCODE_RANK = {name: rank for rank, name in enumerate(ENCODE_ORDER)}


def value_bits(name: str) -> int:
    return VALUE_BITS.get(name, FIELDS_BY_NAME[name].nbytes * 8)


def oxm_header(name: str, has_mask: bool) -> int:
    field = FIELDS_BY_NAME[name]
    length = field.nbytes * (2 if has_mask else 1)
    return (OFPXMC_OPENFLOW_BASIC << 16) | (field.code << 9) | (int(has_mask) << 8) | length


def encode_oxm(name: str, value: int, mask: int | None = None) -> bytes:
    """One OXM TLV (exact when ``mask`` is None)."""
    nbytes = FIELDS_BY_NAME[name].nbytes
    out = OXM_HEADER.pack(oxm_header(name, mask is not None)) + value.to_bytes(nbytes, "big")
    if mask is not None:
        out += mask.to_bytes(nbytes, "big")
    return out


def encode_oxm_fields(match: Match) -> bytes:
    names = sorted(match, key=lambda n: _ENCODE_RANK.get(n, len(ENCODE_ORDER)))
    return b"".join(encode_oxm(name, *match[name]) for name in names)


def encode_match(match: Match) -> bytes:
    """ofp_match (type OXM) with its trailing padding to 8 bytes."""
    fields = encode_oxm_fields(match)
    length = MATCH_HEADER.size + len(fields)
    return MATCH_HEADER.pack(OFPMT_OXM, length) + fields + bytes(pad8(length))


class OxmDecodeError(OfpError):
    """A malformed OXM TLV; ``kind`` says what was wrong, independent of the
    error type, so set-field decoding can map it to OFPET_BAD_ACTION codes."""

    def __init__(self, kind: str, code: int, message: str) -> None:
        super().__init__(OFPET_BAD_MATCH, code, message)
        self.kind = kind


def decode_oxm(reader: Reader) -> tuple[str, int, int | None]:
    """Pull one OXM TLV: ``(field name, value, mask or None)``."""
    if reader.remaining < OXM_HEADER.size:
        raise OxmDecodeError("len", OFPBMC_BAD_LEN, "truncated OXM header")
    (header,) = reader.unpack(OXM_HEADER)
    oxm_class, code = header >> 16, (header >> 9) & 0x7F
    has_mask, length = bool(header & 0x100), header & 0xFF
    if reader.remaining < length:
        raise OxmDecodeError("len", OFPBMC_BAD_LEN,
                             f"OXM payload of {length} bytes but {reader.remaining} left")
    payload = reader.take(length)
    field = FIELDS_BY_CODE.get(code) if oxm_class == OFPXMC_OPENFLOW_BASIC else None
    if field is None:
        raise OxmDecodeError("field", OFPBMC_BAD_FIELD,
                             f"unknown OXM class 0x{oxm_class:04x} field {code}")
    if length != field.nbytes * (2 if has_mask else 1):
        raise OxmDecodeError("len", OFPBMC_BAD_LEN, f"bad OXM length {length} for {field.name}")
    value = int.from_bytes(payload[:field.nbytes], "big")
    mask = int.from_bytes(payload[field.nbytes:], "big") if has_mask else None
    if mask is not None:
        if not field.maskable:
            raise OxmDecodeError("mask", OFPBMC_BAD_MASK, f"{field.name} is not maskable")
        if value & ~mask:
            raise OxmDecodeError("wildcards", OFPBMC_BAD_WILDCARDS,
                                 f"{field.name} value has bits outside its mask")
    limit = (1 << value_bits(field.name)) - 1
    if value > limit or (mask is not None and mask > limit):
        raise OxmDecodeError("value", OFPBMC_BAD_VALUE, f"{field.name} value out of range")
    return field.name, value, mask


def _fast_specs() -> dict[int, tuple[str, int, int, int]]:
    """Every well-formed OXM header -> (name, value bytes, value limit, has mask).

    A header not in here (unknown field, wrong length, mask on an unmaskable
    field) takes the slow path, which names the error."""
    specs = {}
    for field in FIELDS_BY_NAME.values():
        limit = (1 << value_bits(field.name)) - 1
        specs[oxm_header(field.name, False)] = (field.name, field.nbytes, limit, 0)
        if field.maskable:
            specs[oxm_header(field.name, True)] = (field.name, field.nbytes, limit, 1)
    return specs


_FAST_SPECS = _fast_specs()


def decode_oxm_fields(data: bytes) -> Match:
    """A sequence of OXM TLVs (no ofp_match header) as a checked Match."""
    fields = _fast_fields(data)
    if fields is None:  # something is wrong: let the checked decoder say what
        fields = _checked_fields(data)
    match = Match(fields)
    missing = match.missing_prereqs()
    if missing:
        raise OfpError(OFPET_BAD_MATCH, OFPBMC_BAD_PREREQ,
                       f"prerequisites not met for {', '.join(missing)}")
    if any(mask == 0 for _, mask in fields.values()):
        # A zero mask wildcards the whole field: it constrains nothing.
        match = Match({k: v for k, v in fields.items() if v[1] != 0})
    return match


def _fast_fields(data: bytes) -> dict[str, tuple[int, int | None]] | None:
    """Decode well-formed TLVs quickly; None at the first doubtful one."""
    fields: dict[str, tuple[int, int | None]] = {}
    offset, end = 0, len(data)
    from_bytes = int.from_bytes
    while offset < end:
        if end - offset < 4:
            return None
        spec = _FAST_SPECS.get(from_bytes(data[offset:offset + 4], "big"))
        if spec is None:
            return None
        name, nbytes, limit, has_mask = spec
        start = offset + 4
        offset = start + nbytes * (2 if has_mask else 1)
        if offset > end or name in fields:
            return None
        value = from_bytes(data[start:start + nbytes], "big")
        mask = from_bytes(data[start + nbytes:offset], "big") if has_mask else None
        if value > limit or (mask is not None and (mask > limit or value & ~mask)):
            return None
        fields[name] = (value, mask)
    return fields


def _checked_fields(data: bytes) -> dict[str, tuple[int, int | None]]:
    reader = Reader(data, OFPET_BAD_MATCH, OFPBMC_BAD_LEN)
    fields: dict[str, tuple[int, int | None]] = {}
    while reader.remaining:
        name, value, mask = decode_oxm(reader)
        if name in fields:
            raise OfpError(OFPET_BAD_MATCH, OFPBMC_DUP_FIELD, f"duplicate field {name}")
        fields[name] = (value, mask)
    return fields


def decode_match(reader: Reader) -> Match:
    """Pull an ofp_match (with its padding) from a message body."""
    data, offset = reader.data, reader.offset
    if len(data) - offset < MATCH_HEADER.size:
        raise OfpError(OFPET_BAD_MATCH, OFPBMC_BAD_LEN, "truncated ofp_match")
    match_type, length = MATCH_HEADER.unpack_from(data, offset)
    if match_type != OFPMT_OXM:
        raise OfpError(OFPET_BAD_MATCH, OFPBMC_BAD_TYPE, f"match type {match_type}")
    padded = length + pad8(length)
    if length < MATCH_HEADER.size or len(data) - offset < padded:
        raise OfpError(OFPET_BAD_MATCH, OFPBMC_BAD_LEN, f"bad ofp_match length {length}")
    reader.offset = offset + padded
    return decode_oxm_fields(data[offset + MATCH_HEADER.size:offset + length])


# ---------------------------------------------------------------- per-shape plans
# A FLOW_MOD flood repeats a few match shapes (the same OXM headers in the
# same order) with new values.  A plan, made once per shape, reads all of a
# match's headers and values with one precompiled Struct, knows the field
# order a Match keeps, and remembers the prerequisite verdict per shape and
# the values it depends on.  Plans are found by (match length, first header)
# and confirmed by the headers the Struct read.
_PREREQ_KEY_FIELDS = frozenset(
    pre for f in FIELDS_BY_NAME.values() for pre, _allowed in f.prereqs)
_PLAN_CACHE_MAX = 1024
_PREREQ_CACHE_MAX = 4096
_INT_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


class _MatchPlan:
    __slots__ = ("layout", "headers", "headers_of", "fields", "prereq_slots", "prereqs",
                 "exact_signature")

    def __init__(self, headers: tuple[int, ...],
                 entries: list[tuple[str, int, int, int, int, bool]]) -> None:
        formats = []
        for header in headers:
            nbytes = _FAST_SPECS[header][1]
            value = _INT_FORMATS.get(nbytes, f"{nbytes}s")
            formats.append("I" + value * (2 if header & 0x100 else 1))
        self.layout = struct.Struct("!" + "".join(formats))
        # the headers among the unpacked items, as itemgetter gives them
        at, index = [], 0
        for header in headers:
            at.append(index)
            index += 3 if header & 0x100 else 2
        self.headers_of = operator.itemgetter(*at)
        self.headers = headers if len(headers) > 1 else headers[0]
        # (name, value item, mask item or -1, value limit, full mask, as bytes)
        # in Match order
        self.fields = tuple(sorted(entries, key=lambda e: FIELDS_BY_NAME[e[0]].code))
        # positions (in ``fields``) of the values prerequisites depend on
        self.prereq_slots = tuple(i for i, e in enumerate(self.fields)
                                  if e[0] in _PREREQ_KEY_FIELDS)
        self.prereqs: dict[tuple, list[str]] = {}
        # Match.signature() of the plan's matches that carry no mask
        self.exact_signature = tuple((e[0], e[4]) for e in self.fields)

    def read(self, data: bytes, start: int) -> tuple | None:
        """The unpacked items at ``start``, None if the headers differ."""
        items = self.layout.unpack_from(data, start)
        return items if self.headers_of(items) == self.headers else None


# (length of the OXM TLVs, first header) -> plan; headers -> plan (None: no
# plan covers that shape)
_PLANS_BY_START: dict[tuple[int, int], _MatchPlan] = {}
_PLANS: dict[tuple[int, ...], _MatchPlan | None] = {}


def _walk_plan(data: bytes, start: int, end: int) -> _MatchPlan | None:
    """The plan of the OXM TLVs in ``data[start:end]`` found by walking their
    headers; None if they are not a well-formed shape the plans cover."""
    headers = []
    offset = start
    unpack = OXM_HEADER.unpack_from
    while offset < end:
        if end - offset < 4:
            return None
        (header,) = unpack(data, offset)
        headers.append(header)
        offset += 4 + (header & 0xFF)
    if offset != end:
        return None
    key = tuple(headers)
    plan = _PLANS.get(key, False)
    if plan is False:
        plan = _make_plan(key)
        if len(_PLANS) >= _PLAN_CACHE_MAX:
            _PLANS.clear()
            _PLANS_BY_START.clear()
        _PLANS[key] = plan
    return plan  # type: ignore[return-value]


def _make_plan(headers: tuple[int, ...]) -> _MatchPlan | None:
    entries: list[tuple[str, int, int, int, int, bool]] = []
    seen = set()
    index = 0
    for header in headers:
        spec = _FAST_SPECS.get(header)
        if spec is None:
            return None
        name, nbytes, limit, has_mask = spec
        if name in seen:
            return None
        seen.add(name)
        entries.append((name, index + 1, index + 2 if has_mask else -1, limit,
                        FIELDS_BY_NAME[name].full_mask, nbytes not in _INT_FORMATS))
        index += 3 if has_mask else 2
    return _MatchPlan(headers, entries)


def decode_match_planned(data: bytes, offset: int) -> tuple[Match, int] | None:
    """An ofp_match at ``offset`` of ``data`` and the offset after its padding,
    exactly as ``decode_match`` gives it; None for anything unusual (a bad
    or unknown TLV, a value out of range, a zero mask, missing
    prerequisites), which ``decode_match`` then decodes or refuses."""
    if len(data) - offset < MATCH_HEADER.size:
        return None
    match_type, length = MATCH_HEADER.unpack_from(data, offset)
    padded = length + pad8(length)
    if match_type != OFPMT_OXM or length < MATCH_HEADER.size or len(data) - offset < padded:
        return None
    start = offset + MATCH_HEADER.size
    n = length - MATCH_HEADER.size
    if not n:
        return Match.from_canonical({}, True, (), ()), offset + padded
    if n < 4:
        return None
    start_key = (n, OXM_HEADER.unpack_from(data, start)[0])
    plan = _PLANS_BY_START.get(start_key)
    items = plan.read(data, start) if plan is not None else None
    if items is None:
        plan = _walk_plan(data, start, offset + length)
        if plan is None:
            return None
        _PLANS_BY_START[start_key] = plan
        items = plan.read(data, start)
        assert items is not None
    from_bytes = int.from_bytes
    fields: dict[str, tuple[int, int | None]] = {}
    masked = False
    for name, value_at, mask_at, limit, full, as_bytes in plan.fields:
        value = items[value_at]
        if as_bytes:
            value = from_bytes(value, "big")
        if value > limit:
            return None
        if mask_at < 0:
            fields[name] = (value, None)
            continue
        mask = items[mask_at]
        if as_bytes:
            mask = from_bytes(mask, "big")
        if mask > limit or value & ~mask or not mask:
            return None
        if mask == full:
            fields[name] = (value, None)
        else:
            fields[name] = (value, mask)
            masked = True
    # The verdict depends on which fields there are (the plan) and on the
    # values of the prerequisite fields among them.
    specs = list(fields.values())
    key = tuple([specs[i] for i in plan.prereq_slots])
    missing = plan.prereqs.get(key)
    if missing is None:
        missing = Match.from_canonical(fields).missing_prereqs()
        if len(plan.prereqs) >= _PREREQ_CACHE_MAX:
            plan.prereqs.clear()
        plan.prereqs[key] = missing
    if missing:
        return None
    signature = None if masked else plan.exact_signature
    values = tuple([spec[0] for spec in specs])
    return (Match.from_canonical(fields, True, signature, values), offset + padded)
