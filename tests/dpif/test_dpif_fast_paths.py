"""The slow path's fast paths give exactly what the plain ways give: FlowKey
masking on integers, struct-built map keys, remembered action encodings."""

from __future__ import annotations

import ctypes
import dataclasses
import random

import pytest

from ovsbpfd.dpif.bpf import codec, structs
from ovsbpfd.dpif.types import (
    FLOW_KEY_SIZE,
    FlowKey,
    FlowStats,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    SetMasked,
    Userspace,
)


def random_key(rnd: random.Random) -> FlowKey:
    return FlowKey(
        in_port=rnd.getrandbits(32), vlan_tci=rnd.getrandbits(16), eth_type=rnd.getrandbits(16),
        eth_src=rnd.randbytes(6), eth_dst=rnd.randbytes(6), nw_proto=rnd.getrandbits(8),
        nw_tos=rnd.getrandbits(8), nw_ttl=rnd.getrandbits(8), nw_frag=rnd.getrandbits(8),
        ip_src=rnd.randbytes(16), ip_dst=rnd.randbytes(16), tp_src=rnd.getrandbits(16),
        tp_dst=rnd.getrandbits(16), arp_sha=rnd.randbytes(6), arp_tha=rnd.randbytes(6))


def bytewise(a: FlowKey, b: FlowKey, op) -> FlowKey:
    return FlowKey.unpack(bytes(op(x, y) for x, y in zip(a.pack(), b.pack(), strict=True)))


@pytest.mark.parametrize("seed", range(5))
def test_masking_union_and_cover_agree_with_bytewise_reference(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(200):
        key, mask = random_key(rnd), random_key(rnd)
        masked = key.masked(mask)
        assert masked == bytewise(key, mask, lambda x, y: x & y)
        assert masked.pack() == FlowKey(**dataclasses.asdict(masked)).pack()
        assert mask.union(key) == bytewise(mask, key, lambda x, y: x | y)
        assert mask.covers(masked) and mask.union(key).covers(mask)
        assert mask.covers(key) == (key.masked(mask) == key)


def test_unpacked_keys_are_plain_flow_keys() -> None:
    key = random_key(random.Random(1))
    again = FlowKey.unpack(key.pack() + b"trailing bytes are ignored")
    assert again == key and hash(again) == hash(key) and repr(again) == repr(key)
    assert again.replace(tp_src=1) == dataclasses.replace(key, tp_src=1)
    assert FlowKey.all_ones().pack() == b"\xff" * FLOW_KEY_SIZE
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.tp_src = 5  # type: ignore[misc]


def test_flow_map_key_bytes_match_the_ctypes_mirror() -> None:
    key = random_key(random.Random(2))
    mirror = bytes(structs.FlowMapKey(mask_id=17, key=structs.FlowKeyBytes(*key.pack())))
    assert codec.encode_flow_map_key(17, key) == mirror
    assert codec.decode_flow_map_key(mirror) == (17, key)


def ctypes_flow(actions: tuple, stats: FlowStats) -> bytes:
    """A fresh ctypes encoding, bypassing the remembered templates."""
    template = codec._encode_actions(actions)
    flow = structs.Flow.from_buffer_copy(template)
    flow.packets, flow.bytes, flow.used_ns = stats.packets, stats.bytes, stats.used_ns
    flow.tcp_flags = stats.tcp_flags
    return bytes(flow)


@pytest.mark.parametrize("actions", [
    (),
    (Output(2),),
    (PushVlan(0x2005), Output(1), PopVlan(), Userspace(7), Meter(3)),
    (SetMasked.exact("nw_ttl", 63), SetMasked("ip_dst", bytes([10, 0, 0, 1]), b"\xff" * 4),
     Output(4)),
])
def test_remembered_action_encodings_equal_fresh_ones(actions: tuple) -> None:
    for stats in (FlowStats(), FlowStats(packets=3, bytes=180, used_ns=99, tcp_flags=0x12)):
        first = codec.encode_flow(actions, stats)
        again = codec.encode_flow(actions, stats)
        assert first == again == ctypes_flow(actions, stats)
        assert len(first) == ctypes.sizeof(structs.Flow)
        assert codec.decode_flow(first) == (actions, stats)
        assert codec.flow_stats(first) == stats


def test_a_short_upcall_record_is_refused() -> None:
    with pytest.raises(ValueError):
        codec.decode_upcall(bytes(codec.UPCALL_HEADER_SIZE - 1))
