"""Flow-table semantics: priorities, masks, strict/loose selection, cookies, overlap."""

from __future__ import annotations

import time

import pytest

from ovsbpfd.dpif.types import FlowKey
from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.actions import ActOutput, InstApplyActions
from ovsbpfd.ofproto.classifier import FlowTable
from ovsbpfd.ofproto.flow_fields import packet_values
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.pipeline import Pipeline
from ovsbpfd.ofproto.rule import Rule
from ovsbpfd.ofproto.types import (
    OFPET_FLOW_MOD_FAILED,
    OFPFC_ADD,
    OFPFC_DELETE,
    OFPFC_DELETE_STRICT,
    OFPFC_MODIFY,
    OFPFC_MODIFY_STRICT,
    OFPFF_CHECK_OVERLAP,
    OFPFF_RESET_COUNTS,
    OFPTT_ALL,
    FlowMod,
    FlowStatsRequest,
    OfpError,
)


def out(port: int) -> tuple:
    return (InstApplyActions((ActOutput(port),)),)


def ip_key(src: str, dst: str, proto: int = 17, sport: int = 1, dport: int = 2) -> FlowKey:
    def ip(text: str) -> bytes:
        return bytes(int(x) for x in text.split(".")) + bytes(12)

    return FlowKey(in_port=1, eth_type=0x0800, eth_src=bytes(6), eth_dst=bytes(6),
                   nw_proto=proto, ip_src=ip(src), ip_dst=ip(dst), tp_src=sport, tp_dst=dport)


def lookup(table: FlowTable, key: FlowKey, in_port: int = 1) -> Rule | None:
    return table.lookup(packet_values(key, in_port), {})


def ipv4_dst(addr: int, plen: int) -> Match:
    mask = ((1 << plen) - 1) << (32 - plen)
    return Match(eth_type=0x0800, ipv4_dst=(addr, mask))


def test_highest_priority_match_wins_and_masks_apply() -> None:
    table = FlowTable(0)
    low = Rule(0, 10, ipv4_dst(0x0A000000, 8), out(1))
    high = Rule(0, 20, ipv4_dst(0x0A010000, 16), out(2))
    udp = Rule(0, 30, Match(eth_type=0x0800, ip_proto=17, udp_dst=53), out(3))
    for rule in (low, high, udp):
        table.insert(rule)
    assert lookup(table, ip_key("1.1.1.1", "10.1.2.3")) is high
    assert lookup(table, ip_key("1.1.1.1", "10.2.2.3")) is low
    assert lookup(table, ip_key("1.1.1.1", "11.2.2.3")) is None
    assert lookup(table, ip_key("1.1.1.1", "10.1.2.3", dport=53)) is udp
    # tcp port 53 is not udp_dst=53: the field is absent for TCP packets
    assert lookup(table, ip_key("1.1.1.1", "10.1.2.3", proto=6, dport=53)) is high


def test_add_identical_replaces_and_keeps_counters_unless_reset() -> None:
    pipe = Pipeline()
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1), out(2), priority=5))
    first = pipe.tables[0].find_strict(Match(in_port=1), 5)
    first.credit(3, 300)
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1), out(3), priority=5))
    second = pipe.tables[0].find_strict(Match(in_port=1), 5)
    assert second is not first and len(pipe) == 1
    assert second.instructions == out(3) and second.packet_count == 3
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1), out(4), priority=5,
                       flags=OFPFF_RESET_COUNTS))
    assert pipe.tables[0].find_strict(Match(in_port=1), 5).packet_count == 0


def test_check_overlap_refuses_same_priority_overlap_only() -> None:
    pipe = Pipeline()
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1), out(2), priority=5))
    with pytest.raises(OfpError) as err:
        pipe.apply(FlowMod(OFPFC_ADD, Match(eth_type=0x0800), out(3), priority=5,
                           flags=OFPFF_CHECK_OVERLAP))
    assert (err.value.type, err.value.code) == (OFPET_FLOW_MOD_FAILED, ec.OFPFMFC_OVERLAP)
    assert len(pipe) == 1
    # disjoint match or other priority: fine
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=2), out(3), priority=5,
                       flags=OFPFF_CHECK_OVERLAP))
    pipe.apply(FlowMod(OFPFC_ADD, Match(eth_type=0x0800), out(3), priority=6,
                       flags=OFPFF_CHECK_OVERLAP))
    assert len(pipe) == 3


def test_loose_and_strict_delete() -> None:
    pipe = Pipeline()
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1), out(2), priority=10))
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1, eth_type=0x0800), out(2), priority=20))
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=2), out(1), priority=10))
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1), out(3), priority=10, table_id=1))
    # strict: exact match and priority only
    outcome = pipe.apply(FlowMod(OFPFC_DELETE_STRICT, Match(in_port=1), priority=20))
    assert outcome.removed == [] and len(pipe) == 4
    pipe.apply(FlowMod(OFPFC_DELETE_STRICT, Match(in_port=1), priority=10))
    assert len(pipe) == 3
    # loose: everything at least as specific, in the given table
    pipe.apply(FlowMod(OFPFC_DELETE, Match(in_port=1), table_id=0))
    assert [r.match for r in pipe.rules()] == [Match(in_port=2), Match(in_port=1)]
    pipe.apply(FlowMod(OFPFC_DELETE, Match(), table_id=OFPTT_ALL))
    assert len(pipe) == 0


def test_delete_filters_out_port_and_cookie_mask() -> None:
    pipe = Pipeline()
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1), out(2), priority=1, cookie=0x11))
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=2), out(3), priority=1, cookie=0x21))
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=3), out(3), priority=1, cookie=0x12))
    pipe.apply(FlowMod(OFPFC_DELETE, Match(), out_port=3, cookie=0x01, cookie_mask=0x0F))
    assert [r.cookie for r in pipe.rules()] == [0x11, 0x12]
    pipe.apply(FlowMod(OFPFC_DELETE, Match(), cookie=0x10, cookie_mask=0xF0))
    assert len(pipe) == 0


def test_modify_loose_and_strict_keep_cookie_and_counters() -> None:
    pipe = Pipeline()
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1, eth_type=0x0800), out(2), priority=7,
                       cookie=5))
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1), out(2), priority=8))
    for r in pipe.rules():
        r.credit(1, 100)
    pipe.apply(FlowMod(OFPFC_MODIFY_STRICT, Match(in_port=1), out(9), priority=7))
    assert all(r.instructions == out(2) for r in pipe.rules())  # no strict match
    pipe.apply(FlowMod(OFPFC_MODIFY, Match(in_port=1), out(9)))
    assert all(r.instructions == out(9) for r in pipe.rules())
    assert sorted(r.cookie for r in pipe.rules()) == [0, 5]
    assert all(r.packet_count == 1 for r in pipe.rules())
    outcome = pipe.apply(FlowMod(OFPFC_MODIFY, Match(in_port=4), out(9)))
    assert not outcome.changed and len(pipe) == 2  # OF1.3 modify never adds


def test_flow_stats_select_like_delete() -> None:
    pipe = Pipeline()
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1), out(2), priority=1, table_id=3))
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=2), out(3), priority=1))
    stats = pipe.flow_stats(FlowStatsRequest(out_port=3))
    assert [(s.table_id, s.match) for s in stats] == [(0, Match(in_port=2))]
    assert len(pipe.flow_stats(FlowStatsRequest(table_id=3))) == 1


def test_timeouts_expire() -> None:
    pipe = Pipeline()
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=1), out(2), hard_timeout=5))
    pipe.apply(FlowMod(OFPFC_ADD, Match(in_port=2), out(2), idle_timeout=2))
    now = time.monotonic()
    assert pipe.expire(now) == []
    idle = pipe.tables[0].find_strict(Match(in_port=2), 0x8000)
    idle.credit(1, 60, now + 1.5)  # used: idle clock restarts
    assert pipe.expire(now + 3) == []
    assert [reason for _r, reason in pipe.expire(now + 3.6)] == [0]  # IDLE
    assert [reason for _r, reason in pipe.expire(now + 5.1)] == [1]  # HARD
    assert len(pipe) == 0


def test_lookup_with_10k_rules_is_fast() -> None:
    table = FlowTable(0)
    for i in range(10_000):
        table.insert(Rule(0, 100, Match(eth_type=0x0800, ipv4_dst=0x0A000000 + i), out(1)))
    table.insert(Rule(0, 0, Match(), out(2)))
    start = time.perf_counter()
    for i in range(2000):
        assert lookup(table, ip_key("1.1.1.1", f"10.0.{i >> 8}.{i & 255}")).priority == 100
    assert time.perf_counter() - start < 1.0
