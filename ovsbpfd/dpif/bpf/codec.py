"""Datapath records <-> the bytes of the BPF maps (flows, masks, ports, stats)."""

from __future__ import annotations

import ctypes
import errno

from ovsbpfd.dpif.bpf import structs
from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import (
    DpAction,
    FlowKey,
    FlowStats,
    Output,
    PopVlan,
    PushVlan,
    Userspace,
)


def encode_mask(mask: FlowKey) -> bytes:
    return bytes(structs.Mask(in_use=1, mask=structs.FlowKeyBytes(*mask.pack())))


def decode_mask(raw: bytes) -> FlowKey | None:
    """The mask in a mask-table slot, None if the slot is free."""
    slot = structs.Mask.from_buffer_copy(raw)
    return FlowKey.unpack(bytes(slot.mask)) if slot.in_use else None


def encode_flow_map_key(mask_id: int, masked_key: FlowKey) -> bytes:
    return bytes(structs.FlowMapKey(mask_id=mask_id,
                                    key=structs.FlowKeyBytes(*masked_key.pack())))


def decode_flow_map_key(raw: bytes) -> tuple[int, FlowKey]:
    fk = structs.FlowMapKey.from_buffer_copy(raw)
    return fk.mask_id, FlowKey.unpack(bytes(fk.key))


def final_output_index(actions: tuple[DpAction, ...]) -> int:
    """Index of the output that may use bpf_redirect (no VLAN change after it)."""
    for i in range(len(actions) - 1, -1, -1):
        act = actions[i]
        if isinstance(act, Output):
            return i
        if isinstance(act, (PushVlan, PopVlan)):
            return structs.NO_OUTPUT
    return structs.NO_OUTPUT


def encode_flow(actions: tuple[DpAction, ...], stats: FlowStats) -> bytes:
    flow = structs.Flow(packets=stats.packets, bytes=stats.bytes, used_ns=stats.used_ns,
                        tcp_flags=stats.tcp_flags, n_actions=len(actions),
                        final_output=final_output_index(actions))
    for slot, act in zip(flow.actions, actions, strict=False):
        if isinstance(act, Output):
            if act.port > 0xFFFFFFFF:
                raise DpifError(errno.EINVAL, f"bad output port {act.port}")
            slot.type, slot.arg = structs.ACTION_OUTPUT, act.port
        elif isinstance(act, PushVlan):
            slot.type, slot.tpid, slot.arg = structs.ACTION_PUSH_VLAN, act.tpid, act.tci
        elif isinstance(act, PopVlan):
            slot.type = structs.ACTION_POP_VLAN
        elif isinstance(act, Userspace):
            slot.type, slot.cookie = structs.ACTION_USERSPACE, act.cookie
        else:
            raise DpifError(errno.EINVAL, f"unknown datapath action {act!r}")
    return bytes(flow)


def decode_flow(raw: bytes) -> tuple[tuple[DpAction, ...], FlowStats]:
    flow = structs.Flow.from_buffer_copy(raw)
    actions: list[DpAction] = []
    for slot in flow.actions[:min(flow.n_actions, len(flow.actions))]:
        if slot.type == structs.ACTION_OUTPUT:
            actions.append(Output(slot.arg))
        elif slot.type == structs.ACTION_PUSH_VLAN:
            actions.append(PushVlan(tci=slot.arg, tpid=slot.tpid))
        elif slot.type == structs.ACTION_POP_VLAN:
            actions.append(PopVlan())
        elif slot.type == structs.ACTION_USERSPACE:
            actions.append(Userspace(slot.cookie))
    stats = FlowStats(packets=flow.packets, bytes=flow.bytes, used_ns=flow.used_ns,
                      tcp_flags=flow.tcp_flags)
    return tuple(actions), stats


def flow_stats(raw: bytes) -> FlowStats:
    return decode_flow(raw)[1]


UPCALL_HEADER_SIZE = ctypes.sizeof(structs.UpcallHeader)


def decode_upcall(raw: bytes) -> tuple[int, FlowKey, bytes, int, int]:
    """(kind, key, packet bytes, packet_len, cookie) of one ring buffer record."""
    hdr = structs.UpcallHeader.from_buffer_copy(raw[:UPCALL_HEADER_SIZE])
    data = raw[UPCALL_HEADER_SIZE:UPCALL_HEADER_SIZE + hdr.data_len]
    return hdr.kind, FlowKey.unpack(bytes(hdr.key)), data, hdr.packet_len, hdr.cookie
