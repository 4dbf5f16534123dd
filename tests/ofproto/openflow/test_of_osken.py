"""os-ken 3.1.1 as a wire oracle: it serialises and we decode; we encode and
it parses.  (os-ken is a test dependency: pip install os-ken==3.1.1.)"""

from __future__ import annotations

import pytest

from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto import ofp_errors as e
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow import multipart as mp
from ovsbpfd.ofproto.openflow.port_codec import encode_port, encode_port_stats
from ovsbpfd.ofproto.types import (
    OFPFC_ADD,
    OFPFC_DELETE_STRICT,
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

osken = pytest.importorskip("os_ken", reason="os-ken==3.1.1 is the wire oracle")
from os_ken.ofproto import ofproto_parser, ofproto_protocol  # noqa: E402
from os_ken.ofproto import ofproto_v1_3 as o  # noqa: E402
from os_ken.ofproto import ofproto_v1_3_parser as p  # noqa: E402

DP = ofproto_protocol.ProtocolDesc(version=4)


def osken_bytes(msg, xid: int = 7) -> bytes:
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def osken_parse(data: bytes):
    version, msg_type, length, xid = ofproto_parser.header(data)
    return ofproto_parser.msg(DP, version, msg_type, length, xid, data)


# ---------------------------------------------------------------- os-ken -> ovsbpfd
def test_flow_mod_from_osken() -> None:
    match = p.OFPMatch(in_port=1, eth_type=0x0800, ipv4_src=("10.0.0.0", "255.0.0.0"),
                       ip_proto=6, tcp_dst=80, vlan_vid=0x1005, metadata=(5, 0xFF),
                       eth_dst="02:00:00:00:00:09")
    inst = [
        p.OFPInstructionMeter(4),
        p.OFPInstructionActions(o.OFPIT_APPLY_ACTIONS, [
            p.OFPActionPushVlan(0x88A8), p.OFPActionSetField(vlan_pcp=3),
            p.OFPActionOutput(2), p.OFPActionOutput(o.OFPP_CONTROLLER, 256),
            p.OFPActionGroup(3), p.OFPActionSetQueue(1), p.OFPActionDecNwTtl(),
            p.OFPActionSetNwTtl(7), p.OFPActionPopVlan(),
            p.OFPActionSetField(ipv4_dst="10.1.2.3"), p.OFPActionSetField(tcp_src=99)]),
        p.OFPInstructionActions(o.OFPIT_CLEAR_ACTIONS, []),
        p.OFPInstructionActions(o.OFPIT_WRITE_ACTIONS, [p.OFPActionOutput(o.OFPP_FLOOD)]),
        p.OFPInstructionWriteMetadata(0x10, 0xF0),
        p.OFPInstructionGotoTable(3),
    ]
    raw = osken_bytes(p.OFPFlowMod(DP, cookie=5, cookie_mask=0, table_id=1,
                                   command=o.OFPFC_ADD, idle_timeout=3, hard_timeout=4,
                                   priority=9, flags=o.OFPFF_SEND_FLOW_REM, match=match,
                                   instructions=inst))
    msg = m.decode_message(raw)
    assert isinstance(msg, m.FlowModMessage) and msg.xid == 7
    assert msg.fm == FlowMod(
        OFPFC_ADD,
        Match(in_port=1, eth_type=0x0800, ipv4_src=(0x0A000000, 0xFF000000), ip_proto=6,
              tcp_dst=80, vlan_vid=0x1005, metadata=(5, 0xFF), eth_dst=0x020000000009),
        (a.InstMeter(4),
         a.InstApplyActions((a.ActPushVlan(0x88A8), a.ActSetField("vlan_pcp", 3),
                             a.ActOutput(2, 0xFFE5), a.ActOutput(a.OFPP_CONTROLLER, 256),
                             a.ActGroup(3), a.ActSetQueue(1), a.ActDecNwTtl(),
                             a.ActSetNwTtl(7), a.ActPopVlan(),
                             a.ActSetField("ipv4_dst", 0x0A010203),
                             a.ActSetField("tcp_src", 99))),
         a.InstClearActions(), a.InstWriteActions((a.ActOutput(a.OFPP_FLOOD, 0xFFE5),)),
         a.InstWriteMetadata(0x10, 0xF0), a.InstGotoTable(3)),
        table_id=1, priority=9, cookie=5, idle_timeout=3, hard_timeout=4,
        flags=OFPFF_SEND_FLOW_REM, out_port=0, out_group=0)


def test_delete_and_ipv6_arp_matches_from_osken() -> None:
    match = p.OFPMatch(eth_type=0x86DD, ipv6_src=("2001:db8::", "ffff:ffff::"), ip_proto=58,
                       icmpv6_type=136, ipv6_nd_target="2001:db8::1",
                       ipv6_nd_tll="02:00:00:00:00:01", ipv6_flabel=(5, 0xFF))
    raw = osken_bytes(p.OFPFlowMod(DP, command=o.OFPFC_DELETE_STRICT, table_id=o.OFPTT_ALL,
                                   out_port=o.OFPP_ANY, out_group=o.OFPG_ANY, match=match))
    fm = m.decode_message(raw).fm
    assert fm.command == OFPFC_DELETE_STRICT and fm.table_id == 0xFF
    assert fm.match["ipv6_nd_target"] == ((0x20010DB8 << 96) | 1, None)
    assert fm.match["ipv6_src"] == (0x20010DB8 << 96, 0xFFFFFFFF << 96)
    assert fm.match["ipv6_flabel"] == (5, 0xFF)
    arp = p.OFPMatch(eth_type=0x0806, arp_op=1, arp_spa="10.0.0.1",
                     arp_tha=("02:00:00:00:00:00", "ff:ff:ff:00:00:00"))
    fm = m.decode_message(osken_bytes(p.OFPFlowMod(DP, match=arp))).fm
    assert fm.match == Match(eth_type=0x0806, arp_op=1, arp_spa=0x0A000001,
                             arp_tha=(0x020000000000, 0xFFFFFF000000))


def test_osken_bad_prerequisite_is_rejected() -> None:
    raw = osken_bytes(p.OFPFlowMod(DP, match=p.OFPMatch(tcp_dst=80)))
    with pytest.raises(OfpError) as info:
        m.decode_message(raw)
    assert (info.value.type, info.value.code) == (e.OFPET_BAD_MATCH, e.OFPBMC_BAD_PREREQ)


@pytest.mark.parametrize("make,expected", [
    (lambda: p.OFPHello(DP), m.Hello(None, xid=7)),
    (lambda: p.OFPEchoRequest(DP, b"abc"), m.EchoRequest(b"abc", xid=7)),
    (lambda: p.OFPFeaturesRequest(DP), m.FeaturesRequest(xid=7)),
    (lambda: p.OFPGetConfigRequest(DP), m.GetConfigRequest(xid=7)),
    (lambda: p.OFPSetConfig(DP, 0, 512), m.SetConfig(0, 512, xid=7)),
    (lambda: p.OFPBarrierRequest(DP), m.BarrierRequest(xid=7)),
    (lambda: p.OFPRoleRequest(DP, o.OFPCR_ROLE_MASTER, 12),
     m.RoleRequest(c.OFPCR_ROLE_MASTER, 12, xid=7)),
    (lambda: p.OFPGetAsyncRequest(DP), m.GetAsyncRequest(xid=7)),
    (lambda: p.OFPSetAsync(DP, [3, 1], [7, 0], [15, 2]),
     m.SetAsync((3, 1), (7, 0), (15, 2), xid=7)),
    (lambda: p.OFPPacketOut(DP, 0xFFFFFFFF, o.OFPP_CONTROLLER,
                            [p.OFPActionOutput(o.OFPP_TABLE)], b"\x01" * 60),
     m.PacketOut(0xFFFFFFFF, a.OFPP_CONTROLLER, (a.ActOutput(a.OFPP_TABLE, 0xFFE5),),
                 b"\x01" * 60, xid=7)),
    (lambda: p.OFPPortMod(DP, 1, "02:00:00:00:00:01", 1, 1, 0),
     m.PortMod(1, b"\x02\x00\x00\x00\x00\x01", 1, 1, 0, xid=7)),
    (lambda: p.OFPTableMod(DP, 2, 0), m.TableMod(2, 0, xid=7)),
    (lambda: p.OFPExperimenter(DP, 0x2320, 5, b"zz"), m.Experimenter(0x2320, 5, b"zz", xid=7)),
])
def test_simple_messages_from_osken(make, expected) -> None:
    assert m.decode_message(osken_bytes(make())) == expected


def test_multipart_requests_from_osken() -> None:
    req = m.decode_message(osken_bytes(p.OFPFlowStatsRequest(
        DP, 0, 3, o.OFPP_ANY, o.OFPG_ANY, 0x10, 0xFF, p.OFPMatch(in_port=4))))
    assert isinstance(req, m.MultipartRequest) and req.mp_type == c.OFPMP_FLOW
    assert mp.decode_flow_stats_request(req.body) == FlowStatsRequest(
        3, a.OFPP_ANY, a.OFPG_ANY, 0x10, 0xFF, Match(in_port=4))
    req = m.decode_message(osken_bytes(p.OFPAggregateStatsRequest(
        DP, 0, o.OFPTT_ALL, o.OFPP_ANY, o.OFPG_ANY, 0, 0, p.OFPMatch())))
    assert req.mp_type == c.OFPMP_AGGREGATE
    assert mp.decode_flow_stats_request(req.body) == FlowStatsRequest()
    req = m.decode_message(osken_bytes(p.OFPPortStatsRequest(DP, 0, 2)))
    assert req.mp_type == c.OFPMP_PORT_STATS and mp.decode_port_stats_request(req.body) == 2
    for cls, mp_type in ((p.OFPDescStatsRequest, c.OFPMP_DESC),
                         (p.OFPTableStatsRequest, c.OFPMP_TABLE),
                         (p.OFPPortDescStatsRequest, c.OFPMP_PORT_DESC)):
        req = m.decode_message(osken_bytes(cls(DP, 0)))
        assert (req.mp_type, req.body) == (mp_type, b"")


# ---------------------------------------------------------------- ovsbpfd -> os-ken
def test_features_config_role_async_replies_parse_in_osken() -> None:
    got = osken_parse(m.encode_message(m.FeaturesReply(0x1234, 0, 254, 0, 7, xid=3)))
    assert (got.datapath_id, got.n_tables, got.capabilities, got.xid) == (0x1234, 254, 7, 3)
    got = osken_parse(m.encode_message(m.GetConfigReply(0, 128)))
    assert (got.flags, got.miss_send_len) == (0, 128)
    got = osken_parse(m.encode_message(m.RoleReply(c.OFPCR_ROLE_SLAVE, 9)))
    assert (got.role, got.generation_id) == (o.OFPCR_ROLE_SLAVE, 9)
    got = osken_parse(m.encode_message(m.GetAsyncReply((3, 0), (7, 7), (15, 0))))
    assert (got.packet_in_mask, got.port_status_mask, got.flow_removed_mask) == (
        [3, 0], [7, 7], [15, 0])
    got = osken_parse(m.encode_message(m.Error(e.OFPET_BAD_MATCH, e.OFPBMC_DUP_FIELD, b"x")))
    assert (got.type, got.code, got.data) == (o.OFPET_BAD_MATCH, o.OFPBMC_DUP_FIELD, b"x")
    got = osken_parse(m.encode_message(m.EchoReply(b"hey", xid=4)))
    assert got.data == b"hey"
    assert isinstance(osken_parse(m.encode_message(m.BarrierReply())), p.OFPBarrierReply)
    got = osken_parse(m.encode_message(m.Hello()))
    assert got.elements[0].versions == [4]


def test_async_messages_parse_in_osken() -> None:
    pin = PacketIn(1, 2, 0xC0FFEE, Match(in_port=3), b"\xaa" * 60, 1514)
    got = osken_parse(m.encode_message(m.PacketInMessage(pin)))
    assert (got.reason, got.table_id, got.cookie, got.total_len, got.data) == (
        1, 2, 0xC0FFEE, 1514, b"\xaa" * 60)
    assert got.match["in_port"] == 3 and got.buffer_id == o.OFP_NO_BUFFER
    fr = FlowRemoved(5, 6, 0, 7, 8, 9, 10, 11, 12, 13,
                     Match(eth_type=0x0800, ipv4_dst=(0x0A000000, 0xFF000000)))
    got = osken_parse(m.encode_message(m.FlowRemovedMessage(fr)))
    assert (got.cookie, got.priority, got.table_id, got.packet_count, got.byte_count) == (
        5, 6, 7, 12, 13)
    assert got.match["ipv4_dst"] == ("10.0.0.0", "255.0.0.0")
    port = OfPort(4, "veth4", b"\x02\x00\x00\x00\x00\x04", 1, 4, curr_speed=10_000)
    got = osken_parse(m.encode_message(m.PortStatus(2, port)))
    assert (got.reason, got.desc.port_no, got.desc.name, got.desc.hw_addr) == (
        2, 4, b"veth4", "02:00:00:00:00:04")
    assert (got.desc.config, got.desc.state, got.desc.curr_speed) == (1, 4, 10_000)


def _reply(mp_type: int, items: list[bytes]):
    (reply,) = mp.split_reply(mp_type, items, 5)
    return osken_parse(m.encode_message(reply))


def test_multipart_replies_parse_in_osken() -> None:
    entry = FlowStatsEntry(1, 2, 3, 4, 5, 6, OFPFF_SEND_FLOW_REM, 7, 8, 9,
                           Match(in_port=1, eth_src=0x020000000001),
                           (a.InstApplyActions((a.ActOutput(2),)), a.InstGotoTable(2)))
    got = _reply(c.OFPMP_FLOW, [mp.encode_flow_stats(entry)] * 2)
    assert len(got.body) == 2
    stat = got.body[0]
    assert (stat.table_id, stat.priority, stat.cookie, stat.packet_count,
            stat.byte_count) == (1, 4, 7, 8, 9)
    assert stat.match["eth_src"] == "02:00:00:00:00:01"
    assert stat.instructions[0].actions[0].port == 2
    assert stat.instructions[1].table_id == 2
    got = _reply(c.OFPMP_AGGREGATE, [mp.encode_aggregate_reply(10, 20, 3)])
    assert (got.body.packet_count, got.body.byte_count, got.body.flow_count) == (10, 20, 3)
    got = _reply(c.OFPMP_DESC, [mp.encode_desc(mp.Desc("m", "h", "s", "n", "d"))])
    assert (got.body.mfr_desc, got.body.dp_desc) == (b"m", b"d")
    got = _reply(c.OFPMP_TABLE, [mp.encode_table_stats(TableStats(0, 1, 2, 3))])
    assert (got.body[0].active_count, got.body[0].lookup_count) == (1, 2)
    got = _reply(c.OFPMP_PORT_STATS, [encode_port_stats(OfPortStats(3, 4, 5, 6, 7))])
    assert (got.body[0].port_no, got.body[0].rx_packets, got.body[0].rx_bytes) == (3, 4, 6)
    got = _reply(c.OFPMP_PORT_DESC, [encode_port(OfPort(1, "p1", b"\x02" * 6))])
    assert (got.body[0].port_no, got.body[0].name) == (1, b"p1")
