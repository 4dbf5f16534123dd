"""set_field and TTL actions: the right packets come out (checksums included),
on every dpif provider; dec_ttl to zero becomes an INVALID_TTL packet-in."""

from __future__ import annotations

import asyncio

import pytest

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.dpif.types import SetMasked
from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.actions import (
    OFPP_CONTROLLER,
    ActDecNwTtl,
    ActGroup,
    ActOutput,
    ActSetField,
    ActSetNwTtl,
    InstApplyActions,
    InstGotoTable,
    InstWriteActions,
)
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import (
    OFPET_BAD_ACTION,
    OFPFC_ADD,
    OFPFC_DELETE,
    OFPGC_ADD,
    OFPGT_ALL,
    OFPR_INVALID_TTL,
    Bucket,
    FlowMod,
    GroupMod,
    OfpError,
)
from tests.dpif.harness import DatapathHarness
from tests.ofproto.core.rig import Rig, empty_rig, host_mac
from tests.ofproto.core.test_core_providers import SwitchUnderTest, run_scenario

H1, H2, H9 = host_mac(1), host_mac(2), host_mac(9)
UDP_IP = Match(in_port=1, eth_type=0x0800, ip_proto=17)


def ip4_frame(src_ip: str = "10.0.0.1", dst_ip: str = "10.0.0.2", sport: int = 1000,
              dport: int = 53, tos: int = 0, ttl: int = 64, dst_mac: bytes = H2,
              src_mac: bytes = H1) -> bytes:
    return pb.eth(dst_mac, src_mac, 0x0800,
                  pb.ipv4(src_ip, dst_ip, 17, pb.udp(sport, dport, b"payload"), tos=tos,
                          ttl=ttl))


def ip6_frame(src_ip: str = "fd00::1", dst_ip: str = "fd00::2", hop_limit: int = 64) -> bytes:
    return pb.eth(H2, H1, 0x86DD, pb.ipv6(src_ip, dst_ip, 6, pb.tcp(40000, 443),
                                          hop_limit=hop_limit))


def apply(*actions) -> tuple:
    return (InstApplyActions(tuple(actions)),)


@pytest.fixture
def rig():
    with empty_rig(3) as r:
        yield r


REWRITES = [
    (UDP_IP, (ActSetField("ipv4_dst", 0x0A000009), ActSetField("udp_dst", 5353)),
     ip4_frame(), ip4_frame(dst_ip="10.0.0.9", dport=5353)),
    (UDP_IP, (ActSetField("ipv4_src", 0xC0A80101), ActSetField("udp_src", 7)),
     ip4_frame(), ip4_frame(src_ip="192.168.1.1", sport=7)),
    (UDP_IP, (ActSetField("eth_dst", int.from_bytes(H9, "big")),
              ActSetField("eth_src", int.from_bytes(H2, "big"))),
     ip4_frame(), ip4_frame(dst_mac=H9, src_mac=H2)),
    (UDP_IP, (ActSetField("ip_dscp", 46),), ip4_frame(tos=0x01), ip4_frame(tos=0xB9)),
    (UDP_IP, (ActSetField("ip_ecn", 2),), ip4_frame(tos=0xB8), ip4_frame(tos=0xBA)),
    (UDP_IP, (ActDecNwTtl(),), ip4_frame(ttl=64), ip4_frame(ttl=63)),
    (UDP_IP, (ActSetNwTtl(5), ActDecNwTtl()), ip4_frame(ttl=64), ip4_frame(ttl=4)),
    (Match(in_port=1, eth_type=0x86DD),
     (ActSetField("ipv6_dst", int.from_bytes(pb.ip6("fd00::77"), "big")), ActDecNwTtl()),
     ip6_frame(), ip6_frame(dst_ip="fd00::77", hop_limit=63)),
]


@pytest.mark.parametrize("match, actions, frame, expected", REWRITES)
def test_rewrites_produce_the_right_packet(rig: Rig, match, actions, frame, expected) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, match, apply(*actions, ActOutput(2)),
                                priority=10))
    rig.send(1, frame)
    rig.send(1, frame)  # the second one in the datapath flow
    assert rig.received(2) == [expected, expected]
    assert rig.misses() == 1


def test_rewrites_are_seen_by_later_tables_and_outputs_in_between(rig: Rig) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, UDP_IP, (
        InstApplyActions((ActOutput(3), ActSetField("ipv4_dst", 0x0A000009))),
        InstGotoTable(1)), priority=10))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(eth_type=0x0800, ipv4_dst=0x0A000009),
                                apply(ActOutput(2)), table_id=1))
    rig.send(1, ip4_frame())
    assert rig.received(3) == [ip4_frame()]  # before the rewrite
    assert rig.received(2) == [ip4_frame(dst_ip="10.0.0.9")]


def test_write_actions_rewrite_and_ttl_order(rig: Rig) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, UDP_IP, (InstWriteActions((
        ActOutput(2), ActSetNwTtl(9), ActDecNwTtl())),), priority=10))
    rig.send(1, ip4_frame())
    # the action set decrements before it sets: 64 -> 63 -> 9
    assert rig.received(2) == [ip4_frame(ttl=9)]


def test_dec_ttl_expired_goes_to_the_controller_as_invalid_ttl(rig: Rig) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, UDP_IP, apply(ActDecNwTtl(), ActOutput(2)),
                                priority=10, cookie=0x77))
    for ttl in (1, 0):
        rig.send(1, ip4_frame(ttl=ttl))
    assert rig.received(2) == []
    assert [(p.reason, p.cookie, p.data) for p in rig.events.packet_ins] == [
        (OFPR_INVALID_TTL, 0x77, ip4_frame(ttl=1)), (OFPR_INVALID_TTL, 0x77, ip4_frame(ttl=0))]
    rig.send(1, ip4_frame(ttl=2))  # TTL is in the megaflow: this one is forwarded
    assert rig.received(2) == [ip4_frame(ttl=1)]
    key = parse_packet(ip4_frame(ttl=2), rig.dp_port(1))
    assert rig.bridge.translate_key(key, 1, False).mask.nw_ttl == 0xFF


def test_set_field_in_a_bucket_on_a_packet_without_the_field_does_nothing(rig: Rig) -> None:
    rig.bridge.group_mod(GroupMod(OFPGC_ADD, OFPGT_ALL, 1, (
        Bucket((ActSetField("tcp_dst", 8080), ActOutput(2))),)))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1), apply(ActGroup(1))))
    rig.send(1, ip4_frame())  # UDP: no TCP port to set
    assert rig.received(2) == [ip4_frame()]


def test_all_group_restores_bits_a_previous_bucket_changed(rig: Rig) -> None:
    rig.bridge.group_mod(GroupMod(OFPGC_ADD, OFPGT_ALL, 1, (
        Bucket((ActSetField("udp_dst", 9999), ActOutput(2))), Bucket((ActOutput(3),)))))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, UDP_IP, apply(ActGroup(1)), priority=5))
    for dport in (53, 54):
        rig.send(1, ip4_frame(dport=dport))
        assert rig.received(2) == [ip4_frame(dport=9999)]
        assert rig.received(3) == [ip4_frame(dport=dport)]
    key = parse_packet(ip4_frame(), rig.dp_port(1))
    result = rig.bridge.translate_key(key, 1, False)
    assert result.mask.tp_dst == 0xFFFF  # the original port is put back: consulted
    assert any(isinstance(a, SetMasked) and a.field == "tp_dst" and a.value == 53
               for a in result.actions)


@pytest.mark.parametrize("match, action, code", [
    (Match(), ActSetField("ipv4_dst", 1), ec.OFPBAC_MATCH_INCONSISTENT),
    (Match(eth_type=0x0800, ip_proto=6), ActSetField("udp_src", 1),
     ec.OFPBAC_MATCH_INCONSISTENT),
    (Match(eth_type=0x0806), ActSetNwTtl(3), ec.OFPBAC_MATCH_INCONSISTENT),
    (Match(eth_type=0x0800), ActSetField("ip_dscp", 64), ec.OFPBAC_BAD_SET_ARGUMENT),
    (Match(eth_type=0x0800), ActSetField("ip_ecn", 4), ec.OFPBAC_BAD_SET_ARGUMENT),
    (Match(eth_type=0x0800), ActSetField("icmpv4_type", 4), ec.OFPBAC_BAD_SET_TYPE),
    (Match(), ActSetField("metadata", 4), ec.OFPBAC_BAD_SET_TYPE),
])
def test_inconsistent_or_unsupported_rewrites_are_refused(rig: Rig, match, action,
                                                         code) -> None:
    with pytest.raises(OfpError) as err:
        rig.bridge.flow_mod(FlowMod(OFPFC_ADD, match, apply(action, ActOutput(2))))
    assert (err.value.type, err.value.code) == (OFPET_BAD_ACTION, code)
    assert len(rig.bridge.pipeline) == 0


# ------------------------------------------------------------ every provider
def test_core_rewrites_on_every_provider(harness: DatapathHarness) -> None:
    async def scenario(sw: SwitchUnderTest) -> None:
        await sw.flow_mod(FlowMod(OFPFC_DELETE, Match(), table_id=0xFF))
        await sw.flow_mod(FlowMod(OFPFC_ADD, Match(eth_type=0x0800, ip_proto=17), apply(
            ActSetField("eth_dst", int.from_bytes(H9, "big")),
            ActSetField("ipv4_dst", 0x0A4D0009), ActSetField("udp_dst", 5353),
            ActSetField("ip_dscp", 10), ActDecNwTtl(), ActOutput(2)), priority=10))
        for payload in (b"one", b"two"):
            frame = pb.eth(H2, H1, 0x0800, pb.ipv4("10.77.0.1", "10.77.0.2", 17,
                                                   pb.udp(1000, 53, payload)))
            expected = pb.eth(H9, H1, 0x0800, pb.ipv4("10.77.0.1", "10.77.0.9", 17,
                                                      pb.udp(1000, 5353, payload),
                                                      tos=40, ttl=63))
            await sw.send(1, frame)
            assert await sw.received(2, expected) == 1
        assert sw.misses() == 1
        await sw.flow_mod(FlowMod(OFPFC_ADD, Match(eth_type=0x0800, ip_proto=1), apply(
            ActDecNwTtl(), ActOutput(2), ActOutput(OFPP_CONTROLLER)), priority=10))
        dying = pb.eth(H2, H1, 0x0800, pb.ipv4("10.77.0.1", "10.77.0.2", 1,
                                               pb.icmp_echo(1, 1), ttl=1))
        await sw.send(1, dying)
        await asyncio.sleep(0.3)
        assert await sw.received(2, dying, timeout=0.3) == 0

    run_scenario(harness, scenario)
