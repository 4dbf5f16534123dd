"""Remembered validation verdicts never let through what the checks refuse:
the same instructions object in another table, with a group or meter that
went away, or with actions whose checks read the match."""

from __future__ import annotations

import pytest

from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto import ofp_errors as e
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod, OfpError
from ovsbpfd.ofproto.validation import check_flow_mod, check_match

IP = Match({"eth_type": 0x0800})


def refused(fm: FlowMod, **exists) -> tuple[int, int] | None:
    try:
        check_flow_mod(fm, **exists)
    except OfpError as err:
        return err.type, err.code
    return None


def test_goto_verdict_is_per_table() -> None:
    goto = (a.InstGotoTable(5), a.InstApplyActions((a.ActOutput(1),)))
    assert refused(FlowMod(OFPFC_ADD, IP, goto, table_id=1)) is None
    assert refused(FlowMod(OFPFC_ADD, IP, goto, table_id=1)) is None
    assert refused(FlowMod(OFPFC_ADD, IP, goto, table_id=7)) == (
        e.OFPET_BAD_INSTRUCTION, e.OFPBIC_BAD_TABLE_ID)


def test_groups_and_meters_are_asked_every_time() -> None:
    group = (a.InstApplyActions((a.ActGroup(3),)),)
    meter = (a.InstMeter(4), a.InstApplyActions((a.ActOutput(1),)))
    assert refused(FlowMod(OFPFC_ADD, IP, group), group_exists=lambda g: True) is None
    assert refused(FlowMod(OFPFC_ADD, IP, group), group_exists=lambda g: False) == (
        e.OFPET_BAD_ACTION, e.OFPBAC_BAD_OUT_GROUP)
    assert refused(FlowMod(OFPFC_ADD, IP, meter), meter_exists=lambda g: True) is None
    assert refused(FlowMod(OFPFC_ADD, IP, meter), meter_exists=lambda g: False) == (
        e.OFPET_METER_MOD_FAILED, e.OFPMMFC_UNKNOWN_METER)


def test_match_dependent_actions_are_checked_against_each_match() -> None:
    ttl = (a.InstApplyActions((a.ActDecNwTtl(), a.ActOutput(1))),)
    assert refused(FlowMod(OFPFC_ADD, IP, ttl)) is None
    assert refused(FlowMod(OFPFC_ADD, Match({"in_port": 1}), ttl)) == (
        e.OFPET_BAD_ACTION, e.OFPBAC_MATCH_INCONSISTENT)
    vlan = (a.InstApplyActions((a.ActSetField("vlan_vid", 0x1005),)),)
    assert refused(FlowMod(OFPFC_ADD, Match({"vlan_vid": 0x1001}), vlan)) is None
    assert refused(FlowMod(OFPFC_ADD, IP, vlan)) == (
        e.OFPET_BAD_ACTION, e.OFPBAC_MATCH_INCONSISTENT)


def test_bad_outputs_stay_refused_and_good_ones_pass_again() -> None:
    bad = (a.InstApplyActions((a.ActOutput(0),)),)
    for _ in range(3):
        assert refused(FlowMod(OFPFC_ADD, IP, bad)) == (e.OFPET_BAD_ACTION,
                                                        e.OFPBAC_BAD_OUT_PORT)
    good = (a.InstApplyActions((a.ActOutput(2),)),)
    for _ in range(3):
        assert refused(FlowMod(OFPFC_ADD, IP, good)) is None


def test_match_verdicts_follow_each_match() -> None:
    check_match(Match({"eth_type": 0x0800, "ipv4_dst": 1}))
    with pytest.raises(OfpError) as err:  # same signature, but prerequisite unmet
        check_match(Match({"eth_type": 0x0806, "ipv4_dst": 1}))
    assert err.value.code == e.OFPBMC_BAD_PREREQ
    with pytest.raises(OfpError) as err:
        check_match(Match({"vlan_vid": 5}))  # no OFPVID_PRESENT
    assert err.value.code == e.OFPBMC_BAD_VALUE
