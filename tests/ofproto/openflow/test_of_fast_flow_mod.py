"""The FLOW_MOD fast decoder against the general one: on generated and
mutated messages it either declines (None) or gives exactly what the general
decoder gives, and ``decode_message`` (which tries it first) still answers
every malformed message with the general decoder's error."""

from __future__ import annotations

import random
import struct

from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto.match import FIELDS, FIELDS_BY_NAME, Match
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow.oxm import OXM_HEADER, oxm_header
from ovsbpfd.ofproto.openflow.reader import Reader
from ovsbpfd.ofproto.types import FlowMod, OfpError

OUTPUT_2 = (a.InstApplyActions((a.ActOutput(2),)),)
INSTRUCTION_CHOICES = [
    (),
    OUTPUT_2,
    (a.InstApplyActions((a.ActOutput(a.OFPP_TABLE),)),),
    (a.InstApplyActions((a.ActSetField("ipv4_dst", 0x0A000001),)),),
    (a.InstApplyActions((a.ActSetField("vlan_vid", 0x1005),)),),
    (a.InstGotoTable(3),),
    (a.InstMeter(1), a.InstWriteActions((a.ActOutput(1),))),
    (a.InstClearActions(), a.InstApplyActions((a.ActGroup(7), a.ActOutput(3)))),
    (a.InstWriteMetadata(5, 0xFF),),
]


def _oxm(rng: random.Random) -> bytes:
    """One OXM TLV: mostly well-formed, sometimes with a bad mask, value,
    length or field."""
    field = rng.choice(FIELDS)
    has_mask = field.maskable and rng.random() < 0.4
    full = (1 << field.nbytes * 8) - 1
    value = rng.choice([0, 1, 0x1000 | rng.randrange(4096), rng.randrange(full + 1), full]) & full
    mask = rng.choice([0, full, rng.randrange(full + 1), full >> 1]) if has_mask else None
    if mask is not None and rng.random() < 0.8:
        value &= mask
    body = value.to_bytes(field.nbytes, "big")
    if mask is not None:
        body += mask.to_bytes(field.nbytes, "big")
    header = oxm_header(field.name, mask is not None)
    roll = rng.random()
    if roll < 0.03:
        header ^= 0x100  # mask bit without the length to go with it
    elif roll < 0.06:
        header = (header & ~0xFE00) | (rng.randrange(40, 128) << 9)  # unknown field
    elif roll < 0.08:
        header = (0x0001 << 16) | (header & 0xFFFF)  # another OXM class
    return OXM_HEADER.pack(header) + body


def _prereq_tlvs(rng: random.Random) -> list[bytes]:
    """eth_type / ip_proto / icmpv6_type first, as real matches carry them."""
    out = []
    eth_type = rng.choice([0x0800, 0x86DD, 0x0806, 0x8847, 0x88E7, None])
    if eth_type is not None:
        out.append(OXM_HEADER.pack(oxm_header("eth_type", False)) + struct.pack("!H", eth_type))
        if eth_type in (0x0800, 0x86DD) and rng.random() < 0.6:
            proto = rng.choice([1, 6, 17, 58, 132])
            out.append(OXM_HEADER.pack(oxm_header("ip_proto", False)) + bytes([proto]))
            if proto == 58 and rng.random() < 0.5:
                out.append(OXM_HEADER.pack(oxm_header("icmpv6_type", False))
                           + bytes([rng.choice([135, 136, 1])]))
    return out


def _match_bytes(rng: random.Random) -> bytes:
    tlvs = _prereq_tlvs(rng) + [_oxm(rng) for _ in range(rng.randrange(4))]
    if rng.random() < 0.5:
        rng.shuffle(tlvs)
    fields = b"".join(tlvs)
    length = 4 + len(fields)
    return struct.pack("!HH", 1, length) + fields + bytes((8 - length % 8) % 8)


def _flow_mod_bytes(rng: random.Random, xid: int) -> bytes:
    fixed = m.FLOW_MOD.pack(
        rng.choice([0, 0x1234]), rng.choice([0, 0xFFFF]),
        rng.choice([0, 0, 1, 200, 254, 255]), rng.choice([0, 0, 1, 2, 3, 4, 5]),
        rng.choice([0, 10]), rng.choice([0, 20]), rng.randrange(0x10000),
        rng.choice([0xFFFFFFFF, 0xFFFFFFFF, 7]), rng.choice([0xFFFFFFFF, 2]),
        rng.choice([0xFFFFFFFF, 3]), rng.choice([0, 0, 1, 2, 4, 0x20]))
    instructions = m.encode_instructions(rng.choice(INSTRUCTION_CHOICES))
    body = fixed + _match_bytes(rng) + instructions
    return struct.pack("!BBHI", 4, 14, 8 + len(body), xid) + body


def _mutated(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        out[rng.randrange(8, len(out))] = rng.randrange(256)
    if rng.random() < 0.3:
        out = out[:rng.randrange(8, len(out) + 1)]
    out[2:4] = len(out).to_bytes(2, "big")
    return bytes(out)


def _general(data: bytes) -> m.FlowModMessage | tuple[int, int]:
    """What the general decoder makes of a FLOW_MOD: the message or (type, code)."""
    try:
        msg = m.FlowModMessage.decode_body(Reader(data[8:]))
    except OfpError as err:
        return err.type, err.code
    msg.xid = struct.unpack_from("!I", data, 4)[0]
    return msg


def _same_match(fast: Match, general: Match) -> None:
    assert fast == general
    assert list(fast.items()) == list(general.items())  # same field order
    assert fast.signature() == general.signature()
    assert fast.masked_values() == general.masked_values()
    assert hash(fast) == hash(general)
    assert fast.missing_prereqs() == general.missing_prereqs()


def _check(data: bytes) -> bool:
    """Fast and general agree on ``data``; True if the fast path took it."""
    general = _general(data)
    xid = struct.unpack_from("!I", data, 4)[0]
    fast = m.decode_flow_mod_fast(data, xid)
    if fast is not None:
        assert isinstance(general, m.FlowModMessage), (data.hex(), general)
        assert fast == general
        _same_match(fast.fm.match, general.fm.match)
    try:
        through = m.decode_message(data)
    except OfpError as err:
        assert (err.type, err.code) == general, data.hex()
    else:
        assert through == general, data.hex()
    return fast is not None


def test_fast_flow_mod_decoder_equals_the_general_one_on_generated_messages() -> None:
    rng = random.Random(20261125)
    taken = 0
    for xid in range(6000):
        taken += _check(_flow_mod_bytes(rng, xid))
    assert taken > 500  # the fast path really ran (most generated ones are refused)


def test_fast_flow_mod_decoder_declines_what_the_general_one_refuses() -> None:
    rng = random.Random(7)
    seeds = [_flow_mod_bytes(rng, xid) for xid in range(300)]
    for _ in range(12000):
        _check(_mutated(rng, rng.choice(seeds)))


def test_every_truncation_and_padding_change_agrees() -> None:
    match = Match({"eth_type": 0x0800, "ipv4_dst": (0x0A000000, 0xFFFFFF00),
                   "ip_proto": 6, "tcp_dst": 80})
    data = m.encode_message(m.FlowModMessage(FlowMod(0, match, OUTPUT_2, priority=9), xid=4))
    for cut in range(8, len(data) + 1):
        short = data[:2] + cut.to_bytes(2, "big") + data[4:cut]
        _check(short)
    assert _check(data)


def test_common_shapes_take_the_fast_path_and_keep_their_masks() -> None:
    shapes = [
        Match({"eth_type": 0x0800, "ipv4_dst": (0x0A000001, None)}),
        Match({"in_port": 1}),
        Match({"eth_type": 0x86DD, "ipv6_src": (1 << 120, 0xFF << 120)}),
        Match({"vlan_vid": (0x1000, 0x1000)}),
        Match({"eth_type": 0x86DD, "ipv6_flabel": (5, 0xFFFFF)}),  # mask wider than a flabel
        Match({"eth_dst": (0x010000000000, 0x010000000000), "eth_type": 0x0806,
               "arp_op": 1}),
        Match(),
    ]
    for shape in shapes:
        data = m.encode_message(m.FlowModMessage(FlowMod(0, shape, OUTPUT_2), xid=1))
        assert _check(data), shape
        fast = m.decode_flow_mod_fast(data, 1)
        assert fast is not None
        _same_match(fast.fm.match, shape)


def test_fields_with_narrow_values_are_range_checked() -> None:
    for name in ("vlan_pcp", "ip_dscp", "ip_ecn", "ipv6_flabel", "mpls_label"):
        field = FIELDS_BY_NAME[name]
        prereq = field.prereqs[0] if field.prereqs else None
        tlvs = b""
        if prereq and prereq[0] == "eth_type":
            tlvs += OXM_HEADER.pack(oxm_header("eth_type", False)) + \
                struct.pack("!H", prereq[1][0])
        if prereq and prereq[0] == "vlan_vid":
            tlvs += OXM_HEADER.pack(oxm_header("vlan_vid", False)) + struct.pack("!H", 0x1001)
        too_big = (1 << field.nbytes * 8) - 1
        tlvs += OXM_HEADER.pack(oxm_header(name, False)) + too_big.to_bytes(field.nbytes, "big")
        length = 4 + len(tlvs)
        body = (m.FLOW_MOD.pack(0, 0, 0, 0, 0, 0, 1, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
                + struct.pack("!HH", 1, length) + tlvs + bytes((8 - length % 8) % 8))
        data = struct.pack("!BBHI", 4, 14, 8 + len(body), 3) + body
        assert not _check(data), name
        assert isinstance(_general(data), tuple)


def test_shapes_alike_in_length_and_first_field_are_told_apart() -> None:
    shapes = [
        Match({"eth_type": 0x0800, "ipv4_dst": 0x0A000001}),
        Match({"eth_type": 0x0800, "ipv4_src": 0x0A000002}),
        Match({"eth_type": 0x0806, "arp_spa": 0x0A000003}),
        Match({"eth_type": 0x0800, "ipv4_src": 0x0A000002}),
        Match({"eth_type": 0x0800, "ipv4_dst": 0x0A000001}),
    ]
    for shape in shapes * 3:
        data = m.encode_message(m.FlowModMessage(FlowMod(0, shape, OUTPUT_2), xid=2))
        assert _check(data)
        fast = m.decode_flow_mod_fast(data, 2)
        assert fast is not None
        _same_match(fast.fm.match, shape)
