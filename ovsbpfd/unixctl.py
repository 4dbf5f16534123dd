"""An asyncio unixctl server that ``ovs-appctl`` can talk to.

The protocol is JSON-RPC 1.0 over a unix stream socket, with no framing
between messages: ``{"method": CMD, "params": [str...], "id": N}`` is answered
by ``{"result": TEXT, "error": null, "id": N}`` or, on failure,
``{"result": null, "error": TEXT, "id": N}``.  Error texts for unknown
commands and wrong argument counts are worded as Open vSwitch words them,
because scripts match on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ovsbpfd import coverage

log = logging.getLogger(__name__)
_RECEIVED = coverage.counter("unixctl_received")
_REPLIED = coverage.counter("unixctl_replied")

Handler = Callable[[list[str]], "str | Awaitable[str]"]

#: a client sending more than this without completing one message is dropped
MAX_MESSAGE_BYTES = 1 << 20


class UnixctlError(Exception):
    """Raised by a command handler: its text becomes the JSON-RPC error."""


@dataclass(frozen=True)
class _Command:
    usage: str
    min_args: int
    max_args: int
    handler: Handler


class JsonSplitter:
    """Cuts a byte stream into complete top-level JSON texts.

    ovs-appctl writes one object and waits, but nothing stops a client from
    writing several at once or one in pieces; this finds object boundaries by
    tracking nesting depth outside strings, so stdlib ``json`` can parse each.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # scan position in _buf
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._start = -1  # offset of the current message's first byte

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every message it completed.

        Raises ValueError when the stream cannot be JSON (e.g. a top-level
        scalar or a stray closing bracket) or a message grows too large.
        """
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        i = self._pos
        n = len(buf)
        while i < n:
            c = buf[i]
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif c == 0x5C:  # backslash
                    self._escape = True
                elif c == 0x22:  # quote
                    self._in_string = False
            elif self._depth == 0:
                if c in b" \t\r\n":
                    pass
                elif c in b"{[":
                    self._start = i
                    self._depth = 1
                else:
                    raise ValueError(f"unexpected byte {bytes([c])!r} outside a JSON message")
            elif c == 0x22:
                self._in_string = True
            elif c in b"{[":
                self._depth += 1
            elif c in b"}]":
                self._depth -= 1
                if self._depth == 0:
                    out.append(bytes(buf[self._start : i + 1]))
                    self._start = -1
            i += 1
        # Drop consumed bytes so the buffer only holds the unfinished message.
        keep_from = self._start if self._depth else n
        del buf[:keep_from]
        if self._depth:
            self._start = 0
        self._pos = len(buf)
        if len(buf) > MAX_MESSAGE_BYTES:
            raise ValueError("message too long")
        return out


def _line_ended(body: str) -> str:
    """A non-empty reply ends with a newline, as ovs-vswitchd sends every
    reply and error (ovs-appctl prints the text as it comes)."""
    return body + "\n" if body and not body.endswith("\n") else body


def format_command_list(commands: dict[str, tuple[str, int, int]]) -> str:
    """The ``list-commands`` text: one indented line per command, sorted."""
    lines = ["The available commands are:"]
    for name in sorted(commands):
        usage = commands[name][0]
        lines.append(f"  {name:<23} {usage}")  # padded even without usage, as OVS
    return "\n".join(lines) + "\n"


class UnixctlServer:
    """Serves registered commands on the unix socket ``path``.

    ``version`` is the whole line the built-in ``version`` command answers,
    e.g. ``"ovsbpfd (Open vSwitch) 0.1.0"``.
    """

    def __init__(self, path: str, version: str) -> None:
        self.path = path
        self.version = version
        self._commands: dict[str, _Command] = {}
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.register("help", "", 0, 0, self._list_commands)
        self.register("list-commands", "", 0, 0, self._list_commands)
        self.register("version", "", 0, 0, lambda _args: self.version + "\n")

    def register(
        self, name: str, usage: str, min_args: int, max_args: int, handler: Handler
    ) -> None:
        """Expose ``handler`` as command ``name`` (replacing any earlier one).

        The handler gets the argument strings and returns the reply text (or
        an awaitable of it); it raises UnixctlError for an error reply.
        """
        self._commands[name] = _Command(usage, min_args, max_args, handler)

    def command_names(self) -> list[str]:
        return sorted(self._commands)

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve_client, path=self.path)
        log.debug("unixctl listening on %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    # ------------------------------------------------------------ internals

    def _list_commands(self, _args: list[str]) -> str:
        return format_command_list(
            {n: (c.usage, c.min_args, c.max_args) for n, c in self._commands.items()}
        )

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        splitter = JsonSplitter()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for raw in splitter.feed(data):
                    reply = await self._handle_message(raw)
                    if reply is None:
                        continue
                    writer.write(json.dumps(reply).encode())
                    await writer.drain()
        except (ValueError, ConnectionError) as exc:
            log.debug("unixctl client dropped: %s", exc)
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle_message(self, raw: bytes) -> dict[str, object] | None:
        """Answer one JSON-RPC message; None for messages needing no reply."""
        try:
            msg = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"bad JSON: {exc}") from exc
        if not isinstance(msg, dict) or "method" not in msg:
            raise ValueError("not a JSON-RPC request")
        method = msg.get("method")
        params = msg.get("params", [])
        req_id = msg.get("id")
        if not isinstance(method, str) or not isinstance(params, list):
            raise ValueError("malformed JSON-RPC request")
        if req_id is None:
            return None  # a notification: nothing to answer
        _RECEIVED.inc()
        _REPLIED.inc()  # every request gets its reply or error below
        try:
            result = await self.dispatch(method, params)
        except UnixctlError as exc:
            return {"result": None, "error": _line_ended(str(exc)), "id": req_id}
        return {"result": _line_ended(result), "error": None, "id": req_id}

    async def dispatch(self, method: str, params: list[object]) -> str:
        """Run one command; raises UnixctlError with OVS's wording on misuse."""
        command = self._commands.get(method)
        if command is None:
            raise UnixctlError(
                f'"{method}" is not a valid command (use "list-commands" to see '
                "a list of valid commands)"
            )
        if len(params) < command.min_args:
            raise UnixctlError(f'"{method}" command requires at least {command.min_args} arguments')
        if len(params) > command.max_args:
            raise UnixctlError(f'"{method}" command takes at most {command.max_args} arguments')
        if not all(isinstance(p, str) for p in params):
            raise UnixctlError(f'"{method}" command has non-string argument')
        args = [str(p) for p in params]
        try:
            result = command.handler(args)
            if inspect.isawaitable(result):
                result = await result
        except UnixctlError:
            raise
        except Exception as exc:  # a handler bug must not kill the server
            log.exception("unixctl command %s failed", method)
            raise UnixctlError(f"{method}: internal error: {exc}") from exc
        return "" if result is None else str(result)

