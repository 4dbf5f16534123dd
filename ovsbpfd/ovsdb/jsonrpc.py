"""JSON-RPC 1.0 framing as OVSDB uses it: JSON objects back to back on a stream.

There is no delimiter between messages, so the splitter tracks string and
bracket nesting (with a C-implemented regex) to find where each top-level
value ends, then hands it to the standard library's json parser.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"|[{}\[\]]', re.S)
MAX_MESSAGE = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not JSON-RPC; the connection must close."""


class MessageSplitter:
    """Turns received bytes into complete JSON values."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""
        self._scan = 0  # where tokenising resumes
        self._depth = 0
        self._start: int | None = None

    def feed(self, data: bytes) -> list[Any]:
        try:
            self._buf += self._decoder.decode(data)
        except UnicodeDecodeError as e:
            raise ProtocolError("invalid UTF-8") from e
        out: list[Any] = []
        while True:
            value = self._next()
            if value is None:
                break
            out.append(value)
        if len(self._buf) > MAX_MESSAGE:
            raise ProtocolError("message too long")
        return out

    def _next(self) -> Any:
        buf = self._buf
        if self._start is None:
            rest = buf[self._scan:]
            pos = self._scan + len(rest) - len(rest.lstrip())
            if pos >= len(buf):
                self._buf, self._scan = "", 0
                return None
            if buf[pos] not in "{[":
                raise ProtocolError("message is not a JSON object")
            self._start, self._scan, self._depth = pos, pos, 0
        for m in _TOKENS.finditer(buf, self._scan):
            tok = m.group()
            if tok == '"':
                self._scan = m.start()  # unterminated string: wait for more
                return None
            if tok[0] == '"':
                continue
            self._depth += 1 if tok in "{[" else -1
            if self._depth == 0:
                end = m.end()
                text = buf[self._start:end]
                self._buf = buf[end:]
                self._scan, self._start = 0, None
                try:
                    return json.loads(text)
                except ValueError as e:
                    raise ProtocolError(f"invalid JSON: {e}") from e
        self._scan = len(buf)
        return None


def encode(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()


def reply(msg_id: Any, result: Any) -> dict:
    return {"id": msg_id, "result": result, "error": None}


def error_reply(msg_id: Any, error: Any) -> dict:
    return {"id": msg_id, "error": error}


def notification(method: str, params: list) -> dict:
    return {"id": None, "method": method, "params": params}
