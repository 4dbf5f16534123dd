"""End to end over the dummy datapath, with the backer running on asyncio:
upcalls, megaflows, revalidation after FLOW_MODs, counters, timeouts."""

from __future__ import annotations

import asyncio
import re

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.ofproto.actions import ActOutput, InstApplyActions
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import (
    OFPFC_ADD,
    OFPFC_DELETE,
    OFPFF_SEND_FLOW_REM,
    OFPPR_ADD,
    OFPPR_DELETE,
    FlowMod,
    FlowStatsRequest,
)
from tests.ofproto.core.rig import Rig, host_mac

H1, H2, H3 = host_mac(1), host_mac(2), host_mac(3)


def run(coro_fn) -> None:
    rig = Rig(3)
    try:
        asyncio.run(_with_backer(rig, coro_fn))
    finally:
        rig.close()


async def _with_backer(rig: Rig, coro_fn) -> None:
    await rig.backer.start()
    try:
        await coro_fn(rig)
    finally:
        await rig.backer.stop()


async def inject(rig: Rig, ofport: int, frame: bytes) -> None:
    rig.dpif.inject(rig.dp_port(ofport), frame)
    await asyncio.sleep(0.01)  # the loop sees the upcall fd and handles it


def normal_rule_packets(rig: Rig) -> int:
    (entry,) = [e for e in rig.bridge.flow_stats(FlowStatsRequest()) if e.priority == 0]
    return entry.packet_count


def test_forwarding_upcalls_revalidation_and_counters() -> None:
    async def scenario(rig: Rig) -> None:
        frames_1to2 = [pb.arp_request(H1, "10.0.0.1", "10.0.0.2"),
                       pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"),
                       pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 5000, 53)]
        await inject(rig, 1, frames_1to2[0])
        assert [len(rig.received(p)) for p in (2, 3)] == [1, 1]
        await inject(rig, 2, pb.arp_reply(H2, "10.0.0.2", H1, "10.0.0.1"))
        assert len(rig.received(1)) == 1 and rig.received(3) == []
        await inject(rig, 1, frames_1to2[1])
        await inject(rig, 1, frames_1to2[2])
        assert len(rig.received(2)) == 2 and rig.received(3) == []
        assert rig.backer.upcall_count() == 3
        for seq in range(10):  # stays in the datapath: no more upcalls
            await inject(rig, 1, pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2", seq=seq))
            await inject(rig, 2, pb.icmp_frame(H2, H1, "10.0.0.2", "10.0.0.1", seq=seq))
        assert rig.backer.upcall_count() == 3 and rig.misses() == 3
        assert len(rig.received(2)) == 10 and len(rig.received(1)) == 10
        assert "missed:3" in rig.backer.datapath_show()
        assert re.search(r"in_port\(1\),eth\(src=02:00:00:00:00:01,dst=02:00:00:00:00:02\), "
                         r"packets:\d+, bytes:\d+, used:[0-9.]+s, actions:2",
                         rig.backer.dump_datapath_flows())

        # counters reach the NORMAL rule within a second
        await asyncio.sleep(1.1)
        assert normal_rule_packets(rig) == 24  # 4 first packets + 20 pings

        # a drop rule stops forwarding via revalidation, deleting it restores it
        rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1), (), priority=10))
        await asyncio.sleep(0.1)
        await inject(rig, 1, pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"))
        assert rig.received(2) == []
        await inject(rig, 2, pb.icmp_frame(H2, H1, "10.0.0.2", "10.0.0.1"))
        assert len(rig.received(1)) == 1  # the other direction is untouched
        rig.bridge.flow_mod(FlowMod(OFPFC_DELETE, Match(in_port=1)))
        await rig.bridge.barrier()
        await inject(rig, 1, pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"))
        assert len(rig.received(2)) == 1

    run(scenario)


def test_idle_timeout_removes_rule_with_flow_removed() -> None:
    async def scenario(rig: Rig) -> None:
        rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=3), (
            InstApplyActions((ActOutput(1),)),), priority=50, idle_timeout=1,
            flags=OFPFF_SEND_FLOW_REM, cookie=7))
        await inject(rig, 3, pb.udp_frame(H3, H1, "10.0.0.3", "10.0.0.1", 1, 2))
        assert len(rig.received(1)) == 1
        await asyncio.sleep(2.3)
        assert [(m.cookie, m.reason, m.packet_count) for m in rig.events.removed] == [(7, 0, 1)]
        await inject(rig, 3, pb.udp_frame(H3, H1, "10.0.0.3", "10.0.0.1", 1, 2))
        assert len(rig.received(1)) == 1  # NORMAL floods it again (H1 unknown)
        assert len(rig.received(2)) == 1

    run(scenario)


def test_port_add_and_delete() -> None:
    rig = Rig(2)
    try:
        assert [r for r, _p in rig.events.port_events] == [OFPPR_ADD, OFPPR_ADD]
        ofport = rig.bridge.port_add("extra", 999, host_mac(9), ofport_request=7)
        assert ofport == 7 and rig.events.port_events[-1][0] == OFPPR_ADD
        assert rig.bridge.port_add("auto", 998, host_mac(8)) == 3
        local = rig.bridge.port_add("br0", 997, host_mac(10), local=True)
        assert local == 0xFFFFFFFE
        assert [p.port_no for p in rig.bridge.ports()] == [1, 2, 3, 7, local]
        rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
        assert all(len(rig.dpif.take_output(rig.dp_port(p))) == 1 for p in (2, 3, 7, local))
        rig.bridge.port_del(7)
        assert rig.events.port_events[-1][0] == OFPPR_DELETE
        assert 7 not in [p.port_no for p in rig.bridge.ports()]
        rig.settle()
        rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
        assert rig.misses() == 1  # the flood flow was fixed in place by revalidation
        assert all(len(rig.dpif.take_output(rig.dp_port(p))) == 1 for p in (2, 3, local))
        (flow,) = rig.dpif.flow_dump()
        assert len(flow.actions) == 3
    finally:
        rig.close()


def test_bridges_share_one_datapath_but_not_traffic() -> None:
    first = Rig(2, name="br0")
    second = Rig(2, name="br1", backer=first.backer)
    try:
        assert {first.dp_port(1), first.dp_port(2)}.isdisjoint(
            {second.dp_port(1), second.dp_port(2)})
        first.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
        assert len(first.received(2)) == 1
        assert second.received(1) == [] and second.received(2) == []
        assert len(second.bridge.mac) == 0 and len(first.bridge.mac) == 1
        second.bridge.destroy()
        assert len(first.dpif.port_list()) == 2
        first.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
        assert len(first.received(2)) == 1
    finally:
        first.close()


def test_fail_mode_secure_drops_and_standalone_restores_normal() -> None:
    rig = Rig(2)
    try:
        rig.bridge.set_fail_mode("secure")
        rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
        assert rig.received(2) == [] and len(rig.bridge.pipeline) == 0
        rig.bridge.set_fail_mode("standalone")
        rig.settle()
        rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
        assert len(rig.received(2)) == 1
    finally:
        rig.close()
