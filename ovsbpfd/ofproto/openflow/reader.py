"""Bounds-checked decoding: running out of bytes is an OpenFlow error.

Each decoder says which ``OfpError`` a short read means (BAD_REQUEST/BAD_LEN
for message bodies, BAD_MATCH/BAD_LEN inside a match, ...), so truncated
input is always answered with the spec's error instead of a struct.error.
"""

from __future__ import annotations

import struct

from ovsbpfd.ofproto.ofp_errors import (
    OFPBRC_BAD_LEN,
    OFPET_BAD_REQUEST,
)
from ovsbpfd.ofproto.types import OfpError


class Reader:
    def __init__(self, data: bytes, err_type: int = OFPET_BAD_REQUEST,
                 err_code: int = OFPBRC_BAD_LEN) -> None:
        self.data = data
        self.offset = 0
        self.err_type = err_type
        self.err_code = err_code

    def error(self, message: str) -> OfpError:
        return OfpError(self.err_type, self.err_code, message)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def unpack(self, fmt: struct.Struct) -> tuple:
        if self.remaining < fmt.size:
            raise self.error(f"need {fmt.size} bytes, {self.remaining} left")
        values = fmt.unpack_from(self.data, self.offset)
        self.offset += fmt.size
        return values

    def take(self, n: int) -> bytes:
        if n < 0 or self.remaining < n:
            raise self.error(f"need {n} bytes, {self.remaining} left")
        chunk = self.data[self.offset:self.offset + n]
        self.offset += n
        return chunk

    def rest(self) -> bytes:
        return self.take(self.remaining)

    def expect_end(self) -> None:
        if self.remaining:
            raise self.error(f"{self.remaining} unexpected trailing bytes")
