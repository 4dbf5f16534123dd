"""Datapath records <-> BPF map bytes, without touching the kernel."""

from __future__ import annotations

import ctypes

import pytest

from ovsbpfd.dpif.bpf import codec, structs
from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.dpif.packet_build import udp_frame
from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import (
    MAX_ACTIONS,
    UPCALL_ACTION,
    FlowKey,
    FlowStats,
    Output,
    PopVlan,
    PushVlan,
    Userspace,
)

KEY = parse_packet(udp_frame("02:0d:00:00:00:01", "02:0d:00:00:00:02", "10.83.0.1",
                             "10.83.0.2", 5, 6, b"codec"), 3)


def test_dpif_bpf_flow_value_round_trips() -> None:
    actions = (PushVlan(tci=0x2005, tpid=0x88A8), Output(2), PopVlan(), Output(7),
               Userspace(cookie=(1 << 64) - 1))
    stats = FlowStats(packets=5, bytes=600, used_ns=123456789, tcp_flags=0x12)
    raw = codec.encode_flow(actions, stats)
    assert len(raw) == ctypes.sizeof(structs.Flow)
    assert codec.decode_flow(raw) == (actions, stats)


def test_dpif_bpf_empty_actions_mean_drop() -> None:
    raw = codec.encode_flow((), FlowStats())
    assert structs.Flow.from_buffer_copy(raw).n_actions == 0
    assert codec.decode_flow(raw)[0] == ()


@pytest.mark.parametrize(("actions", "final"), [
    ((Output(1), Output(2)), 1),
    ((Output(1), Userspace(9)), 0),
    ((Output(1), PushVlan(5), Output(2)), 2),
    ((Output(1), PushVlan(5)), structs.NO_OUTPUT),  # the tag must not reach port 1
    ((Output(1), PopVlan(), Userspace(1)), structs.NO_OUTPUT),
    ((), structs.NO_OUTPUT),
])
def test_dpif_bpf_only_a_last_unmodified_output_redirects(actions: tuple, final: int) -> None:
    assert codec.final_output_index(actions) == final


def test_dpif_bpf_unknown_action_is_einval() -> None:
    with pytest.raises(DpifError):
        codec.encode_flow((object(),), FlowStats())  # type: ignore[arg-type]


def test_dpif_bpf_action_array_is_bounded() -> None:
    assert len(structs.Flow().actions) == MAX_ACTIONS


def test_dpif_bpf_mask_slot_and_flow_key_round_trip() -> None:
    mask = FlowKey(in_port=0xFFFFFFFF, eth_dst=b"\xff" * 6)
    assert codec.decode_mask(codec.encode_mask(mask)) == mask
    assert codec.decode_mask(bytes(structs.Mask())) is None
    raw_key = codec.encode_flow_map_key(7, KEY.masked(mask))
    assert codec.decode_flow_map_key(raw_key) == (7, KEY.masked(mask))


def test_dpif_bpf_upcall_record_decodes() -> None:
    packet = b"\x01" * 40
    header = structs.UpcallHeader(kind=UPCALL_ACTION, packet_len=3000, data_len=len(packet),
                                  cookie=42, key=structs.FlowKeyBytes(*KEY.pack()))
    record = bytes(header) + packet + b"\0" * 4  # ring records are 8-byte padded
    assert codec.decode_upcall(record) == (UPCALL_ACTION, KEY, packet, 3000, 42)
