"""Datapath records <-> the bytes of the BPF maps (flows, masks, ports, stats)."""

from __future__ import annotations

import ctypes
import errno

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


def encode_flow_map_key(mask_id: int, masked_key: FlowKey) -> bytes:
    return bytes(structs.FlowMapKey(mask_id=mask_id,
                                    key=structs.FlowKeyBytes(*masked_key.pack())))


def decode_flow_map_key(raw: bytes) -> tuple[int, FlowKey]:
    fk = structs.FlowMapKey.from_buffer_copy(raw)
    return fk.mask_id, FlowKey.unpack(bytes(fk.key))


def final_output_index(actions: tuple[DpAction, ...]) -> int:
    """Index of the output that may use bpf_redirect (no packet change after it)."""
    for i in range(len(actions) - 1, -1, -1):
        act = actions[i]
        if isinstance(act, Output):
            return i
        if isinstance(act, (PushVlan, PopVlan, SetMasked)):
            return structs.NO_OUTPUT
    return structs.NO_OUTPUT


def encode_flow(actions: tuple[DpAction, ...], stats: FlowStats) -> bytes:
    flow = structs.Flow(packets=stats.packets, bytes=stats.bytes, used_ns=stats.used_ns,
                        tcp_flags=stats.tcp_flags, n_actions=len(actions),
                        final_output=final_output_index(actions))
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
    return decode_flow(raw)[1]


UPCALL_HEADER_SIZE = ctypes.sizeof(structs.UpcallHeader)


def decode_upcall(raw: bytes) -> tuple[int, FlowKey, bytes, int, int]:
    """(kind, key, packet bytes, packet_len, cookie) of one ring buffer record."""
    hdr = structs.UpcallHeader.from_buffer_copy(raw[:UPCALL_HEADER_SIZE])
    data = raw[UPCALL_HEADER_SIZE:UPCALL_HEADER_SIZE + hdr.data_len]
    return hdr.kind, FlowKey.unpack(bytes(hdr.key)), data, hdr.packet_len, hdr.cookie


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
