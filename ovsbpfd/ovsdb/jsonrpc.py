"""JSON-RPC 1.0 framing as OVSDB uses it: JSON objects back to back on a stream.

There is no delimiter between messages, so the splitter tracks bracket
nesting (with a C-implemented regex that skips whole strings and everything
else but brackets) to find where each top-level value ends, then hands it to
orjson (the standard library's json parser where orjson refuses).  Scanning
resumes where it stopped, so a message that arrives in many pieces costs
linear time however large it is.

What made it fast: a whole message is parsed in one C call, and the check for
integers too long for 64 bits (which need a slower decoder) is a byte
translation plus one substring search instead of a regex, which cost three
times the parse itself on the digit-heavy (UUID-laden) messages ovs-vsctl sends.
orjson parses straight from the bytes (no UTF-8 decode to a str first) in
about half the standard library's time.  It refuses everything the standard
library's parser refuses, and a little more (NaN, Infinity, numbers that
overflow a double, lone surrogates, invalid UTF-8): whatever it refuses goes
to the standard library's parser, as before, so values and errors are the same.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Outside strings only quotes and brackets matter; inside a string, a quote
# ends it unless escaped.  UTF-8 never puts these ASCII bytes inside a
# multi-byte character, so scanning bytes is exact.
# Everything up to the next bracket outside a string, or up to a string that
# has not ended yet.  Possessive, so a long unfinished string costs one pass.
_SKIP = re.compile(rb'(?:[^"{}\[\]]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.S)
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.S)
_SPACE = re.compile(rb"[ \t\r\n]*")
MAX_MESSAGE = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not JSON-RPC; the connection must close."""


class MessageSplitter:
    """Turns received bytes into complete JSON values."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._pos = 0  # where scanning resumes
        self._start: int | None = None  # first byte of the message being read
        self._depth = 0
        self._in_string = False
        self.error: ProtocolError | None = None  # raised by the next feed()

    def feed(self, data: bytes) -> list[Any]:
        """Complete values in the stream so far.  Bad input raises ProtocolError,
        but only once the good messages before it have been returned."""
        if self.error is not None:
            raise self.error
        self._buf += data
        out: list[Any] = []
        try:
            while True:
                value = self._next()
                if value is _INCOMPLETE:
                    break
                out.append(value)
            if self._start is not None and len(self._buf) - self._start > self.max_message:
                raise ProtocolError("message too long")
        except ProtocolError as e:
            if not out:
                raise
            self.error = e
            return out
        if self._start is None and self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        elif self._start is not None and self._start > (1 << 16):
            del self._buf[:self._start]
            self._pos -= self._start
            self._start = 0
        return out

    @property
    def buffered(self) -> int:
        """Bytes held for a message not yet complete."""
        return len(self._buf) - (self._start if self._start is not None else self._pos)

    def _next(self) -> Any:
        buf = self._buf
        if self._start is None:
            pos = _SPACE.match(buf, self._pos).end()
            self._pos = pos
            if pos >= len(buf):
                return _INCOMPLETE
            if buf[pos] not in b"{[":
                raise ProtocolError("message is not a JSON object")
            value, end = _decode_whole(buf, pos)
            if end:
                self._pos = end
                return value
            self._start, self._depth, self._in_string = pos, 0, False
        pos = self._pos
        end = len(buf)
        while pos < end:
            if self._in_string:
                pos = _STRING_BODY.match(buf, pos).end()
                if pos >= end:
                    break
                if buf[pos] != 0x22:  # a lone backslash at the end: wait for more
                    break
                self._in_string = False
                pos += 1
                continue
            # Jump over everything but brackets (whole strings included) in C.
            pos = _SKIP.match(buf, pos).end()
            if pos >= end:
                break
            ch = buf[pos]
            pos += 1
            if ch == 0x22:  # a string that has not ended yet: resume inside it
                self._in_string = True
            elif ch in b"{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    raw = bytes(buf[self._start:pos])
                    self._start, self._pos = None, pos
                    long_numbers = _has_long_number(raw)
                    if not long_numbers:
                        try:
                            return orjson.loads(raw)
                        except orjson.JSONDecodeError:
                            pass  # the standard library decides (and words the error)
                    try:
                        return _raw_decode(raw.decode(), long_numbers)[0]
                    except ValueError as e:  # includes invalid UTF-8
                        raise ProtocolError(f"invalid JSON: {e}") from e
        self._pos = pos
        return _INCOMPLETE


_INCOMPLETE = object()
FAST_PATH_LIMIT = 4 * 1024 * 1024
_DECODER = json.JSONDecoder()
_LONG_DECODER = json.JSONDecoder(parse_int=lambda text: _parse_int(text))
# Every digit becomes "0", every other byte a space: a run of 19 digits (the
# shortest integer that may not fit 64 bits) is then a plain substring.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


def _has_long_number(data: bytes | bytearray) -> bool:
    """Whether the text holds 19 digits in a row (maybe inside a string: that
    only costs the slower decoder, never a wrong value)."""
    return _LONG_RUN in data.translate(_DIGITS_ONLY)


def _raw_decode(text: str, long_numbers: bool) -> tuple[Any, int]:
    # Integers that may not fit 64 bits need the slower checking decoder.
    decoder = _LONG_DECODER if long_numbers else _DECODER
    return decoder.raw_decode(text)


def _decode_whole(buf: bytearray, pos: int) -> tuple[Any, int]:
    """Fast path: when one whole message (the usual case) is already buffered,
    parse it in one C call.  Returns (value, end offset), or (None, 0) when it
    is not complete or not valid, for the scanner to decide which."""
    if len(buf) - pos > FAST_PATH_LIMIT:
        return None, 0
    raw = buf[pos:]
    long_numbers = _has_long_number(raw)
    if not long_numbers:
        # Usually the buffer holds exactly one message: then orjson takes it
        # whole.  Two messages, a partial one or anything orjson refuses fall
        # through to the standard library, which finds where the first ends.
        try:
            return orjson.loads(raw), len(buf)
        except orjson.JSONDecodeError:
            pass
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None, 0
    try:
        value, end = _raw_decode(text, long_numbers)
    except ValueError:
        return None, 0
    if not text.isascii():
        end = len(text[:end].encode())
    return value, pos + end
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _parse_int(text: str) -> int | float:
    """Integers beyond 64 bits are reals to ovsdb-server's JSON parser."""
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else float(text)


def encode(msg: Any) -> bytes:
    """Compact JSON, in C by orjson; what it refuses (an integer past 64 bits,
    a key that is not a string) the standard library writes instead."""
    try:
        return orjson.dumps(msg)
    except TypeError:  # orjson.JSONEncodeError included
        return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()


class Encoded:
    """A result already encoded as JSON (big, shared or cached), placed into
    the reply as it is rather than decoded and encoded again."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def encoded_reply(msg_id: Any, result: bytes) -> bytes:
    """reply(msg_id, result) as bytes, around an already-encoded result."""
    return b'{"id":%s,"result":%s,"error":null}' % (encode(msg_id), result)


def reply(msg_id: Any, result: Any) -> dict:
    return {"id": msg_id, "result": result, "error": None}


def error_reply(msg_id: Any, error: Any) -> dict:
    return {"id": msg_id, "error": error}


def notification(method: str, params: list) -> dict:
    return {"id": None, "method": method, "params": params}
