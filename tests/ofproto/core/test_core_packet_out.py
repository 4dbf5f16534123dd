"""PACKET_OUT: actions on a controller-supplied packet, output:TABLE, errors."""

from __future__ import annotations

import pytest

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.actions import (
    OFPP_CONTROLLER,
    OFPP_FLOOD,
    OFPP_TABLE,
    ActCopyTtlOut,
    ActDecNwTtl,
    ActOutput,
    InstApplyActions,
)
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import (
    OFPET_BAD_ACTION,
    OFPET_BAD_REQUEST,
    OFPFC_ADD,
    FlowMod,
    FlowStatsRequest,
    OfpError,
)
from tests.ofproto.core.rig import Rig, host_mac

FRAME = pb.udp_frame(host_mac(1), host_mac(2), "10.0.0.1", "10.0.0.2", 7, 9)


@pytest.fixture
def rig():
    r = Rig(3)
    try:
        yield r
    finally:
        r.close()


def test_packet_out_to_port_and_flood(rig: Rig) -> None:
    rig.bridge.packet_out(OFPP_CONTROLLER, (ActOutput(2),), FRAME)
    assert rig.received(2) == [FRAME]
    rig.bridge.packet_out(1, (ActOutput(OFPP_FLOOD),), FRAME)
    assert {p: len(f) for p, f in rig.all_received().items()} == {1: 0, 2: 1, 3: 1}


def test_packet_out_to_table_runs_the_pipeline(rig: Rig) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1), (
        InstApplyActions((ActOutput(3), ActOutput(OFPP_CONTROLLER))),), priority=9))
    rig.bridge.packet_out(1, (ActOutput(OFPP_TABLE),), FRAME)
    rig.settle()
    assert rig.received(3) == [FRAME] and rig.received(2) == []
    assert [p.data for p in rig.events.packet_ins] == [FRAME]
    (hit,) = [e for e in rig.bridge.flow_stats(FlowStatsRequest()) if e.priority == 9]
    assert hit.packet_count == 1


def test_packet_out_errors(rig: Rig) -> None:
    with pytest.raises(OfpError) as err:
        rig.bridge.packet_out(77, (ActOutput(2),), FRAME)
    assert (err.value.type, err.value.code) == (OFPET_BAD_REQUEST, ec.OFPBRC_BAD_PORT)
    with pytest.raises(OfpError) as err:
        rig.bridge.packet_out(1, (ActCopyTtlOut(),), FRAME)
    assert (err.value.type, err.value.code) == (OFPET_BAD_ACTION, ec.OFPBAC_BAD_TYPE)
    with pytest.raises(OfpError) as err:  # no TTL in an ARP packet
        rig.bridge.packet_out(1, (ActDecNwTtl(), ActOutput(2)),
                              pb.arp_request(host_mac(1), "10.0.0.1", "10.0.0.2"))
    assert (err.value.type, err.value.code) == (OFPET_BAD_ACTION,
                                                ec.OFPBAC_MATCH_INCONSISTENT)
    with pytest.raises(OfpError) as err:
        rig.bridge.packet_out(1, (ActOutput(2),), b"\x00" * 5)
    assert (err.value.type, err.value.code) == (OFPET_BAD_REQUEST, ec.OFPBRC_BAD_PACKET)
    assert all(f == [] for f in rig.all_received().values())
