"""GROUP_MOD and METER_MOD messages, and the group/meter multipart bodies.

Decoding checks what the spec lets a switch check without knowing its
groups and meters: commands, types, flags, ids in range, bucket and band
lengths, rates; existence, loops and capacity are the core's questions.
"""

from __future__ import annotations

import struct

from ovsbpfd.ofproto.actions import OFPG_ALL, OFPG_ANY
from ovsbpfd.ofproto.ofp_errors import (
    OFPET_GROUP_MOD_FAILED,
    OFPET_METER_MOD_FAILED,
    OFPGMFC_BAD_BUCKET,
    OFPGMFC_BAD_COMMAND,
    OFPGMFC_BAD_TYPE,
    OFPGMFC_BAD_WATCH,
    OFPGMFC_INVALID_GROUP,
    OFPMMFC_BAD_BAND,
    OFPMMFC_BAD_COMMAND,
    OFPMMFC_BAD_FLAGS,
    OFPMMFC_BAD_RATE,
    OFPMMFC_INVALID_METER,
)
from ovsbpfd.ofproto.openflow.actions_codec import OFPG_MAX, decode_actions, encode_actions
from ovsbpfd.ofproto.openflow.reader import Reader
from ovsbpfd.ofproto.types import (
    OFPGC_ADD,
    OFPGC_DELETE,
    OFPGT_FF,
    OFPM_ALL,
    OFPMBT_DROP,
    OFPMBT_DSCP_REMARK,
    OFPMC_ADD,
    OFPMC_DELETE,
    Bucket,
    GroupMod,
    GroupStats,
    MeterBand,
    MeterMod,
    MeterStats,
    OfpError,
)

OFPM_MAX = 0xFFFF0000
# Virtual meters OVS accepts besides 1..OFPM_MAX.
OFPM_SLOWPATH, OFPM_CONTROLLER = 0xFFFFFFFD, 0xFFFFFFFE
ALL_METER_FLAGS = 0xF

BUCKET = struct.Struct("!HHII4x")
GROUP_MOD = struct.Struct("!HBxI")
GROUP_DESC = struct.Struct("!HBxI")
GROUP_STATS = struct.Struct("!H2xII4xQQII")
BUCKET_COUNTER = struct.Struct("!QQ")
METER_MOD = struct.Struct("!HHI")
BAND = struct.Struct("!HHII")
METER_CONFIG = struct.Struct("!HHI")
METER_STATS = struct.Struct("!IH6xIQQII")
ID_REQUEST = struct.Struct("!I4x")


def _group_error(code: int, message: str) -> OfpError:
    return OfpError(OFPET_GROUP_MOD_FAILED, code, message)


def _meter_error(code: int, message: str) -> OfpError:
    return OfpError(OFPET_METER_MOD_FAILED, code, message)


# ---------------------------------------------------------------- buckets and bands
def encode_buckets(buckets: tuple[Bucket, ...]) -> bytes:
    out = []
    for b in buckets:
        acts = encode_actions(b.actions)
        out.append(BUCKET.pack(BUCKET.size + len(acts), b.weight, b.watch_port,
                               b.watch_group) + acts)
    return b"".join(out)


def decode_buckets(data: bytes) -> tuple[Bucket, ...]:
    reader = Reader(data, OFPET_GROUP_MOD_FAILED, OFPGMFC_BAD_BUCKET)
    out = []
    while reader.remaining:
        length, weight, watch_port, watch_group = reader.unpack(BUCKET)
        if length < BUCKET.size or length % 8 or length - BUCKET.size > reader.remaining:
            raise _group_error(OFPGMFC_BAD_BUCKET, f"bucket length {length}")
        acts = decode_actions(reader.take(length - BUCKET.size))
        out.append(Bucket(acts, weight, watch_port, watch_group))
    return tuple(out)


def encode_bands(bands: tuple[MeterBand, ...]) -> bytes:
    return b"".join(BAND.pack(b.type, 16, b.rate, b.burst_size)
                    + struct.pack("!B3x", b.prec_level) for b in bands)


def decode_bands(data: bytes) -> tuple[MeterBand, ...]:
    reader = Reader(data, OFPET_METER_MOD_FAILED, OFPMMFC_BAD_BAND)
    out = []
    while reader.remaining:
        band_type, length, rate, burst = reader.unpack(BAND)
        if length != 16:
            raise _meter_error(OFPMMFC_BAD_BAND, f"band length {length}")
        tail = reader.take(4)
        if band_type not in (OFPMBT_DROP, OFPMBT_DSCP_REMARK):
            raise _meter_error(OFPMMFC_BAD_BAND, f"band type {band_type}")
        if rate == 0:
            raise _meter_error(OFPMMFC_BAD_RATE, "band rate 0")
        prec = tail[0] if band_type == OFPMBT_DSCP_REMARK else 0
        out.append(MeterBand(band_type, rate, burst, prec))
    return tuple(out)


# ---------------------------------------------------------------- message bodies
def encode_group_mod(gm: GroupMod) -> bytes:
    return GROUP_MOD.pack(gm.command, gm.type, gm.group_id) + encode_buckets(gm.buckets)


def decode_group_mod(reader: Reader) -> GroupMod:
    command, group_type, group_id = reader.unpack(GROUP_MOD)
    buckets = decode_buckets(reader.rest())
    if command > OFPGC_DELETE:
        raise _group_error(OFPGMFC_BAD_COMMAND, f"command {command}")
    if group_type > OFPGT_FF:
        raise _group_error(OFPGMFC_BAD_TYPE, f"type {group_type}")
    if group_id > OFPG_MAX and not (command == OFPGC_DELETE and group_id == OFPG_ALL):
        raise _group_error(OFPGMFC_INVALID_GROUP, f"group id 0x{group_id:x}")
    if group_type == OFPGT_FF and any(b.watch_port == 0xFFFFFFFF and
                                      b.watch_group == OFPG_ANY for b in buckets):
        raise _group_error(OFPGMFC_BAD_WATCH, "fast failover bucket watches nothing")
    return GroupMod(command, group_type, group_id, buckets)


def encode_meter_mod(mm: MeterMod) -> bytes:
    return METER_MOD.pack(mm.command, mm.flags, mm.meter_id) + encode_bands(mm.bands)


def decode_meter_mod(reader: Reader) -> MeterMod:
    command, flags, meter_id = reader.unpack(METER_MOD)
    bands = decode_bands(reader.rest())
    if command > OFPMC_DELETE:
        raise _meter_error(OFPMMFC_BAD_COMMAND, f"command {command}")
    if flags & ~ALL_METER_FLAGS:
        raise _meter_error(OFPMMFC_BAD_FLAGS, f"flags 0x{flags:x}")
    if not (0 < meter_id <= OFPM_MAX or meter_id in (OFPM_SLOWPATH, OFPM_CONTROLLER)
            or (command == OFPMC_DELETE and meter_id == OFPM_ALL)):
        raise _meter_error(OFPMMFC_INVALID_METER, f"meter id 0x{meter_id:x}")
    return MeterMod(command, flags, meter_id, bands)


# ---------------------------------------------------------------- multipart bodies
def encode_id_request(object_id: int) -> bytes:
    """Body of OFPMP_GROUP, OFPMP_METER and OFPMP_METER_CONFIG requests."""
    return ID_REQUEST.pack(object_id)


def decode_id_request(body: bytes) -> int:
    reader = Reader(body)
    (object_id,) = reader.unpack(ID_REQUEST)
    reader.expect_end()
    return object_id


def encode_group_desc(gm: GroupMod) -> bytes:
    buckets = encode_buckets(gm.buckets)
    return GROUP_DESC.pack(GROUP_DESC.size + len(buckets), gm.type, gm.group_id) + buckets


def decode_group_descs(body: bytes) -> list[GroupMod]:
    reader = Reader(body)
    out = []
    while reader.remaining:
        length, group_type, group_id = reader.unpack(GROUP_DESC)
        buckets = decode_buckets(reader.take(length - GROUP_DESC.size))
        out.append(GroupMod(OFPGC_ADD, group_type, group_id, buckets))
    return out


def encode_group_stats(st: GroupStats) -> bytes:
    counters = b"".join(BUCKET_COUNTER.pack(*pair) for pair in st.bucket_counts)
    return GROUP_STATS.pack(GROUP_STATS.size + len(counters), st.group_id, st.ref_count,
                            st.packet_count, st.byte_count, st.duration_sec,
                            st.duration_nsec) + counters


def decode_group_stats(body: bytes) -> list[GroupStats]:
    reader = Reader(body)
    out = []
    while reader.remaining:
        length, group_id, ref, packets, nbytes, sec, nsec = reader.unpack(GROUP_STATS)
        n = (length - GROUP_STATS.size) // BUCKET_COUNTER.size
        counts = tuple(reader.unpack(BUCKET_COUNTER) for _ in range(n))
        out.append(GroupStats(group_id, ref, packets, nbytes, sec, nsec, counts))
    return out


def encode_meter_config(mm: MeterMod) -> bytes:
    bands = encode_bands(mm.bands)
    return METER_CONFIG.pack(METER_CONFIG.size + len(bands), mm.flags, mm.meter_id) + bands


def decode_meter_configs(body: bytes) -> list[MeterMod]:
    reader = Reader(body)
    out = []
    while reader.remaining:
        length, flags, meter_id = reader.unpack(METER_CONFIG)
        bands = decode_bands(reader.take(length - METER_CONFIG.size))
        out.append(MeterMod(OFPMC_ADD, flags, meter_id, bands))
    return out


def encode_meter_stats(st: MeterStats) -> bytes:
    counters = b"".join(BUCKET_COUNTER.pack(*pair) for pair in st.band_counts)
    return METER_STATS.pack(st.meter_id, METER_STATS.size + len(counters), st.flow_count,
                            st.packet_in_count, st.byte_in_count, st.duration_sec,
                            st.duration_nsec) + counters


def decode_meter_stats(body: bytes) -> list[MeterStats]:
    reader = Reader(body)
    out = []
    while reader.remaining:
        meter_id, length, flows, packets, nbytes, sec, nsec = reader.unpack(METER_STATS)
        n = (length - METER_STATS.size) // BUCKET_COUNTER.size
        counts = tuple(reader.unpack(BUCKET_COUNTER) for _ in range(n))
        out.append(MeterStats(meter_id, flows, packets, nbytes, sec, nsec, counts))
    return out
