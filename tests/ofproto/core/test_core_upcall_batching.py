"""Upcalls handled a batch at a time give exactly the per-packet results of
handling them one at a time, and a MAC move re-translates only the flows
that looked that address up."""

from __future__ import annotations

import random

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.types import Output
from ovsbpfd.ofproto.actions import (
    OFPP_NORMAL,
    ActDecNwTtl,
    ActOutput,
    ActSetField,
    InstApplyActions,
)
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod, FlowStatsRequest
from tests.ofproto.core.rig import Rig, host_mac

HOSTS = [host_mac(n) for n in range(1, 9)]


def ip_of(n: int) -> str:
    return f"10.0.{n // 256}.{n % 256}"


def configure(rig: Rig) -> None:
    """NORMAL (priority 0) plus rules that rewrite, decrement TTLs and output."""
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match({"eth_type": 0x0800,
                                                   "ipv4_dst": (0x0A000100, 0xFFFFFF00)}),
                                (InstApplyActions((ActOutput(2),)),), priority=10))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match({"eth_type": 0x0800, "ip_proto": 17,
                                                   "udp_dst": 53}),
                                (InstApplyActions((ActSetField("ipv4_src", 0x0B000001),
                                                   ActDecNwTtl(), ActOutput(3),
                                                   ActOutput(OFPP_NORMAL))),), priority=20))


def random_frames(seed: int, count: int) -> list[tuple[int, bytes]]:
    """(in ofport, frame): ARP and IP between hosts that sometimes move,
    repeats of one flow, broadcasts and rule hits."""
    rnd = random.Random(seed)
    where = {mac: rnd.randint(1, 4) for mac in HOSTS}
    frames = []
    for i in range(count):
        src, dst = rnd.sample(HOSTS, 2)
        if rnd.random() < 0.1:
            where[src] = rnd.randint(1, 4)  # the host moved
        kind = rnd.random()
        if kind < 0.2:
            frame = pb.arp_request(src, ip_of(HOSTS.index(src)), ip_of(HOSTS.index(dst)))
        elif kind < 0.4:
            frame = pb.udp_frame(src, dst, "10.0.0.9", ip_of(256 + rnd.randint(0, 3)), 4000, 80)
        elif kind < 0.55:
            frame = pb.udp_frame(src, dst, "10.0.0.9", "10.0.9.9", 4000, 53)
        elif kind < 0.7 and frames:
            frames.append(frames[rnd.randrange(len(frames))])  # the same flow again
            continue
        else:
            frame = pb.icmp_frame(src, dst, ip_of(HOSTS.index(src)), ip_of(i % 7))
        frames.append((where[src], frame))
    return frames


def run_rig(frames: list[tuple[int, bytes]], batch: int, chunk: int) -> dict:
    """Feed ``frames`` ``chunk`` at a time (each chunk all misses before any
    is handled), handling ``batch`` upcalls per call; what came out."""
    rig = Rig(4)
    try:
        configure(rig)
        rig.backer.upcall_batch = batch
        for start in range(0, len(frames), chunk):
            for ofport, frame in frames[start:start + chunk]:
                rig.dpif.inject(rig.dp_port(ofport), frame)
            rig.settle()
        flows = sorted((f.key.pack(), f.mask.pack(), f.actions, f.stats.packets,
                        f.stats.bytes) for f in rig.dpif.flow_dump())
        rules = sorted((e.priority, e.packet_count, e.byte_count)
                       for e in rig.bridge.flow_stats(FlowStatsRequest()))
        macs = sorted((e.vlan, e.mac, e.port) for e in rig.bridge.mac.entries())
        return {"out": rig.all_received(), "flows": flows, "rules": rules, "macs": macs,
                "upcalls": rig.backer.n_upcalls, "records": len(rig.backer.revalidator)}
    finally:
        rig.close()


def test_core_upcall_batches_equal_one_at_a_time() -> None:
    for seed in range(6):
        frames = random_frames(seed, 150)
        for chunk in (1, 7, 40):
            one_by_one = run_rig(frames, batch=1, chunk=chunk)
            batched = run_rig(frames, batch=64, chunk=chunk)
            assert batched == one_by_one, (seed, chunk)
            assert sum(len(v) for v in batched["out"].values()) > 0


def test_core_upcall_batch_with_duplicates_installs_each_flow_once() -> None:
    rig = Rig(3)
    try:
        rig.send(2, pb.arp_request(HOSTS[1], "10.0.0.2", "10.0.0.1"))  # learn H2 on 2
        rig.all_received()
        frame = pb.icmp_frame(HOSTS[0], HOSTS[1], "10.0.0.1", "10.0.0.2")
        for _ in range(5):  # all five miss: none is handled before the last arrives
            rig.dpif.inject(rig.dp_port(1), frame)
        rig.settle()
        assert rig.received(2) == [frame] * 5
        (flow,) = [f for f in rig.dpif.flow_dump() if f.key.in_port == rig.dp_port(1)]
        assert flow.actions == (Output(rig.dp_port(2)),)
        (normal,) = rig.bridge.flow_stats(FlowStatsRequest())
        assert normal.packet_count == 6
    finally:
        rig.close()


# ---------------------------------------------------------------- MAC moves
def test_core_upcall_mac_move_revalidates_only_flows_that_looked_it_up() -> None:
    rig = Rig(4)
    try:
        h1, h2, h3, h4 = HOSTS[:4]
        for ofport, host in zip((1, 2, 3, 4), (h1, h2, h3, h4), strict=True):
            rig.send(ofport, pb.arp_request(host, "10.0.0.99", "10.0.0.98"))
        pairs = [(1, h1, h2), (3, h3, h2), (1, h1, h3), (3, h3, h4), (4, h4, h1),
                 (2, h2, h1)]
        for ofport, src, dst in pairs:
            rig.send(ofport, pb.icmp_frame(src, dst, "10.0.0.1", "10.0.0.2"))
        rig.all_received()
        records = list(rig.backer.revalidator.records.values())
        to_h2 = {r.key for r in records if r.key.eth_dst == h2}
        assert len(to_h2) == 2 and len(records) > 6

        seen = []
        inner = rig.backer.revalidator.translate

        def counting(key):
            seen.append(key)
            return inner(key)

        rig.backer.revalidator.translate = counting
        full_before = rig.backer.revalidator.n_revalidations
        rig.send(4, pb.arp_request(h2, "10.0.0.2", "10.0.0.98"))  # H2 moved to port 4
        assert rig.backer.revalidator.n_revalidations == full_before, "no full pass"
        assert sorted(seen, key=repr) == sorted(to_h2, key=repr), \
            "exactly the flows towards H2 were re-translated"

        rig.all_received()
        frame = pb.icmp_frame(h1, h2, "10.0.0.1", "10.0.0.2")
        misses = rig.misses()
        rig.send(1, frame)
        assert rig.misses() == misses, "the fixed flow forwards in the datapath"
        assert rig.received(4) == [frame] and rig.received(2) == []
        # Nothing is left that a full pass would still change.
        rig.backer.revalidator.translate = inner
        assert rig.backer.revalidator.revalidate() == 0
    finally:
        rig.close()


def test_core_upcall_mac_learned_fixes_flooding_flows_of_that_address() -> None:
    rig = Rig(4)
    try:
        h1, h2, h3 = HOSTS[:3]
        rig.send(1, pb.arp_request(h1, "10.0.0.1", "10.0.0.2"))
        rig.all_received()
        flood = pb.icmp_frame(h1, h2, "10.0.0.1", "10.0.0.2")  # H2 unknown: flooded
        rig.send(1, flood)
        other = pb.icmp_frame(h1, h3, "10.0.0.1", "10.0.0.3")  # H3 unknown: flooded
        rig.send(1, other)
        assert all(len(v) == 2 for p, v in rig.all_received().items() if p != 1)
        rig.send(3, pb.arp_request(h2, "10.0.0.2", "10.0.0.1"))  # H2 appears on 3
        rig.all_received()
        misses = rig.misses()
        rig.send(1, flood)
        rig.send(1, other)
        out = rig.all_received()
        assert rig.misses() == misses
        assert out[3] == [flood, other] and out[2] == [other] and out[4] == [other]
    finally:
        rig.close()


def test_core_upcall_mac_table_full_falls_back_to_a_full_pass() -> None:
    rig = Rig(3)
    try:
        rig.bridge.mac.max_entries = 2
        h1, h2, h3 = HOSTS[:3]
        rig.send(1, pb.arp_request(h1, "10.0.0.1", "10.0.0.2"))
        rig.send(2, pb.arp_request(h2, "10.0.0.2", "10.0.0.1"))
        to_h1 = pb.icmp_frame(h2, h1, "10.0.0.2", "10.0.0.1")
        rig.send(2, to_h1)
        rig.all_received()
        full_before = rig.backer.revalidator.n_revalidations
        rig.send(3, pb.arp_request(h3, "10.0.0.3", "10.0.0.1"))  # evicts H1 (oldest)
        assert rig.bridge.mac.lookup(0, h1) is None
        assert rig.backer.revalidator.n_revalidations == full_before + 1
        rig.all_received()
        rig.send(2, to_h1)  # H1 is unknown again: flooded, by the datapath or not
        out = rig.all_received()
        assert out[1] == [to_h1] and out[3] == [to_h1]
    finally:
        rig.close()
