"""The batched datapath calls give what the one-by-one calls give, on every
provider: ``execute_many`` (one sendmmsg per run of output-only packets on
bpf), ``flow_dump``/``flow_dump_stats`` (BPF_MAP_LOOKUP_BATCH on bpf, in
chunks), and the upcall handler's ``flow_put`` of a batch."""

from __future__ import annotations

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import FlowKey, Output, PopVlan, PushVlan, SetMasked
from tests.dpif.harness import DatapathHarness, collect_many

A, B = bytes([0x02, 0, 0, 0, 0x6A, 1]), bytes([0x02, 0, 0, 0, 0x6A, 2])


def frames(n: int) -> list[bytes]:
    return [pb.udp_frame(A, B, "10.9.0.1", "10.9.0.2", 1000 + i, 53, payload=bytes([i]) * 8)
            for i in range(n)]


def test_dpif_fast_execute_many_equals_execute_one_by_one(harness: DatapathHarness) -> None:
    p1, p2, p3 = (harness.add_port(f"xm{i}") for i in (1, 2, 3))
    pkts = frames(12)
    batch = [
        (pkts[0], (Output(p2),)),
        (pkts[1], (Output(p2), Output(p3))),
        (pkts[2], (Output(9999),)),  # a port that does not exist: dropped
        (pkts[3], (PushVlan(0x0064), Output(p3))),
        (pkts[4], (Output(p2),)),
        (pkts[5], (SetMasked("nw_ttl", 9, 0xFF), Output(p2))),
        (pkts[6], (Output(p3), PushVlan(0x0065), Output(p2), PopVlan(), Output(p2))),
        (pkts[7], ()),
        (pkts[8], (Output(-1),)),  # refused: the others still go
        (pkts[9], (Output(p2),) * 3),
    ]
    expected: dict[int, list[bytes]] = {}
    for packet, actions in batch:  # one by one first: what each port must get
        try:
            harness.dpif.execute(packet, actions)
        except DpifError:
            continue
    for port in (p2, p3):
        expected[port] = harness.recv(port, timeout=0.5)
    assert len(expected[p2]) == 9 and len(expected[p3]) == 3
    before = {port: harness.dpif.port_stats(port).tx_packets for port in (p2, p3)}

    errors = harness.dpif.execute_many(batch)
    assert [e is not None for e in errors] == [i == 8 for i in range(len(batch))]
    for port in (p2, p3):
        got = collect_many(harness, port, expected[port], timeout=2.0)
        assert got == expected[port], f"port {port}: same frames, same order"
        assert harness.dpif.port_stats(port).tx_packets - before[port] == len(expected[port])
    assert harness.recv(p1, timeout=0.2) == []


def test_dpif_fast_dumps_read_every_flow(harness: DatapathHarness) -> None:
    port = harness.add_port("xd1")
    masks = [FlowKey(in_port=0xFFFFFFFF, eth_type=0xFFFF, ip_dst=b"\xff" * 4 + bytes(12)),
             FlowKey(in_port=0xFFFFFFFF, tp_src=0xFFFF)]
    flows = {}
    for i in range(2600):  # more than one batch of the bpf dump
        mask = masks[i % 2]
        key = FlowKey(in_port=port, eth_type=0x0800, ip_dst=i.to_bytes(4, "big") + bytes(12),
                      tp_src=i, nw_ttl=7)
        actions = (Output(port),) if i % 3 else (PushVlan(i % 4000), Output(port))
        harness.dpif.flow_put(key, mask, actions)
        flows[(key.masked_bytes(mask), mask.pack())] = actions
    dump = harness.dpif.flow_dump()
    assert {(f.key.pack(), f.mask.pack()): tuple(f.actions) for f in dump} == flows
    stats = harness.dpif.flow_dump_stats()
    assert len(stats) == len(flows)
    assert {(k, m) for k, m, _ in stats} == set(flows)
    assert all(s.packets == 0 for _, _, s in stats)


def test_dpif_fast_flow_put_many_keeps_counters_of_existing_flows(
        harness: DatapathHarness) -> None:
    p1, p2 = harness.add_port("xp1"), harness.add_port("xp2")
    frame = frames(1)[0]
    from ovsbpfd.dpif.packet import parse_packet

    key = parse_packet(frame, p1)
    mask = FlowKey(in_port=0xFFFFFFFF, eth_type=0xFFFF, tp_src=0xFFFF)
    assert harness.dpif.flow_put_many([(key, mask, (Output(p2),))]) == [None]
    harness.send(p1, frame)
    assert collect_many(harness, p2, [frame]) == [frame]
    other = key.replace(tp_src=7)
    results = harness.dpif.flow_put_many([
        (key, mask, (Output(p2), Output(p2))),  # exists: modified, counters kept
        (other, mask, (Output(p2),)),
        (other, mask, (Output(p1),)),  # twice in one batch: the last one wins
        (key, mask, (Output(-5),)),  # refused
    ])
    assert [r is None for r in results] == [True, True, True, False]
    flow = harness.dpif.flow_get(key, mask)
    assert flow is not None and flow.actions == (Output(p2), Output(p2))
    assert flow.stats.packets == 1
    second = harness.dpif.flow_get(other, mask)
    assert second is not None and second.actions == (Output(p1),)
    assert harness.dpif.stats().n_flows == 2


def test_dpif_fast_flow_add_many_adds_every_flow(harness: DatapathHarness) -> None:
    port = harness.add_port("xa1")
    masks = [FlowKey(in_port=0xFFFFFFFF, eth_type=0xFFFF, ip_dst=b"\xff" * 4 + bytes(12)),
             FlowKey(in_port=0xFFFFFFFF, tp_src=0xFFFF),
             FlowKey(in_port=0xFFFFFFFF, tp_dst=0xFFFF)]
    harness.dpif.flow_put(FlowKey(in_port=port, tp_src=1), masks[1], (Output(port),))
    flows = []
    for i in range(300):  # the third mask is new to the datapath half way through
        mask = masks[i % 2] if i < 150 else masks[i % 3]
        key = FlowKey(in_port=port, eth_type=0x0800, ip_dst=bytes([10, 3, i // 256, i % 256])
                      + bytes(12), tp_src=1000 + i, tp_dst=2000 + i)
        actions = (Output(-1),) if i == 77 else (Output(port),) * (1 + i % 3)
        flows.append((key, mask, actions))
    results = harness.dpif.flow_add_many(flows)
    assert [i for i, r in enumerate(results) if r is not None] == [77]
    for i, (key, mask, actions) in enumerate(flows):
        got = harness.dpif.flow_get(key, mask)
        assert (got is None) if i == 77 else (got is not None and got.actions == actions)
    stats = harness.dpif.stats()
    assert stats.n_flows == 300 and stats.n_masks == 3
    for key, mask, _ in flows[:10]:  # deleting them releases nothing twice
        harness.dpif.flow_del(key, mask)
    assert harness.dpif.stats().n_flows == 290
