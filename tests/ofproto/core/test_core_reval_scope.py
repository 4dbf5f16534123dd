"""Revalidation after FLOW_MODs touches only the datapath flows a change may
affect, never misses one, and happens on the next turn of the event loop."""

from __future__ import annotations

import asyncio
import random

import pytest

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.dpif.types import Output
from ovsbpfd.ofproto.actions import (
    ActOutput,
    ActSetField,
    InstApplyActions,
    InstGotoTable,
    InstWriteMetadata,
)
from ovsbpfd.ofproto.backer import REVALIDATE_DELAY_S
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import (
    OFPFC_ADD,
    OFPFC_DELETE_STRICT,
    OFPFC_MODIFY_STRICT,
    FlowMod,
)
from tests.ofproto.core.rig import Rig, count_translations, empty_rig, host_mac

H1, H2 = host_mac(1), host_mac(2)
DSTS = [0x0A000001, 0x0A000002, 0x0A000102, 0x0A010203]
PORTS = [53, 80, 443]


@pytest.fixture
def rig():
    with empty_rig(3) as r:
        yield r


def ip_text(addr: int) -> str:
    return ".".join(str((addr >> s) & 0xFF) for s in (24, 16, 8, 0))


def udp_to(addr: int, dport: int = 53, src: bytes = H1) -> bytes:
    return pb.udp_frame(src, H2, "192.168.0.1", ip_text(addr), 4000, dport)


# ---------------------------------------------------------------- randomized
def random_match(rnd: random.Random, table_id: int) -> Match:
    fields: dict = {}
    if rnd.random() < 0.4:
        fields["in_port"] = rnd.choice([1, 2, 3])
    if rnd.random() < 0.7:
        fields["eth_type"] = 0x0800
        if rnd.random() < 0.6:
            plen = rnd.choice([8, 16, 24, 32])
            mask = ((1 << plen) - 1) << (32 - plen)
            fields["ipv4_dst"] = (rnd.choice(DSTS) & mask, mask)
        if rnd.random() < 0.5:
            proto = rnd.choice([6, 17])
            fields["ip_proto"] = proto
            if rnd.random() < 0.6:
                fields["tcp_dst" if proto == 6 else "udp_dst"] = rnd.choice(PORTS)
    if rnd.random() < 0.3:
        fields["eth_src"] = rnd.choice([H1, host_mac(3)])
        fields["eth_src"] = int.from_bytes(fields["eth_src"], "big")
    if table_id and rnd.random() < 0.4:
        fields["metadata"] = (rnd.choice([0, 1, 2]), 0xFF)
    return Match(fields)


def random_instructions(rnd: random.Random, table_id: int, match: Match) -> tuple:
    actions: list = []
    if "eth_type" in match and rnd.random() < 0.3:
        actions.append(ActSetField("ipv4_dst", rnd.choice(DSTS)))
    if rnd.random() < 0.8:
        actions.append(ActOutput(rnd.choice([1, 2, 3])))
    insts: list = [InstApplyActions(tuple(actions))]
    if table_id < 2 and rnd.random() < 0.5:
        if rnd.random() < 0.5:
            insts.append(InstWriteMetadata(rnd.choice([1, 2]), 0xFF))
        insts.append(InstGotoTable(table_id + 1))
    return tuple(insts)


def random_frame(rnd: random.Random) -> tuple[int, bytes]:
    src = rnd.choice([H1, host_mac(3)])
    dst = rnd.choice(DSTS + [0x0B000001])
    if rnd.random() < 0.5:
        frame = pb.tcp_frame(src, H2, "192.168.0.1", ip_text(dst), 4000, rnd.choice(PORTS))
    else:
        frame = udp_to(dst, rnd.choice(PORTS), src)
    return rnd.choice([1, 2, 3]), frame


def stale_flows(rig: Rig, universe: list) -> list[str]:
    """Installed flows some packet of which would now be handled differently."""
    problems = []
    reval = rig.backer.revalidator
    for record in list(reval.records.values()):
        dp = rig.dpif.flow_get(record.key, record.mask)
        if dp is None or tuple(dp.actions) != record.actions:
            problems.append(f"datapath disagrees with record {record.key}")
            continue
        flow_bits = record.key.masked(record.mask)
        for key in universe:
            if key.masked(record.mask) != flow_bits:
                continue
            _owner, result = rig.backer._translate_for_revalidation(key)
            if tuple(result.actions) != record.actions:
                problems.append(f"{key} -> {result.actions}, flow says {record.actions}")
    return problems


@pytest.mark.parametrize("seed", range(8))
def test_scoped_revalidation_never_leaves_a_stale_flow(rig: Rig, seed: int) -> None:
    rnd = random.Random(seed)
    rules: list[FlowMod] = []

    def add_random_rule() -> None:
        table_id = rnd.choice([0, 0, 1, 2])
        match = random_match(rnd, table_id)
        fm = FlowMod(OFPFC_ADD, match, random_instructions(rnd, table_id, match),
                     table_id=table_id, priority=rnd.choice([1, 10, 10, 20, 30]))
        rig.bridge.flow_mod(fm)
        rules.append(fm)

    for _ in range(25):
        add_random_rule()
    frames = [random_frame(rnd) for _ in range(80)]
    universe = [parse_packet(frame, rig.dp_port(port)) for port, frame in frames]
    rig.settle()  # the full pass the ports' creation asked for
    translations = count_translations(rig)
    full_passes = rig.backer.revalidator.n_revalidations
    for step in range(60):
        for port, frame in rnd.sample(frames, 6):
            rig.send(port, frame)
        choice = rnd.random()
        if choice < 0.5 or not rules:
            add_random_rule()
        else:
            fm = rnd.choice(rules)
            if choice < 0.75:
                rig.bridge.flow_mod(FlowMod(OFPFC_DELETE_STRICT, fm.match, table_id=fm.table_id,
                                            priority=fm.priority))
                rules.remove(fm)
            else:
                rig.bridge.flow_mod(FlowMod(
                    OFPFC_MODIFY_STRICT, fm.match,
                    random_instructions(rnd, fm.table_id, fm.match),
                    table_id=fm.table_id, priority=fm.priority))
        rig.backer.run_revalidation()
        assert stale_flows(rig, universe) == [], f"step {step}"
    assert len(rig.backer.revalidator) > 5
    # rule changes were handled by scoped passes, not by re-translating everything
    assert rig.backer.revalidator.n_revalidations == full_passes
    assert rig.backer.revalidator.n_scoped > 0 and translations[0] > 0


# ---------------------------------------------------------------- focused
def install_per_destination(rig: Rig, count: int) -> None:
    for i in range(count):
        rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(eth_type=0x0800, ipv4_dst=0x0A000000 | i),
                                    (InstApplyActions((ActOutput(2),)),), priority=100))
    for i in range(count):
        rig.dpif.inject(rig.dp_port(1), udp_to(0x0A000000 | i))
    rig.settle()
    assert len(rig.backer.revalidator) == count
    rig.all_received()  # start with empty port queues


def test_rule_for_a_new_destination_retranslates_no_installed_flow(rig: Rig) -> None:
    install_per_destination(rig, 300)
    translations = count_translations(rig)
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(eth_type=0x0800, ipv4_dst=0x0B000001),
                                (InstApplyActions((ActOutput(3),)),), priority=100))
    rig.backer.run_revalidation()
    assert translations[0] == 0


def test_deleting_one_rule_retranslates_its_flow_only(rig: Rig) -> None:
    install_per_destination(rig, 300)
    translations = count_translations(rig)
    rig.bridge.flow_mod(FlowMod(OFPFC_DELETE_STRICT, Match(eth_type=0x0800, ipv4_dst=0x0A000007),
                                priority=100))
    rig.backer.run_revalidation()
    assert translations[0] == 1
    dropping = [r for r in rig.backer.revalidator.records.values() if not r.actions]
    assert len(dropping) == 1 and dropping[0].key.ip_dst[:4] == bytes([10, 0, 0, 7])
    rig.send(1, udp_to(0x0A000007))
    rig.send(1, udp_to(0x0A000008))
    assert len(rig.received(2)) == 1


def test_overlapping_higher_priority_rule_retranslates_every_flow_it_covers(rig: Rig) -> None:
    install_per_destination(rig, 50)
    translations = count_translations(rig)
    slash28 = Match(eth_type=0x0800, ipv4_dst=(0x0A000000, 0xFFFFFFF0))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, slash28, (InstApplyActions((ActOutput(3),)),),
                                priority=200))
    rig.backer.run_revalidation()
    assert translations[0] == 16  # the flows of 10.0.0.0/28, and no others
    for i in range(16):  # 10.0.0.0/28 now goes to port 3, the rest still to 2
        rig.send(1, udp_to(0x0A000000 | i))
    rig.send(1, udp_to(0x0A000000 | 40))
    assert len(rig.received(3)) == 16 and len(rig.received(2)) == 1


def test_flow_mod_reaches_the_datapath_on_the_next_loop_turn(rig: Rig) -> None:
    async def scenario() -> None:
        await rig.backer.start()
        try:
            rig.dpif.inject(rig.dp_port(1), udp_to(0x0A000001))
            await asyncio.sleep(0.01)
            (record,) = rig.backer.revalidator.records.values()
            assert record.actions == ()  # table miss: drop
            rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1),
                                        (InstApplyActions((ActOutput(2),)),), priority=5))
            loop = asyncio.get_running_loop()
            started = loop.time()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert loop.time() - started < REVALIDATE_DELAY_S / 2
            flow = rig.dpif.flow_get(record.key, record.mask)
            assert flow is not None and flow.actions == (Output(rig.dp_port(2)),)
        finally:
            await rig.backer.stop()

    asyncio.run(scenario())
