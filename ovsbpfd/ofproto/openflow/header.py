"""The 8-byte ofp_header every OpenFlow message starts with."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ovsbpfd.ofproto.openflow.constants import OFP_HEADER_LEN, OFP_MAX_MSG_LEN, OFP_VERSION

HEADER = struct.Struct("!BBHI")


@dataclass(frozen=True)
class Header:
    version: int
    type: int
    length: int
    xid: int


def parse_header(data: bytes) -> Header:
    """Decode the first 8 bytes of ``data`` (the caller checks there are 8)."""
    return Header(*HEADER.unpack_from(data))


def pack_message(msg_type: int, xid: int, body: bytes = b"",
                 version: int = OFP_VERSION) -> bytes:
    """Frame ``body`` as one OpenFlow message of type ``msg_type``."""
    length = OFP_HEADER_LEN + len(body)
    if length > OFP_MAX_MSG_LEN:
        raise ValueError(f"OpenFlow message of {length} bytes exceeds 65535")
    return HEADER.pack(version, msg_type, length, xid & 0xFFFFFFFF) + body


def pad8(n: int) -> int:
    """Bytes of zero padding that round ``n`` up to a multiple of 8."""
    return (8 - n % 8) % 8
