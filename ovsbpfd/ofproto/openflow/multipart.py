"""Bodies of OFPT_MULTIPART_REQUEST/REPLY, and splitting big replies.

A reply body is a list of items; ``split_reply`` packs whole items into as
few messages as fit the 16-bit length, flagging all but the last one
OFPMPF_REPLY_MORE, as the spec requires.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow.actions_codec import decode_instructions, encode_instructions
from ovsbpfd.ofproto.openflow.header import OFP_HEADER_LEN
from ovsbpfd.ofproto.openflow.messages import MULTIPART, MultipartReply
from ovsbpfd.ofproto.openflow.oxm import decode_match, encode_match
from ovsbpfd.ofproto.openflow.port_codec import (
    decode_port,
    decode_port_stats,
    encode_port,
    encode_port_stats,
)
from ovsbpfd.ofproto.openflow.reader import Reader
from ovsbpfd.ofproto.types import (
    FlowStatsEntry,
    FlowStatsRequest,
    OfPort,
    OfPortStats,
    TableStats,
)

# Room for items in one reply: 65535 minus the ofp_header and multipart header.
MAX_REPLY_BODY = c.OFP_MAX_MSG_LEN - OFP_HEADER_LEN - MULTIPART.size


def split_reply(mp_type: int, items: list[bytes], xid: int,
                max_body: int = MAX_REPLY_BODY) -> list[MultipartReply]:
    """Whole items packed into replies of at most ``max_body`` body bytes."""
    replies: list[MultipartReply] = []
    chunk: list[bytes] = []
    size = 0
    for item in items:
        if chunk and size + len(item) > max_body:
            replies.append(MultipartReply(mp_type, c.OFPMPF_REPLY_MORE, b"".join(chunk), xid=xid))
            chunk, size = [], 0
        chunk.append(item)
        size += len(item)
    replies.append(MultipartReply(mp_type, 0, b"".join(chunk), xid=xid))
    return replies


# ---------------------------------------------------------------- DESC
DESC = struct.Struct("!256s256s256s32s256s")


@dataclass
class Desc:
    mfr_desc: str = ""
    hw_desc: str = ""
    sw_desc: str = ""
    serial_num: str = ""
    dp_desc: str = ""


def _cstr(text: str, size: int) -> bytes:
    return text.encode("utf-8", "replace")[:size - 1]


def encode_desc(desc: Desc) -> bytes:
    return DESC.pack(_cstr(desc.mfr_desc, 256), _cstr(desc.hw_desc, 256),
                     _cstr(desc.sw_desc, 256), _cstr(desc.serial_num, 32),
                     _cstr(desc.dp_desc, 256))


def decode_desc(body: bytes) -> Desc:
    reader = Reader(body)
    fields = reader.unpack(DESC)
    reader.expect_end()
    return Desc(*(f.split(b"\0", 1)[0].decode("utf-8", "replace") for f in fields))


# ---------------------------------------------------------------- FLOW / AGGREGATE
FLOW_STATS_REQUEST = struct.Struct("!B3xII4xQQ")
FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")
AGGREGATE_REPLY = struct.Struct("!QQI4x")


def encode_flow_stats_request(req: FlowStatsRequest) -> bytes:
    return FLOW_STATS_REQUEST.pack(req.table_id, req.out_port, req.out_group, req.cookie,
                                   req.cookie_mask) + encode_match(req.match)


def decode_flow_stats_request(body: bytes) -> FlowStatsRequest:
    """Body of OFPMP_FLOW and OFPMP_AGGREGATE requests (the same struct)."""
    reader = Reader(body)
    table_id, out_port, out_group, cookie, cookie_mask = reader.unpack(FLOW_STATS_REQUEST)
    match = decode_match(reader)
    reader.expect_end()
    return FlowStatsRequest(table_id, out_port, out_group, cookie, cookie_mask, match)


def encode_flow_stats(entry: FlowStatsEntry) -> bytes:
    tail = encode_match(entry.match) + encode_instructions(entry.instructions)
    return FLOW_STATS.pack(FLOW_STATS.size + len(tail), entry.table_id, entry.duration_sec,
                           entry.duration_nsec, entry.priority, entry.idle_timeout,
                           entry.hard_timeout, entry.flags, entry.cookie,
                           entry.packet_count, entry.byte_count) + tail


def decode_flow_stats(body: bytes) -> list[FlowStatsEntry]:
    reader = Reader(body)
    entries = []
    while reader.remaining:
        start = reader.offset
        (length, table_id, dur_sec, dur_nsec, priority, idle, hard, flags, cookie,
         packets, nbytes) = reader.unpack(FLOW_STATS)
        if length < FLOW_STATS.size or start + length > len(body):
            raise reader.error(f"flow stats entry length {length}")
        match = decode_match(reader)
        instructions = decode_instructions(reader.take(start + length - reader.offset))
        entries.append(FlowStatsEntry(table_id, dur_sec, dur_nsec, priority, idle, hard,
                                      flags, cookie, packets, nbytes, match, instructions))
    return entries


def encode_aggregate_reply(packet_count: int, byte_count: int, flow_count: int) -> bytes:
    return AGGREGATE_REPLY.pack(packet_count, byte_count, flow_count)


def decode_aggregate_reply(body: bytes) -> tuple[int, int, int]:
    reader = Reader(body)
    values = reader.unpack(AGGREGATE_REPLY)
    reader.expect_end()
    return values


# ---------------------------------------------------------------- TABLE
TABLE_STATS = struct.Struct("!B3xIQQ")


def encode_table_stats(ts: TableStats) -> bytes:
    return TABLE_STATS.pack(ts.table_id, ts.active_count, ts.lookup_count, ts.matched_count)


def decode_table_stats(body: bytes) -> list[TableStats]:
    reader = Reader(body)
    out = []
    while reader.remaining:
        out.append(TableStats(*reader.unpack(TABLE_STATS)))
    return out


# ---------------------------------------------------------------- PORT_STATS / PORT_DESC
PORT_STATS_REQUEST = struct.Struct("!I4x")


def encode_port_stats_request(port_no: int) -> bytes:
    return PORT_STATS_REQUEST.pack(port_no)


def decode_port_stats_request(body: bytes) -> int:
    reader = Reader(body)
    (port_no,) = reader.unpack(PORT_STATS_REQUEST)
    reader.expect_end()
    return port_no


def decode_port_stats_list(body: bytes) -> list[OfPortStats]:
    reader = Reader(body)
    out = []
    while reader.remaining:
        out.append(decode_port_stats(reader))
    return out


def decode_port_desc_list(body: bytes) -> list[OfPort]:
    reader = Reader(body)
    out = []
    while reader.remaining:
        out.append(decode_port(reader))
    return out


__all__ = [
    "Desc", "split_reply", "encode_desc", "decode_desc", "encode_flow_stats_request",
    "decode_flow_stats_request", "encode_flow_stats", "decode_flow_stats",
    "encode_aggregate_reply", "decode_aggregate_reply", "encode_table_stats",
    "decode_table_stats", "encode_port_stats_request", "decode_port_stats_request",
    "encode_port_stats", "decode_port_stats_list", "encode_port", "decode_port_desc_list",
]
