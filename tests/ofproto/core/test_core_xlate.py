"""Translation: megaflow masks, pipeline instructions, VLAN actions, refused actions."""

from __future__ import annotations

import pytest

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.dpif.types import Output, PopVlan, PushVlan, Userspace
from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.actions import (
    OFPP_CONTROLLER,
    OFPP_FLOOD,
    OFPP_IN_PORT,
    ActCopyTtlIn,
    ActDecNwTtl,
    ActGroup,
    ActOutput,
    ActPopVlan,
    ActPushVlan,
    ActSetField,
    InstApplyActions,
    InstClearActions,
    InstGotoTable,
    InstMeter,
    InstWriteActions,
    InstWriteMetadata,
)
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import (
    OFPET_BAD_ACTION,
    OFPET_BAD_INSTRUCTION,
    OFPET_BAD_MATCH,
    OFPET_FLOW_MOD_FAILED,
    OFPET_METER_MOD_FAILED,
    OFPFC_ADD,
    FlowMod,
    OfpError,
)
from tests.ofproto.core.rig import Rig, empty_rig, host_mac

H1, H2, H3 = host_mac(1), host_mac(2), host_mac(3)


@pytest.fixture
def rig():
    with empty_rig(3) as r:
        yield r


def apply(*actions) -> tuple:
    return (InstApplyActions(tuple(actions)),)


def translate(rig: Rig, frame: bytes, in_port: int = 1):
    key = parse_packet(frame, rig.dp_port(in_port))
    return rig.bridge.translate_key(key, in_port, True)


def test_unconsulted_fields_are_wildcarded(rig: Rig) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(eth_type=0x0800, ip_proto=17, udp_dst=53),
                                apply(ActOutput(2)), priority=10))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(), apply(ActOutput(3)), priority=1))
    a = translate(rig, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1000, 53))
    b = translate(rig, pb.udp_frame(H3, H2, "10.0.0.7", "10.0.0.9", 2222, 53))
    assert a.actions == b.actions == [Output(rig.dp_port(2))]
    assert a.mask == b.mask
    assert a.mask.ip_src == bytes(16) and a.mask.eth_src == bytes(6) and a.mask.tp_src == 0
    assert a.mask.tp_dst == 0xFFFF and a.mask.eth_type == 0xFFFF and a.mask.in_port == 0xFFFFFFFF
    # one megaflow in the datapath serves both packets
    rig.send(1, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1000, 53))
    rig.send(1, pb.udp_frame(H3, H2, "10.0.0.7", "10.0.0.9", 2222, 53))
    assert rig.misses() == 1 and len(rig.received(2)) == 2


def test_only_matching_subtables_add_mask_bits(rig: Rig) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1), apply(ActOutput(2)), priority=100))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(eth_type=0x0800, ipv4_src=(0x0A000000,
                                                                             0xFF000000)),
                                apply(ActOutput(3)), priority=50))
    hit = translate(rig, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2))
    assert hit.actions == [Output(rig.dp_port(2))]
    assert hit.mask.ip_src == bytes(16)  # the priority-50 subtable was never needed
    miss = translate(rig, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2), in_port=2)
    assert miss.actions == [Output(rig.dp_port(3))]
    assert miss.mask.ip_src == bytes([255]) + bytes(15)


def test_goto_metadata_write_and_clear_actions(rig: Rig) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(), (
        InstWriteActions((ActOutput(3),)), InstWriteMetadata(0x5, 0xFF), InstGotoTable(1))))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(metadata=0x5), (
        InstApplyActions((ActOutput(2),)), InstGotoTable(2)), table_id=1))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(), (InstApplyActions(()),), table_id=2))
    res = translate(rig, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2))
    assert res.actions == [Output(rig.dp_port(2)), Output(rig.dp_port(3))]
    assert [r.table_id for r in res.rules] == [0, 1, 2]
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(), (InstClearActions(),), table_id=2))
    res = translate(rig, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2))
    assert res.actions == [Output(rig.dp_port(2))]


def test_table_miss_drops_and_in_port_output_needs_in_port(rig: Rig) -> None:
    assert translate(rig, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2)).actions == []
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(), apply(ActOutput(1))))
    assert translate(rig, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2)).actions == []
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(), apply(ActOutput(OFPP_IN_PORT))))
    assert translate(rig, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2)).actions == [
        Output(rig.dp_port(1))]


def test_vlan_push_set_pop_compose_into_datapath_actions(rig: Rig) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1), apply(
        ActPushVlan(), ActSetField("vlan_vid", 0x1000 | 10), ActOutput(2),
        ActSetField("vlan_pcp", 5), ActOutput(3), ActPopVlan(), ActOutput(OFPP_FLOOD))))
    res = translate(rig, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2))
    assert res.actions == [PushVlan(10), Output(rig.dp_port(2)), PopVlan(),
                           PushVlan((5 << 13) | 10), Output(rig.dp_port(3)), PopVlan(),
                           Output(rig.dp_port(2)), Output(rig.dp_port(3))]
    rig.send(1, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2))
    tagged = rig.received(3)
    assert parse_packet(tagged[0], 0).vlan_tci == 0x1000 | (5 << 13) | 10
    assert parse_packet(tagged[1], 0).vlan_tci == 0


def test_controller_output_becomes_packet_in(rig: Rig) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(), apply(ActOutput(OFPP_CONTROLLER, 32)),
                                cookie=0xABC, priority=5))
    frame = pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2, payload=b"x" * 50)
    res = translate(rig, frame)
    assert len(res.actions) == 1 and isinstance(res.actions[0], Userspace)
    rig.send(1, frame)
    rig.send(1, frame)  # the second one from the installed megaflow
    assert rig.misses() == 1
    pins = rig.events.packet_ins
    assert len(pins) == 2
    assert pins[0].cookie == 0xABC and pins[0].reason == 1 and pins[0].match["in_port"] == (1, None)
    assert pins[0].data == frame[:32] and pins[0].total_len == len(frame)


@pytest.mark.parametrize("instructions, expected", [
    (apply(ActDecNwTtl()), (OFPET_BAD_ACTION, ec.OFPBAC_MATCH_INCONSISTENT)),
    (apply(ActCopyTtlIn()), (OFPET_BAD_ACTION, ec.OFPBAC_BAD_TYPE)),
    (apply(ActSetField("ipv4_dst", 1)), (OFPET_BAD_ACTION, ec.OFPBAC_MATCH_INCONSISTENT)),
    (apply(ActSetField("ipv6_flabel", 1)), (OFPET_BAD_ACTION, ec.OFPBAC_BAD_SET_TYPE)),
    (apply(ActSetField("vlan_vid", 0x1005)), (OFPET_BAD_ACTION, ec.OFPBAC_MATCH_INCONSISTENT)),
    (apply(ActGroup(1)), (OFPET_BAD_ACTION, ec.OFPBAC_BAD_OUT_GROUP)),
    (apply(ActOutput(0xFFFFFFF9)), (OFPET_BAD_ACTION, ec.OFPBAC_BAD_OUT_PORT)),
    (apply(ActPushVlan(0x0800)), (OFPET_BAD_ACTION, ec.OFPBAC_BAD_ARGUMENT)),
    ((InstMeter(1),), (OFPET_METER_MOD_FAILED, ec.OFPMMFC_UNKNOWN_METER)),
    ((InstGotoTable(0),), (OFPET_BAD_INSTRUCTION, ec.OFPBIC_BAD_TABLE_ID)),
    ((InstGotoTable(254),), (OFPET_BAD_INSTRUCTION, ec.OFPBIC_BAD_TABLE_ID)),
])
def test_refused_at_flow_mod_time(rig: Rig, instructions, expected) -> None:
    with pytest.raises(OfpError) as err:
        rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(), instructions))
    assert (err.value.type, err.value.code) == expected
    assert len(rig.bridge.pipeline) == 0


@pytest.mark.parametrize("fm, expected", [
    (FlowMod(OFPFC_ADD, Match(tcp_dst=80)), (OFPET_BAD_MATCH, ec.OFPBMC_BAD_PREREQ)),
    (FlowMod(OFPFC_ADD, Match(eth_type=0x86DD, ipv6_flabel=1)),
     (OFPET_BAD_MATCH, ec.OFPBMC_BAD_FIELD)),
    (FlowMod(OFPFC_ADD, Match(), table_id=254), (OFPET_FLOW_MOD_FAILED,
                                                  ec.OFPFMFC_BAD_TABLE_ID)),
    (FlowMod(9, Match()), (OFPET_FLOW_MOD_FAILED, ec.OFPFMFC_BAD_COMMAND)),
    (FlowMod(OFPFC_ADD, Match(), flags=0x100), (OFPET_FLOW_MOD_FAILED, ec.OFPFMFC_BAD_FLAGS)),
])
def test_bad_flow_mods_change_nothing(rig: Rig, fm: FlowMod, expected) -> None:
    with pytest.raises(OfpError) as err:
        rig.bridge.flow_mod(fm)
    assert (err.value.type, err.value.code) == expected
    assert len(rig.bridge.pipeline) == 0


def test_set_vlan_allowed_when_match_has_vlan(rig: Rig) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(vlan_vid=(0x1000, 0x1000)), apply(
        ActSetField("vlan_vid", 0x1000 | 20), ActOutput(2))))
    res = translate(rig, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2, vlan=10))
    assert res.actions == [PopVlan(), PushVlan(20), Output(rig.dp_port(2))]
    assert res.mask.vlan_tci & 0x1000
