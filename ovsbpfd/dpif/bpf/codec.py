"""Datapath records <-> the bytes of the BPF maps (flows, masks, ports, stats)."""

from __future__ import annotations

import ctypes
import errno
import struct

from ovsbpfd.dpif.bpf import structs
from ovsbpfd.dpif.meter import BandState, MeterState
from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import (
    SET_FIELD_WIDTHS,
    SET_INT_FIELDS,
    DpAction,
    FlowKey,
    FlowStats,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    SetMasked,
    Userspace,
)

_SET_FIELD_NAMES = {v: k for k, v in structs.SET_FIELD_IDS.items()}


def encode_mask(mask: FlowKey) -> bytes:
    return bytes(structs.Mask(in_use=1, mask=structs.FlowKeyBytes(*mask.pack())))


def decode_mask(raw: bytes) -> FlowKey | None:
    """The mask in a mask-table slot, None if the slot is free."""
    slot = structs.Mask.from_buffer_copy(raw)
    return FlowKey.unpack(bytes(slot.mask)) if slot.in_use else None


# struct ovsbpf_flow_map_key is a native u32 and the key's bytes, unpadded
# (checked against the ctypes mirror below); built with struct, not ctypes,
# since every upcall builds one or two.
_MASK_ID = struct.Struct("=I")
FLOW_MAP_KEY_PREFIX = _MASK_ID.size  # bytes of the mask id before the key
assert ctypes.sizeof(structs.FlowMapKey) == _MASK_ID.size + ctypes.sizeof(structs.FlowKeyBytes)


def encode_flow_map_key(mask_id: int, masked_key: FlowKey) -> bytes:
    return _MASK_ID.pack(mask_id) + masked_key.pack()


def encode_flow_map_key_packed(mask_id: int, packed_masked_key: bytes) -> bytes:
    """As ``encode_flow_map_key`` from the masked key's packed bytes."""
    return _MASK_ID.pack(mask_id) + packed_masked_key


def decode_flow_map_key(raw: bytes) -> tuple[int, FlowKey]:
    return _MASK_ID.unpack_from(raw)[0], FlowKey.unpack(raw[_MASK_ID.size:])


def final_output_index(actions: tuple[DpAction, ...]) -> int:
    """Index of the output that may use bpf_redirect (no packet change after it)."""
    for i in range(len(actions) - 1, -1, -1):
        act = actions[i]
        if isinstance(act, Output):
            return i
        if isinstance(act, (PushVlan, PopVlan, SetMasked)):
            return structs.NO_OUTPUT
    return structs.NO_OUTPUT


# struct ovsbpf_flow starts with its counters: packets, bytes, used_ns, tcp_flags.
_FLOW_STATS = struct.Struct("=QQQI")
assert structs.Flow.tcp_flags.offset == 24 and structs.Flow.n_actions.offset == 28
_ENCODED_ACTIONS: dict[tuple[DpAction, ...], bytes] = {}
_ENCODED_ACTIONS_MAX = 4096  # distinct action lists remembered (megaflows share few)


def encode_flow(actions: tuple[DpAction, ...], stats: FlowStats) -> bytes:
    """struct ovsbpf_flow for ``actions`` with ``stats``.

    The encoding of an action list is remembered: megaflows mostly repeat a
    few (output:2, drop ...), and building the ctypes struct dominates."""
    try:
        template = _ENCODED_ACTIONS.get(actions)
    except TypeError:  # an unhashable action: refused below
        template = None
    if template is None:
        template = _encode_actions(actions)
        if len(_ENCODED_ACTIONS) >= _ENCODED_ACTIONS_MAX:
            _ENCODED_ACTIONS.clear()
        _ENCODED_ACTIONS[actions] = template
    if not (stats.packets or stats.bytes or stats.used_ns or stats.tcp_flags):
        return template
    flow = bytearray(template)
    _FLOW_STATS.pack_into(flow, 0, stats.packets, stats.bytes, stats.used_ns, stats.tcp_flags)
    return bytes(flow)


def _encode_actions(actions: tuple[DpAction, ...]) -> bytes:
    flow = structs.Flow(n_actions=len(actions), final_output=final_output_index(actions))
    n_sets = 0
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
        elif isinstance(act, SetMasked):
            if n_sets >= len(flow.sets) or act.field not in structs.SET_FIELD_IDS:
                raise DpifError(errno.EINVAL, f"cannot encode {act!r}")
            slot.type, slot.tpid, slot.arg = (structs.ACTION_SET_MASKED,
                                              structs.SET_FIELD_IDS[act.field], n_sets)
            flow.sets[n_sets].value[:] = _left_aligned(act.field, act.value)
            flow.sets[n_sets].mask[:] = _left_aligned(act.field, act.mask)
            n_sets += 1
        elif isinstance(act, Meter):
            slot.type, slot.arg = structs.ACTION_METER, act.meter_id
        else:
            raise DpifError(errno.EINVAL, f"unknown datapath action {act!r}")
    return bytes(flow)


def _left_aligned(field: str, value: int | bytes) -> bytes:
    """A set value in the 16 bytes of struct ovsbpf_set_value, network order."""
    width = SET_FIELD_WIDTHS[field]
    raw = value.to_bytes(width, "big") if isinstance(value, int) else value
    return raw.ljust(16, b"\0")


def _decode_set(field_id: int, value: bytes, mask: bytes) -> SetMasked | None:
    field = _SET_FIELD_NAMES.get(field_id)
    if field is None:
        return None
    width = SET_FIELD_WIDTHS[field]
    if field in SET_INT_FIELDS:
        return SetMasked(field, int.from_bytes(value[:width], "big"),
                         int.from_bytes(mask[:width], "big"))
    return SetMasked(field, value[:width], mask[:width])


_DECODED_ACTIONS: dict[bytes, tuple[DpAction, ...]] = {}


def decode_flow(raw: bytes) -> tuple[tuple[DpAction, ...], FlowStats]:
    """The actions and counters of a struct ovsbpf_flow.

    Decoded action lists are remembered by their bytes (a dump decodes
    thousands of flows sharing a few action lists)."""
    encoded = bytes(raw[_FLOW_STATS.size:])
    actions = _DECODED_ACTIONS.get(encoded)
    if actions is None:
        actions, _ = _decode_flow(raw)
        if len(_DECODED_ACTIONS) >= _ENCODED_ACTIONS_MAX:
            _DECODED_ACTIONS.clear()
        _DECODED_ACTIONS[encoded] = actions
    return actions, flow_stats(raw)


def _decode_flow(raw: bytes) -> tuple[tuple[DpAction, ...], FlowStats]:
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
        elif slot.type == structs.ACTION_SET_MASKED and slot.arg < len(flow.sets):
            values = flow.sets[slot.arg]
            act = _decode_set(slot.tpid, bytes(values.value), bytes(values.mask))
            if act is not None:
                actions.append(act)
        elif slot.type == structs.ACTION_METER:
            actions.append(Meter(slot.arg))
    stats = FlowStats(packets=flow.packets, bytes=flow.bytes, used_ns=flow.used_ns,
                      tcp_flags=flow.tcp_flags)
    return tuple(actions), stats


def flow_stats(raw: bytes) -> FlowStats:
    packets, nbytes, used_ns, tcp_flags = _FLOW_STATS.unpack_from(raw)
    return FlowStats(packets=packets, bytes=nbytes, used_ns=used_ns, tcp_flags=tcp_flags)


UPCALL_HEADER_SIZE = ctypes.sizeof(structs.UpcallHeader)


_UPCALL_FIXED = struct.Struct("=IIIIQ")  # kind, packet_len, data_len, pad, cookie
assert UPCALL_HEADER_SIZE == _UPCALL_FIXED.size + ctypes.sizeof(structs.FlowKeyBytes)


def decode_upcall(raw: bytes) -> tuple[int, FlowKey, bytes, int, int]:
    """(kind, key, packet bytes, packet_len, cookie) of one ring buffer record."""
    if len(raw) < UPCALL_HEADER_SIZE:
        raise ValueError(f"upcall record of {len(raw)} bytes")
    kind, packet_len, data_len, _pad, cookie = _UPCALL_FIXED.unpack_from(raw)
    key = FlowKey.unpack(raw[_UPCALL_FIXED.size:UPCALL_HEADER_SIZE])
    data = raw[UPCALL_HEADER_SIZE:UPCALL_HEADER_SIZE + data_len]
    return kind, key, data, packet_len, cookie


# ---------------------------------------------------------------- meters


def encode_meter(meter: MeterState | None) -> bytes:
    """struct ovsbpf_meter for ``meter`` (a free slot for None)."""
    out = structs.MeterStruct()
    if meter is None:
        return bytes(out)
    if len(meter.bands) > len(out.bands):
        raise DpifError(errno.EINVAL, f"{len(meter.bands)} bands exceed {len(out.bands)}")
    out.in_use, out.kbps, out.n_bands = 1, int(meter.kbps), len(meter.bands)
    out.last_ns, out.packets_in, out.bytes_in = meter.last_ns, meter.packets_in, meter.bytes_in
    for slot, band in zip(out.bands, meter.bands, strict=False):
        slot.rate, slot.capacity, slot.fill_ns = band.rate, band.capacity, band.fill_ns
        slot.bucket, slot.packets, slot.bytes = band.bucket, band.packets, band.bytes
    return bytes(out)


def decode_meter(raw: bytes) -> MeterState | None:
    """The meter in a meters-map value, None if the slot is free."""
    m = structs.MeterStruct.from_buffer_copy(raw[:ctypes.sizeof(structs.MeterStruct)])
    if not m.in_use:
        return None
    bands = [BandState(b.rate, b.capacity, b.fill_ns, b.bucket, b.packets, b.bytes)
             for b in m.bands[:min(m.n_bands, len(m.bands))]]
    return MeterState(bool(m.kbps), bands, m.last_ns, m.packets_in, m.bytes_in)
