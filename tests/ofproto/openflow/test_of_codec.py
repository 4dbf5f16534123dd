"""Round trips and rejected input for the OpenFlow 1.3 wire codec."""

from __future__ import annotations

import struct

import pytest

from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto import ofp_errors as e
from ovsbpfd.ofproto.match import FIELDS, FIELDS_BY_NAME, Match
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow import multipart as mp
from ovsbpfd.ofproto.openflow.actions_codec import decode_actions, encode_actions
from ovsbpfd.ofproto.openflow.oxm import decode_oxm_fields, encode_match, encode_oxm
from ovsbpfd.ofproto.openflow.port_codec import encode_port, encode_port_stats
from ovsbpfd.ofproto.openflow.table_features import table_features_items
from ovsbpfd.ofproto.types import (
    OFPFC_ADD,
    OFPFC_DELETE,
    OFPFF_SEND_FLOW_REM,
    FlowMod,
    FlowRemoved,
    FlowStatsEntry,
    FlowStatsRequest,
    OfpError,
    OfPort,
    OfPortStats,
    PacketIn,
    TableStats,
)

ALL_ACTIONS = (
    a.ActOutput(1), a.ActOutput(a.OFPP_CONTROLLER, 128), a.ActGroup(7), a.ActSetQueue(3),
    a.ActSetField("eth_dst", 0x020000000001), a.ActSetField("ipv4_src", 0x0A000001),
    a.ActSetField("tcp_dst", 8080), a.ActSetField("vlan_vid", 0x1005),
    a.ActPushVlan(), a.ActPopVlan(), a.ActSetNwTtl(9), a.ActDecNwTtl(), a.ActCopyTtlOut(),
    a.ActCopyTtlIn(), a.ActPushMpls(0x8847), a.ActPopMpls(0x0800), a.ActSetMplsTtl(4),
    a.ActDecMplsTtl(), a.ActPushPbb(0x88E7), a.ActPopPbb(),
)

TCP_MATCH = Match(in_port=1, eth_type=0x0800, ip_proto=6, ipv4_src=(0x0A000000, 0xFF000000),
                  tcp_dst=80, eth_src=(0x020000000000, 0xFFFFFF000000))

ALL_INSTRUCTIONS = (
    a.InstMeter(5), a.InstApplyActions((a.ActOutput(2),)), a.InstClearActions(),
    a.InstWriteActions((a.ActOutput(3),)), a.InstWriteMetadata(0x10, 0xFF),
    a.InstGotoTable(4),
)


def roundtrip(msg: m.OfpMessage) -> m.OfpMessage:
    data = m.encode_message(msg)
    assert len(data) == struct.unpack_from("!H", data, 2)[0]
    back = m.decode_message(data)
    assert m.encode_message(back) == data
    return back


def expect_error(data: bytes, type_: int, code: int) -> None:
    with pytest.raises(OfpError) as info:
        m.decode_message(data)
    assert (info.value.type, info.value.code) == (type_, code), e.error_name(
        info.value.type, info.value.code)


def flow_mod_bytes(match_oxms: bytes, instructions: bytes = b"", command: int = 0) -> bytes:
    """A FLOW_MOD built by hand around raw OXM and instruction bytes."""
    length = 4 + len(match_oxms)
    ofp_match = struct.pack("!HH", 1, length) + match_oxms + bytes((8 - length % 8) % 8)
    body = struct.pack("!QQBBHHHIIIH2x", 0, 0, 0, command, 0, 0, 0x8000, 0xFFFFFFFF,
                       0xFFFFFFFF, 0xFFFFFFFF, 0) + ofp_match + instructions
    return struct.pack("!BBHI", 4, c.OFPT_FLOW_MOD, 8 + len(body), 9) + body


def apply_actions(raw_actions: bytes) -> bytes:
    return struct.pack("!HH4x", c.OFPIT_APPLY_ACTIONS, 8 + len(raw_actions)) + raw_actions


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("msg", [
    m.Hello(), m.Hello(None), m.Hello((1 << 4) | (1 << 1) | (1 << 40)),
    m.Error(e.OFPET_BAD_MATCH, e.OFPBMC_BAD_PREREQ, b"abc", xid=4),
    m.EchoRequest(b"ping", xid=1), m.EchoReply(b"pong", xid=1),
    m.Experimenter(0x2320, 7, b"xyz"),
    m.FeaturesRequest(xid=3), m.FeaturesReply(0x1234, 0, 254, 0, 0x47),
    m.GetConfigRequest(), m.GetConfigReply(0, 128), m.SetConfig(0, 0xFFFF),
    m.FlowModMessage(FlowMod(OFPFC_ADD, TCP_MATCH, ALL_INSTRUCTIONS, table_id=3,
                             priority=7, cookie=0xAB, idle_timeout=10, hard_timeout=20,
                             flags=OFPFF_SEND_FLOW_REM)),
    m.FlowModMessage(FlowMod(OFPFC_DELETE, Match(in_port=1), table_id=0xFF,
                             out_port=2, cookie_mask=0xFF)),
    m.PacketOut(in_port=a.OFPP_CONTROLLER, actions=(a.ActOutput(a.OFPP_TABLE),),
                data=b"\x01" * 60),
    m.PacketInMessage(PacketIn(0, 2, 0xC0, Match(in_port=3), b"x" * 64, 1500)),
    m.FlowRemovedMessage(FlowRemoved(1, 2, 0, 3, 4, 5, 6, 7, 8, 9, TCP_MATCH)),
    m.PortStatus(0, OfPort(5, "veth5", b"\x02\x00\x00\x00\x00\x05", curr_speed=10_000_000)),
    m.BarrierRequest(xid=77), m.BarrierReply(xid=77),
    m.MultipartRequest(c.OFPMP_DESC), m.MultipartReply(c.OFPMP_DESC, 1, b"z" * 16),
    m.RoleRequest(c.OFPCR_ROLE_MASTER, 5), m.RoleReply(c.OFPCR_ROLE_SLAVE, 6),
    m.GetAsyncRequest(), m.GetAsyncReply((3, 0), (7, 7), (15, 0)),
    m.SetAsync((1, 2), (3, 4), (5, 6)),
    m.PortMod(1, b"\x02\x00\x00\x00\x00\x01", 1, 1, 0), m.TableMod(0, 3),
    m.QueueGetConfigRequest(3, xid=2), m.QueueGetConfigReply(3, xid=2),
])
def test_message_round_trip(msg: m.OfpMessage) -> None:
    assert roundtrip(msg) == msg


def test_every_action_round_trips() -> None:
    assert decode_actions(encode_actions(ALL_ACTIONS)) == ALL_ACTIONS


def test_instructions_are_put_in_execution_order() -> None:
    shuffled = tuple(reversed(ALL_INSTRUCTIONS))
    data = m.encode_message(m.FlowModMessage(FlowMod(OFPFC_ADD, instructions=shuffled)))
    msg = m.decode_message(data)
    assert isinstance(msg, m.FlowModMessage)
    assert msg.fm.instructions == ALL_INSTRUCTIONS


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_every_oxm_field_round_trips_exact_and_masked(field) -> None:
    pre = prerequisites_of(field.name)
    value = 0x1001 if field.name == "vlan_vid" else 1
    match = Match({**pre, field.name: (value, None)})
    assert decode_oxm_fields(b"".join(encode_oxm(n, v, mk) for n, (v, mk) in match.items())
                             ) == match
    if field.maskable:
        masked = Match({**pre, field.name: (value, 1 | (value & 0x1000))})
        data = b"".join(encode_oxm(n, v, mk) for n, (v, mk) in masked.items())
        assert decode_oxm_fields(data) == masked


def prerequisites_of(name: str) -> dict[str, tuple[int, int | None]]:
    """Exact values meeting every (nested) prerequisite of ``name``."""
    out: dict[str, tuple[int, int | None]] = {}
    for pre_name, allowed in FIELDS_BY_NAME[name].prereqs:
        default = 1 if pre_name == "in_port" else 0x1001
        out.setdefault(pre_name, (allowed[0] if allowed else default, None))
        for nested, spec in prerequisites_of(pre_name).items():
            out.setdefault(nested, spec)
    return out


def test_port_and_stats_structs_have_spec_sizes() -> None:
    assert len(encode_port(OfPort(1, "p", bytes(6)))) == 64
    assert len(encode_port_stats(OfPortStats(1))) == 112
    assert len(encode_match(Match())) == 8


# ---------------------------------------------------------------- multipart
def test_flow_stats_body_round_trip() -> None:
    entries = [FlowStatsEntry(0, 1, 2, 3, 4, 5, 1, 0xC, 10, 600, TCP_MATCH, ALL_INSTRUCTIONS),
               FlowStatsEntry(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, Match(), ())]
    body = b"".join(mp.encode_flow_stats(x) for x in entries)
    assert mp.decode_flow_stats(body) == entries


def test_flow_stats_request_round_trip() -> None:
    req = FlowStatsRequest(3, 2, 1, 0xAA, 0xFF, TCP_MATCH)
    assert mp.decode_flow_stats_request(mp.encode_flow_stats_request(req)) == req


def test_other_multipart_bodies_round_trip() -> None:
    desc = mp.Desc("m", "h", "s", "n", "d")
    assert mp.decode_desc(mp.encode_desc(desc)) == desc
    assert mp.decode_aggregate_reply(mp.encode_aggregate_reply(1, 2, 3)) == (1, 2, 3)
    ts = [TableStats(0, 1, 2, 3), TableStats(1, 4, 5, 6)]
    assert mp.decode_table_stats(b"".join(map(mp.encode_table_stats, ts))) == ts
    assert mp.decode_port_stats_request(mp.encode_port_stats_request(7)) == 7
    st = [OfPortStats(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)]
    assert mp.decode_port_stats_list(b"".join(map(encode_port_stats, st))) == st
    ports = [OfPort(1, "a", b"\x02" * 6, 1, 2, 3, 4, 5, 6, 7, 8)]
    assert mp.decode_port_desc_list(b"".join(map(encode_port, ports))) == ports


def test_big_replies_split_under_64k_with_reply_more() -> None:
    entry = mp.encode_flow_stats(
        FlowStatsEntry(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, TCP_MATCH, ALL_INSTRUCTIONS))
    items = [entry] * 2000
    replies = mp.split_reply(c.OFPMP_FLOW, items, xid=5)
    assert len(replies) > 1
    encoded = [m.encode_message(r) for r in replies]
    assert all(len(x) <= 0xFFFF for x in encoded)
    assert [r.flags for r in replies] == [c.OFPMPF_REPLY_MORE] * (len(replies) - 1) + [0]
    assert sum(len(mp.decode_flow_stats(r.body)) for r in replies) == 2000
    assert mp.split_reply(c.OFPMP_FLOW, [], xid=1)[0].body == b""


def test_table_features_items_are_well_formed() -> None:
    items = table_features_items(254)
    assert len(items) == 254
    for table_id, item in enumerate(items):
        length, tid = struct.unpack_from("!HB", item)
        assert (length, tid) == (len(item), table_id)
        assert length % 8 == 0


# ---------------------------------------------------------------- rejected input
def test_header_errors() -> None:
    hello = m.encode_message(m.FeaturesRequest())
    expect_error(b"\x04\x05\x00", e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_LEN)
    expect_error(b"\x01" + hello[1:], e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_VERSION)
    expect_error(struct.pack("!BBHI", 4, 99, 8, 1), e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_TYPE)
    expect_error(struct.pack("!BBHI", 4, c.OFPT_FEATURES_REQUEST, 12, 1) + b"abcd",
                 e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_LEN)
    expect_error(struct.pack("!BBHI", 4, c.OFPT_ROLE_REQUEST, 12, 1) + b"abcd",
                 e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_LEN)


@pytest.mark.parametrize("oxms,code", [
    (encode_oxm("tcp_dst", 80), e.OFPBMC_BAD_PREREQ),
    (encode_oxm("eth_type", 0x0806) + encode_oxm("ipv4_src", 1), e.OFPBMC_BAD_PREREQ),
    (encode_oxm("in_port", 1) + encode_oxm("in_port", 2), e.OFPBMC_DUP_FIELD),
    (encode_oxm("in_port", 1, 0xFF), e.OFPBMC_BAD_MASK),
    (encode_oxm("eth_dst", 0xFF, 0x0F), e.OFPBMC_BAD_WILDCARDS),
    (encode_oxm("eth_type", 0x0800) + encode_oxm("ip_dscp", 64), e.OFPBMC_BAD_VALUE),
    (struct.pack("!I", (0x8000 << 16) | (99 << 9) | 4) + bytes(4), e.OFPBMC_BAD_FIELD),
    (struct.pack("!I", (0x0001 << 16) | (1 << 9) | 4) + bytes(4), e.OFPBMC_BAD_FIELD),
    (struct.pack("!I", (0x8000 << 16) | (0 << 9) | 3) + bytes(3), e.OFPBMC_BAD_LEN),
    (struct.pack("!I", (0x8000 << 16) | (0 << 9) | 4) + bytes(2), e.OFPBMC_BAD_LEN),
])
def test_bad_match_errors(oxms: bytes, code: int) -> None:
    expect_error(flow_mod_bytes(oxms), e.OFPET_BAD_MATCH, code)


def test_bad_match_type_and_length() -> None:
    good = flow_mod_bytes(b"")
    bad_type = good[:48] + struct.pack("!H", 0) + good[50:]
    expect_error(bad_type, e.OFPET_BAD_MATCH, e.OFPBMC_BAD_TYPE)
    bad_len = good[:50] + struct.pack("!H", 200) + good[52:]
    expect_error(bad_len, e.OFPET_BAD_MATCH, e.OFPBMC_BAD_LEN)


@pytest.mark.parametrize("raw,type_,code", [
    (struct.pack("!HH4x", 99, 8), e.OFPET_BAD_ACTION, e.OFPBAC_BAD_TYPE),
    (struct.pack("!HHI", 0xFFFF, 8, 0x2320), e.OFPET_BAD_ACTION, e.OFPBAC_BAD_EXPERIMENTER),
    (struct.pack("!HHIH6x", 0, 12, 1, 0), e.OFPET_BAD_ACTION, e.OFPBAC_BAD_LEN),
    (struct.pack("!HHIH6x", 0, 16, 0, 0), e.OFPET_BAD_ACTION, e.OFPBAC_BAD_OUT_PORT),
    (struct.pack("!HHIH6x", 0, 16, a.OFPP_TABLE, 0), e.OFPET_BAD_ACTION,
     e.OFPBAC_BAD_OUT_PORT),
    (struct.pack("!HHH2x", c.OFPAT_PUSH_VLAN, 8, 0x0800), e.OFPET_BAD_ACTION,
     e.OFPBAC_BAD_ARGUMENT),
    (struct.pack("!HHI", c.OFPAT_GROUP, 8, 0xFFFFFFFF), e.OFPET_BAD_ACTION,
     e.OFPBAC_BAD_OUT_GROUP),
    (struct.pack("!HH", c.OFPAT_SET_FIELD, 16) + encode_oxm("in_port", 2) + bytes(4),
     e.OFPET_BAD_ACTION, e.OFPBAC_BAD_SET_TYPE),
    (struct.pack("!HH", c.OFPAT_SET_FIELD, 16) + encode_oxm("tcp_dst", 2) + bytes(6),
     e.OFPET_BAD_ACTION, e.OFPBAC_MATCH_INCONSISTENT),
])
def test_bad_action_errors(raw: bytes, type_: int, code: int) -> None:
    expect_error(flow_mod_bytes(b"", apply_actions(raw)), type_, code)


@pytest.mark.parametrize("raw,code", [
    (struct.pack("!HH4x", 42, 8), e.OFPBIC_UNKNOWN_INST),
    (struct.pack("!HHI", 0xFFFF, 8, 1), e.OFPBIC_BAD_EXPERIMENTER),
    (struct.pack("!HHB3x", c.OFPIT_GOTO_TABLE, 16, 1) + bytes(8), e.OFPBIC_BAD_LEN),
    (struct.pack("!HH4x", c.OFPIT_CLEAR_ACTIONS, 6), e.OFPBIC_BAD_LEN),
    (struct.pack("!HH4x", c.OFPIT_CLEAR_ACTIONS, 8) * 2, e.OFPBIC_UNSUP_INST),
])
def test_bad_instruction_errors(raw: bytes, code: int) -> None:
    expect_error(flow_mod_bytes(b"", raw), e.OFPET_BAD_INSTRUCTION, code)


def test_flow_mod_command_flags_and_table() -> None:
    expect_error(flow_mod_bytes(b"", command=9), e.OFPET_FLOW_MOD_FAILED,
                 e.OFPFMFC_BAD_COMMAND)
    data = bytearray(m.encode_message(m.FlowModMessage(FlowMod(OFPFC_ADD, flags=0x100))))
    expect_error(bytes(data), e.OFPET_FLOW_MOD_FAILED, e.OFPFMFC_BAD_FLAGS)
    data = m.encode_message(m.FlowModMessage(FlowMod(OFPFC_ADD, table_id=0xFF)))
    expect_error(data, e.OFPET_FLOW_MOD_FAILED, e.OFPFMFC_BAD_TABLE_ID)


def test_set_field_on_vlan_needs_a_vlan() -> None:
    set_vid = a.InstApplyActions((a.ActSetField("vlan_vid", 0x1005),))
    data = m.encode_message(m.FlowModMessage(FlowMod(OFPFC_ADD, instructions=(set_vid,))))
    expect_error(data, e.OFPET_BAD_ACTION, e.OFPBAC_MATCH_INCONSISTENT)
    pushed = a.InstApplyActions((a.ActPushVlan(), a.ActSetField("vlan_vid", 0x1005)))
    roundtrip(m.FlowModMessage(FlowMod(OFPFC_ADD, instructions=(pushed,))))


def test_error_names() -> None:
    name = e.error_name(e.OFPET_BAD_MATCH, e.OFPBMC_BAD_PREREQ)
    assert name == "OFPET_BAD_MATCH/OFPBMC_BAD_PREREQ"
    assert e.error_name(e.OFPET_HELLO_FAILED, 0) == "OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE"


def test_encode_order_names_every_field_once() -> None:
    from ovsbpfd.ofproto.openflow.oxm import ENCODE_ORDER
    assert sorted(ENCODE_ORDER) == sorted(f.name for f in FIELDS)


def test_zero_mask_wildcards_the_field() -> None:
    data = encode_oxm("eth_type", 0x0800) + encode_oxm("ipv4_src", 0, 0)
    assert decode_oxm_fields(data) == Match(eth_type=0x0800)
