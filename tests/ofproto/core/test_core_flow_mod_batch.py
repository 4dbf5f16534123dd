"""flow_mod_batch (bundle commits): all FLOW_MODs or none, the failing index,
FLOW_REMOVED only after success; meter_features from the datapath."""

from __future__ import annotations

import pytest

from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.actions import ActGroup, ActOutput, InstApplyActions
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow.bundle import commit_atomically
from ovsbpfd.ofproto.types import (
    OFPET_BAD_ACTION,
    OFPET_FLOW_MOD_FAILED,
    OFPFC_ADD,
    OFPFC_DELETE,
    OFPFC_DELETE_STRICT,
    OFPFC_MODIFY,
    OFPFF_CHECK_OVERLAP,
    OFPFF_SEND_FLOW_REM,
    OFPTT_ALL,
    BatchFailed,
    FlowMod,
    FlowStatsRequest,
)
from tests.ofproto.core.rig import Rig


def out(port: int) -> tuple:
    return (InstApplyActions((ActOutput(port),)),)


def table_state(rig: Rig) -> list[tuple]:
    return sorted((e.table_id, e.priority, tuple(e.match.items()), e.instructions,
                   e.packet_count, e.cookie)
                  for e in rig.bridge.flow_stats(FlowStatsRequest()))


@pytest.fixture
def rig():
    r = Rig(3)
    r.bridge.flow_mod(FlowMod(OFPFC_DELETE, Match(), table_id=OFPTT_ALL))
    for port in (1, 2):
        r.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=port), out(3 - port), priority=10,
                                  flags=OFPFF_SEND_FLOW_REM, cookie=port))
    r.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(eth_type=0x0800, ipv4_dst=0x0A000001), out(3),
                              priority=20))
    try:
        yield r
    finally:
        r.close()


def mixed_batch(bad: FlowMod) -> list[FlowMod]:
    return [
        FlowMod(OFPFC_ADD, Match(in_port=3), out(1), priority=10),  # new
        FlowMod(OFPFC_ADD, Match(in_port=1), out(3), priority=10),  # replaces
        FlowMod(OFPFC_DELETE_STRICT, Match(in_port=2), priority=10),
        FlowMod(OFPFC_MODIFY, Match(eth_type=0x0800), out(1)),
        FlowMod(OFPFC_ADD, Match(eth_type=0x0800, ipv4_dst=0x0A000002), out(2),
                priority=30, table_id=1),
        bad,
    ]


@pytest.mark.parametrize("bad, error", [
    (FlowMod(OFPFC_ADD, Match(in_port=1), (InstApplyActions((ActGroup(7),)),)),
     (OFPET_BAD_ACTION, ec.OFPBAC_BAD_OUT_GROUP)),
    (FlowMod(OFPFC_ADD, Match(eth_type=0x0800), out(2), priority=10,
             flags=OFPFF_CHECK_OVERLAP),
     (OFPET_FLOW_MOD_FAILED, ec.OFPFMFC_OVERLAP)),
    (FlowMod(OFPFC_ADD, Match(), out(1), table_id=254),
     (OFPET_FLOW_MOD_FAILED, ec.OFPFMFC_BAD_TABLE_ID)),
])
def test_a_refused_flow_mod_undoes_the_whole_batch(rig: Rig, bad: FlowMod, error) -> None:
    rig.send(1, b"\x02" * 6 + b"\x04" * 6 + b"\x08\x06" + bytes(46))
    before = table_state(rig)
    assert rig.received(2)  # the in_port=1 rule forwards (and counted a packet)
    with pytest.raises(BatchFailed) as failed:
        rig.bridge.flow_mod_batch(mixed_batch(bad))
    assert failed.value.index == 5
    assert (failed.value.error.type, failed.value.error.code) == error
    assert table_state(rig) == before
    assert rig.events.removed == []  # nothing was deleted after all
    rig.send(1, b"\x02" * 6 + b"\x04" * 6 + b"\x08\x06" + bytes(46))
    assert rig.received(2) and not rig.received(3)


def test_a_good_batch_applies_in_order_then_reports_removals(rig: Rig) -> None:
    batch = mixed_batch(FlowMod(OFPFC_DELETE, Match(in_port=3)))[:-1]
    rig.bridge.flow_mod_batch(batch)
    state = {(t, p, m): i for t, p, m, i, _n, _c in table_state(rig)}
    assert state[(0, 10, (("in_port", (1, None)),))] == out(3)
    assert state[(0, 10, (("in_port", (3, None)),))] == out(1)
    assert (0, 10, (("in_port", (2, None)),)) not in state
    assert state[(0, 20, (("eth_type", (0x0800, None)), ("ipv4_dst", (0x0A000001, None))))] \
        == out(1)
    assert (1, 30) in {(t, p) for t, p, _m in state}
    assert [(r.cookie, r.reason) for r in rig.events.removed] == [(2, 2)]  # OFPRR_DELETE
    rig.send(1, b"\x02" * 6 + b"\x04" * 6 + b"\x08\x06" + bytes(46))
    assert rig.received(3) and not rig.received(2)


def test_front_end_commit_uses_the_batch_and_keeps_its_error_shape(rig: Rig) -> None:
    before = table_state(rig)
    bad = FlowMod(OFPFC_ADD, Match(in_port=1), (InstApplyActions((ActGroup(9),)),))
    with pytest.raises(BatchFailed) as failed:
        commit_atomically(rig.bridge, [FlowMod(OFPFC_ADD, Match(in_port=3), out(1)), bad])
    assert failed.value.index == 1 and table_state(rig) == before


def test_meter_features_are_the_datapaths(rig: Rig) -> None:
    # dummy datapath: 4096 meters, drop bands only (bit 1), kbps|pktps|burst|stats, 4 bands
    assert rig.bridge.meter_features() == (4096, 1 << 1, 0xF, 4, 0)
