"""BPF-specific datapath behaviour beyond the shared conformance suite:
truncated upcalls, the exact-match cache never outliving a flow change, and
mask slots being reused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.dpif.packet_build import udp_frame
from ovsbpfd.dpif.types import UPCALL_MISS, FlowKey, Output
from tests.dpif.harness import collect, eventually, upcalls_for
from tests.dpif.harness_bpf import BpfHarness, bpf_harness

MAC_A, MAC_B = "02:0c:00:00:00:01", "02:0c:00:00:00:02"
IN_PORT_ONLY = FlowKey(in_port=0xFFFFFFFF)
EXACT = FlowKey.all_ones()


@pytest.fixture
def harness() -> Iterator[BpfHarness]:
    with bpf_harness() as h:
        yield h


def udp_ab(sport: int = 1, payload: bytes = b"x") -> bytes:
    return udp_frame(MAC_A, MAC_B, "10.79.0.1", "10.79.0.2", sport, 9, payload)


def test_dpif_bpf_big_packet_upcall_is_truncated(harness: BpfHarness) -> None:
    a = harness.add_port("big-a", mtu=9000)
    frame = udp_ab(payload=b"J" * 4000)
    harness.send(a, frame)
    [upcall] = upcalls_for(harness.dpif, frame)
    assert upcall.kind == UPCALL_MISS and upcall.truncated
    assert upcall.packet_len == len(frame) and len(upcall.packet) == 1600
    assert upcall.key == parse_packet(frame, a)


def test_dpif_bpf_modified_flow_acts_at_once(harness: BpfHarness) -> None:
    a, b, c = (harness.add_port(n) for n in ("mod-a", "mod-b", "mod-c"))
    frame = udp_ab()
    harness.dpif.flow_put(FlowKey(in_port=a), IN_PORT_ONLY, [Output(b)])
    harness.send(a, frame)  # also fills the exact-match cache
    assert collect(harness, b, frame) == 1
    harness.dpif.flow_put(FlowKey(in_port=a), IN_PORT_ONLY, [Output(c)])
    harness.send(a, frame)
    assert collect(harness, c, frame) == 1
    assert frame not in harness.recv(b, timeout=0.2)


def test_dpif_bpf_deleted_flow_misses_despite_cache(harness: BpfHarness) -> None:
    a, b = harness.add_port("del-a"), harness.add_port("del-b")
    frame = udp_ab()
    harness.dpif.flow_put(parse_packet(frame, a), EXACT, [Output(b)])
    harness.send(a, frame)
    assert collect(harness, b, frame) == 1
    harness.dpif.flow_del(parse_packet(frame, a), EXACT)
    harness.send(a, frame)
    assert len(upcalls_for(harness.dpif, frame)) == 1
    assert frame not in harness.recv(b, timeout=0.2)


def test_dpif_bpf_freed_mask_slot_is_reused(harness: BpfHarness) -> None:
    a, b = harness.add_port("msk-a"), harness.add_port("msk-b")
    dpif = harness.dpif
    by_sport = IN_PORT_ONLY.replace(tp_src=0xFFFF, eth_type=0xFFFF, nw_proto=0xFF)
    by_dst = IN_PORT_ONLY.replace(eth_dst=b"\xff" * 6)
    f1, f2 = udp_ab(sport=1), udp_ab(sport=2)
    f3 = udp_frame(MAC_A, "02:0c:00:00:00:03", "10.79.0.1", "10.79.0.3", 1, 9, b"x")
    dpif.flow_put(parse_packet(f1, a), by_sport, [Output(b)])  # slot 0
    dpif.flow_put(parse_packet(f2, a), EXACT, [Output(b)])  # slot 1
    dpif.flow_del(parse_packet(f1, a), by_sport)  # frees slot 0
    assert dpif.stats().n_masks == 1
    dpif.flow_put(parse_packet(f3, a), by_dst, [Output(b)])  # takes slot 0 again
    assert dpif.stats().n_masks == 2
    for frame in (f3, f2):
        harness.send(a, frame)
        assert collect(harness, b, frame) == 1
    assert eventually(lambda: {f.mask: f.stats.packets for f in dpif.flow_dump()}
                      == {by_dst: 1, EXACT: 1})
    assert dpif.stats().n_missed == 0
