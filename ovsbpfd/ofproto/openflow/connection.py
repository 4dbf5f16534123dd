"""One OpenFlow channel: framing, HELLO negotiation, keepalive, error replies.

Requests are handled strictly one after another, each awaited to the end,
so a BARRIER_REPLY (sent by the dispatcher once the core's barrier is done)
always follows the completion of every earlier request.  A bad message is answered
with OFPT_ERROR carrying its xid and the whole message (as ovs-vswitchd
does); the channel is dropped only where framing is lost (a length under 8)
or HELLO negotiation fails.

Once our HELLO is out, input is handled in the read callback itself (the
peer's HELLO, then requests), every whole message of the chunk that was read
in one go: a handler that finishes without suspending (nearly all of them,
FLOW_MODs included) costs no task wake-up, which is what a client that waits
for each reply (ovs-ofctl sends FLOW_MOD, BARRIER, waits) and the FLOW_MOD ->
datapath latency pay for.  A handler that does suspend, a peer that stops
reading, or a long run of requests hands the rest of the input over to the
connection's task, which finishes them in the same order before callbacks
take over again.  Once all the input of a read is handled, the handler is
told (``input_handled``): the datapath catches up with the FLOW_MODs there.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ovsbpfd.ofproto.ofp_errors import (
    OFPBRC_BAD_LEN,
    OFPBRC_BAD_VERSION,
    OFPBRC_EPERM,
    OFPET_BAD_REQUEST,
    OFPET_HELLO_FAILED,
    OFPHFC_INCOMPATIBLE,
    error_name,
)
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow.bundle import BundleTable, ExperimenterError
from ovsbpfd.ofproto.openflow.errors import ERROR_MSG_MAX
from ovsbpfd.ofproto.openflow.header import HEADER, Header, parse_header
from ovsbpfd.ofproto.openflow.messages import (
    EchoRequest,
    Error,
    Hello,
    OfpMessage,
    decode_message,
    encode_message,
)
from ovsbpfd.ofproto.types import OfpError

log = logging.getLogger(__name__)

PRIMARY = "primary"  # a controller (Controller table target)
SERVICE = "service"  # a management client such as ovs-ofctl on <bridge>.mgmt

# Async reason bitmaps a new connection starts with (spec 7.3.10 defaults):
# (master-or-equal, slave) for packet_in, port_status, flow_removed.
DEFAULT_PACKET_IN_MASK = (0b011, 0)
DEFAULT_PORT_STATUS_MASK = (0b111, 0b111)
DEFAULT_FLOW_REMOVED_MASK = (0b1111, 0)

# Why a connection ended, in the strerror() words ovs-vswitchd writes into
# Controller.status:last_error ("End of file" when the peer closed).
TIMEOUT_TEXT = "Connection timed out"
PROTOCOL_ERROR_TEXT = "Protocol error"

# An OFPT_ERROR's header, type and code.
ERROR_FIXED_LEN = c.OFP_HEADER_LEN + 4

# Stop reading from a peer whose unprocessed input exceeds this.
READ_BUFFER_HIGH = 4 << 20
# Free room offered to each read: as much as asyncio's reads of a plain
# Protocol take, so input arrives in the same pieces.  Input is read into the
# connection's own buffer (BufferedProtocol): a plain Protocol gets a new
# bytes object per read, allocated at 256 KiB and shrunk, some 20 us a read.
READ_ROOM = 256 << 10
# An idle buffer grown past this (a burst of big messages) is let go.
IDLE_BUFFER_MAX = 4 * READ_ROOM
# Drop asynchronous messages to a peer that is not reading its output.
WRITE_BUFFER_HIGH = 4 << 20
# Let other tasks run after this many requests handled back to back.
REQUESTS_PER_YIELD = 256


@dataclass
class AsyncMasks:
    packet_in: tuple[int, int] = DEFAULT_PACKET_IN_MASK
    port_status: tuple[int, int] = DEFAULT_PORT_STATUS_MASK
    flow_removed: tuple[int, int] = DEFAULT_FLOW_REMOVED_MASK


Handler = Callable[["OfConnection", OfpMessage], Awaitable[None]]


class ConnectionClosed(Exception):
    pass


class _Resumed:
    """A handler coroutine that suspended on its first step, for the run task
    to finish: the task first waits on what it yielded, then drives it on."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self):
        coro, pending = self.coro, self.first
        while True:
            try:
                value = yield pending
            except BaseException as exc:  # cancellation and the like reach the handler
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                pending = coro.send(value)
            except StopIteration as stop:
                return stop.value


def _start(awaitable: Awaitable[None]) -> _Resumed | None:
    """Run a handler's awaitable as far as it goes without suspending; None
    when it finished, else what is left of it."""
    send = getattr(awaitable, "send", None)
    if send is None:  # not a coroutine: leave all of it to the task
        return _Resumed(awaitable.__await__(), None)  # type: ignore[attr-defined]
    try:
        first = send(None)
    except StopIteration:
        return None
    return _Resumed(awaitable, first)


def frame_header(frame: bytes) -> Header:
    """The header of a frame; garbage shorter than a header is zero-padded."""
    return parse_header(frame.ljust(c.OFP_HEADER_LEN, b"\0"))


class OfConnection(asyncio.BufferedProtocol):
    """An OpenFlow 1.3 channel over any asyncio stream transport."""

    def __init__(self, handler: Handler, kind: str, name: str,
                 probe_interval: float | None = None,
                 on_connected: Callable[[OfConnection], None] | None = None) -> None:
        self.handler = handler
        # A handler may also take some messages synchronously (Dispatcher does):
        # handle_now(conn, msg) -> True when it handled msg.
        self._handle_now: Callable[[OfConnection, OfpMessage], bool] | None = \
            getattr(handler, "handle_now", None)
        # ... and be told when all the input read so far is handled
        # (Dispatcher.input_handled: the datapath catches up there).
        self._input_handled: Callable[[], None] | None = \
            getattr(handler, "input_handled", None)
        self.on_connected = on_connected
        # Versions we offer in HELLO (bit n = wire version n); the owner sets
        # it from Bridge.protocols.  Only OpenFlow 1.3 is implemented: a
        # connection negotiates only if both sides have it.
        self.version_bitmap = 1 << c.OFP_VERSION
        self.run_task: asyncio.Future | None = None
        self.kind = kind
        self.name = name
        self.probe_interval = probe_interval
        self.role = c.OFPCR_ROLE_EQUAL
        self.async_masks = AsyncMasks()
        self.async_set_by_peer = False  # SET_ASYNC seen: row settings no longer apply
        self.miss_send_len = c.OFP_DEFAULT_MISS_SEND_LEN if kind == PRIMARY else 0
        self.negotiated = False
        self.connected_at = time.monotonic()
        self.last_error = ""
        self.disconnect_reason = ""  # strerror-style, for Controller.status
        self.on_negotiated: Callable[[OfConnection], None] | None = None
        self.packet_in_limiter: Any = None  # rate_limit.PacketInLimiter, if limited
        # Gets a copy of every message sent or received after HELLO while a
        # snoop client watches this channel (snoop.SnoopTap); None otherwise.
        self.snoop: Callable[[bytes], None] | None = None
        self.probe_pending = False  # an inactivity probe is unanswered (rconn IDLE)
        self.dropped_async = 0
        self.multipart_parts: dict[tuple[int, int], list[bytes]] = {}
        self.bundles = BundleTable()  # ONF bundles open on this connection
        self._transport: asyncio.Transport | None = None
        # Input: _buf[_pos:_end] is unconsumed, _buf[_end:] free room.  The
        # buffer is resized only in _make_room, never while a read may still
        # hold a view of it.
        self._buf = bytearray()
        self._pos = 0
        self._end = 0
        self._data = asyncio.Event()
        # Our HELLO is out and the run task idle: read callbacks handle input.
        self._inline = False
        # What data_received could not finish, for the run task: (frame,
        # suspended handler), or (None, None): others' turn, or the peer
        # must read its replies first.
        self._handoff: tuple[bytes | None, _Resumed | None] | None = None
        self._quiet_since = time.monotonic()  # last input or inactivity probe
        self._lost = False
        self._closed = asyncio.Event()
        self._reading_paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()

    # ------------------------------------------------------------ asyncio.BufferedProtocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if self.on_connected is not None:
            self.on_connected(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        self._make_room(max(sizehint, READ_ROOM))
        return memoryview(self._buf)[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        self._input_arrived()

    def data_received(self, data: bytes) -> None:
        """Input handed over as bytes (what a plain Protocol would get)."""
        self._make_room(len(data))
        end = self._end + len(data)
        self._buf[self._end:end] = data
        self._end = end
        self._input_arrived()

    def _make_room(self, room: int) -> None:
        buf, pos, end = self._buf, self._pos, self._end
        if pos == end:  # all consumed: start over
            self._pos = self._end = pos = end = 0
            if len(buf) > IDLE_BUFFER_MAX and room <= READ_ROOM:
                self._buf = bytearray(READ_ROOM)
                return
        if len(buf) - end >= room:
            return
        if pos:  # move the unconsumed input to the front
            buf[:end - pos] = buf[pos:end]
            self._pos, self._end = 0, end - pos
            end -= pos
        if len(buf) - end < room:
            grown = bytearray(max(end + room, 2 * len(buf)))
            grown[:end] = buf[:end]
            self._buf = grown

    def _input_arrived(self) -> None:
        self._quiet_since = time.monotonic()
        self.probe_pending = False
        if self._inline:
            self._serve_inline()
        else:
            self._data.set()
        if self._unread() > READ_BUFFER_HIGH and self._transport and not self._reading_paused:
            self._transport.pause_reading()
            self._reading_paused = True

    def _serve_inline(self) -> None:
        """Handle what has arrived now; hand the task what cannot finish here."""
        try:
            handoff = self._drain()
        except ConnectionClosed:
            self.close()
            return
        if handoff is not None:
            self._inline = False
            self._handoff = handoff
            self._data.set()

    def _unread(self) -> int:
        return self._end - self._pos

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._data.set()
        self._can_write.set()
        self._closed.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # ------------------------------------------------------------ output
    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._lost \
            and not self._transport.is_closing()

    def send(self, msg: OfpMessage) -> None:
        self.send_raw(encode_message(msg))

    def send_raw(self, data: bytes) -> None:
        if self.is_open:
            self._transport.write(data)  # type: ignore[union-attr]
            if self.snoop is not None:
                self.snoop(data)

    def send_async(self, msg: OfpMessage) -> None:
        """An unsolicited message; dropped if the peer is not keeping up."""
        if not self.is_open:
            return
        if self._transport.get_write_buffer_size() > WRITE_BUFFER_HIGH:  # type: ignore[union-attr]
            self.dropped_async += 1
            return
        self.send(msg)

    def send_error(self, err: OfpError, xid: int, offending: bytes) -> None:
        log.info("%s: sending %s (%s)", self.name, error_name(err.type, err.code), err)
        prefix = b""
        if isinstance(err, ExperimenterError):  # ofp_error_experimenter_msg
            prefix = struct.pack("!I", err.experimenter)
        room = ERROR_MSG_MAX - ERROR_FIXED_LEN - len(prefix)
        data = prefix + bytes(offending[:room])
        self.send(Error(err.type, err.code, data, xid=xid))

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self._lost = True
        self._data.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def wants_async(self, kind: str, reason: int) -> bool:
        """Whether this peer's role and async config ask for this message."""
        if not self.negotiated or (self.kind == SERVICE and self.miss_send_len == 0):
            return False
        masks = getattr(self.async_masks, kind)
        mask = masks[1] if self.role == c.OFPCR_ROLE_SLAVE else masks[0]
        return bool(mask & (1 << reason))

    # ------------------------------------------------------------ input
    async def run(self) -> None:
        """Serve the channel until the peer or we close it."""
        self.send(Hello(self.version_bitmap))
        try:
            await self._serve()
        except ConnectionClosed:
            pass
        finally:
            self.close()

    async def _wait_for_data(self) -> None:
        """Wait to be woken (input, a hand-off, the end); send echo probes
        when the peer has been quiet for a probe interval."""
        while True:
            if self._lost:
                raise ConnectionClosed
            if self._handoff is not None:  # set while a timeout was being delivered
                return
            self._data.clear()
            if self._reading_paused and self._unread() < READ_BUFFER_HIGH // 2:
                self._transport.resume_reading()  # type: ignore[union-attr]
                self._reading_paused = False
            interval = self.probe_interval
            timeout = None if interval is None else \
                max(interval - (time.monotonic() - self._quiet_since), 0.0)
            try:
                await asyncio.wait_for(self._data.wait(), timeout)
                return
            except TimeoutError:
                assert interval is not None
                if time.monotonic() - self._quiet_since < interval:
                    continue  # input came (handled inline) since we started waiting
                if self.probe_pending:
                    self.last_error = "inactivity probe timeout"
                    self.disconnect_reason = TIMEOUT_TEXT
                    log.warning("%s: no response to inactivity probe, disconnecting",
                                self.name)
                    raise ConnectionClosed from None
                self.send(EchoRequest())
                self.probe_pending = True
                self._quiet_since = time.monotonic()

    def _take_frame(self) -> bytes | None:
        """The next whole message, garbage to answer as a bad version, or None
        until more input arrives; ConnectionClosed once framing is lost."""
        start = self._pos
        unread = self._end - start
        if not unread:
            return None
        if self._buf[start] not in c.KNOWN_WIRE_VERSIONS:
            # Not OpenFlow (even a short line of text shows it in its
            # first byte): no length can be trusted.  Treat what has
            # arrived as one bad message and resynchronise.
            frame = bytes(self._buf[start:self._end])
            self._pos = self._end
            return frame
        if unread >= c.OFP_HEADER_LEN:
            _, _, length, xid = HEADER.unpack_from(self._buf, start)
            if length < c.OFP_HEADER_LEN:
                frame = bytes(self._buf[start:start + c.OFP_HEADER_LEN])
                self.send_error(OfpError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN,
                                         f"length {length} < 8"), xid, frame)
                self.last_error = "framing lost (message length < 8)"
                self.disconnect_reason = PROTOCOL_ERROR_TEXT
                raise ConnectionClosed
            if unread >= length:
                self._pos = end = start + length
                return bytes(self._buf[start:end])
        return None

    def _negotiate(self, frame: bytes) -> None:
        """The peer's first message must be a HELLO with a version in common."""
        header = frame_header(frame)
        peer_versions = 0
        if header.type == c.OFPT_HELLO and header.version in c.KNOWN_WIRE_VERSIONS:
            peer_versions = _peer_versions(frame, header.version)
            if peer_versions & self.version_bitmap & (1 << c.OFP_VERSION):
                self.negotiated = True
                self.connected_at = time.monotonic()
                if self.on_negotiated is not None:
                    self.on_negotiated(self)
                return
            if peer_versions & self.version_bitmap:  # common, but not one we speak
                text = (f"We speak version 0x{c.OFP_VERSION:02x} only, and this bridge's "
                        f"protocols exclude it.")
            else:
                text = (f"We support {describe_versions(self.version_bitmap)}, you support "
                        f"{describe_versions(peer_versions)}, no common versions.")
            reply_version = peer_versions.bit_length() - 1 if peer_versions else c.OFP_VERSION
            xid = 0  # as ovs-vswitchd's HELLO_FAILED
        else:
            text = "expected HELLO as the first message"
            reply_version, xid = c.OFP_VERSION, header.xid
        self.last_error = text
        self.disconnect_reason = PROTOCOL_ERROR_TEXT
        log.info("%s: HELLO failed: %s", self.name, text)
        body = encode_message(Error(OFPET_HELLO_FAILED, OFPHFC_INCOMPATIBLE, text.encode()))
        body = body[c.OFP_HEADER_LEN:]
        self.send_raw(HEADER.pack(reply_version, c.OFPT_ERROR, c.OFP_HEADER_LEN + len(body),
                                  xid) + body)
        raise ConnectionClosed

    async def _serve(self) -> None:
        """Run what callbacks hand over; otherwise leave requests to them."""
        while True:
            handoff, self._handoff = self._handoff, None
            if handoff is None:
                handoff = self._drain()
            if handoff is not None:
                frame, pending = handoff
                if pending is None:
                    await asyncio.sleep(0)  # others' turn
                else:
                    await self._finish(frame, pending)
                if not self._can_write.is_set():
                    # The peer is not reading its replies: stop taking requests
                    # until it does, so a flood of big dumps cannot fill memory.
                    await self._can_write.wait()
                continue
            self._inline = True
            try:
                await self._wait_for_data()
            finally:
                self._inline = False

    def _drain(self) -> tuple[bytes | None, _Resumed | None] | None:
        """Handle the whole messages buffered, in order, while each finishes
        at once; else what the task must finish before going on."""
        handled = 0
        while True:
            frame = self._take_frame()
            if frame is None:
                if handled and self._input_handled is not None:
                    self._input_handled()
                return None
            if not self.negotiated:
                self._negotiate(frame)  # or ConnectionClosed
                continue
            pending = self._handle(frame)
            if pending is not None:
                return frame, pending
            handled += 1
            if handled >= REQUESTS_PER_YIELD or not self._can_write.is_set():
                if self._input_handled is not None:
                    self._input_handled()
                return None, None

    def _handle(self, frame: bytes) -> _Resumed | None:
        """Handle one message; what is left of its handler if it suspended."""
        try:
            if frame[0] not in c.KNOWN_WIRE_VERSIONS:
                raise OfpError(OFPET_BAD_REQUEST, OFPBRC_BAD_VERSION, "not OpenFlow")
            if self.snoop is not None:  # whole OpenFlow messages only
                self.snoop(frame)
            msg = decode_message(frame)
            if isinstance(msg, Hello):
                return None
            if self._handle_now is not None and self._handle_now(self, msg):
                return None
            return _start(self.handler(self, msg))
        except OfpError as err:
            self.send_error(err, frame_header(frame).xid, frame)
        except Exception:  # a bug must not take the switch down
            self._internal_error(frame)
        return None

    async def _finish(self, frame: bytes | None, pending: _Resumed) -> None:
        assert frame is not None
        try:
            await pending
        except OfpError as err:
            self.send_error(err, frame_header(frame).xid, frame)
        except Exception:
            self._internal_error(frame)

    def _internal_error(self, frame: bytes) -> None:
        header = frame_header(frame)
        log.exception("%s: failed to handle message type %d", self.name, header.type)
        self.send_error(OfpError(OFPET_BAD_REQUEST, OFPBRC_EPERM, "internal error"),
                        header.xid, frame)


def _peer_versions(frame: bytes, version: int) -> int:
    """The versions a HELLO offers: its bitmap, else its version and earlier."""
    try:
        hello = decode_message(frame)
    except OfpError:
        hello = None
    if isinstance(hello, Hello) and hello.bitmap is not None:
        return hello.bitmap
    return ((1 << (version + 1)) - 1) & ~1


def describe_versions(bitmap: int) -> str:
    """A version bitmap in ovs-vswitchd's words ("version 0x04 and earlier")."""
    if not bitmap:
        return "no versions"
    highest = f"0x{bitmap.bit_length() - 1:02x}"
    if bitmap & (bitmap - 1) == 0:
        return f"version {highest}"
    below = (bitmap >> 1) + 1
    if below & (below - 1) == 0:
        return f"version {highest} and earlier"
    listed = ", ".join(f"0x{v:02x}" for v in range(bitmap.bit_length()) if bitmap >> v & 1)
    return f"versions {listed}"
