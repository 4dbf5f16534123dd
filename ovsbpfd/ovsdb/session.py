"""One client connection: decodes JSON-RPC, dispatches methods, keeps the
client's monitors, locks and waiting transactions."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from . import jsonrpc
from .errors import OvsdbError, syntax_error
from .execution import Executor, WaitPending
from .history import merge_changes
from .monitor import Monitor

if TYPE_CHECKING:
    from .server import DbHandle, OvsdbServer

log = logging.getLogger(__name__)
# ovsdb-server drops a client whose unsent backlog grows past its limits
# rather than letting a client that stopped reading eat the server's memory.
DEFAULT_MAX_BACKLOG = 64 * 1024 * 1024
ECHO_PROBE = {"id": "echo", "method": "echo", "params": []}


class PendingTransact:
    """A transact whose wait operation is not yet satisfied."""

    def __init__(self, session: Session, msg_id: Any, handle: DbHandle, ops: list,
                 timeout_ms: float) -> None:
        self.session = session
        self.msg_id = msg_id
        self.handle = handle
        self.ops = ops
        self.started = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None
        self.arm(timeout_ms)

    def arm(self, timeout_ms: float) -> None:
        """Retry when the wait's timeout (counted from the start) runs out.
        Called again after every retry that still waits: an event loop may
        fire a timer a fraction of a millisecond early (uvloop counts in whole
        milliseconds), and a retry then finds the wait not yet timed out."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if timeout_ms != float("inf"):
            remaining = self.started + timeout_ms / 1000.0 - time.monotonic()
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(max(remaining, 0.0), self.retry)

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000.0

    def retry(self) -> None:
        if self in self.handle.pending:
            self.handle.pending.remove(self)
            self.session.run_transact(self.msg_id, self.handle, self.ops, self)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self in self.handle.pending:
            self.handle.pending.remove(self)


class Session(asyncio.Protocol):
    """One client, as the asyncio protocol of its connection.  With probe_ms > 0
    it sends an echo request after that long without hearing from the client,
    and drops the client if another probe_ms passes in silence (OVS's
    inactivity probe).

    What made it fast: a protocol's data_received handles the bytes in the
    callback that read them; the stream reader/writer pair it replaced cost a
    future, a task step and an extra event-loop turn per request, and a
    handful more per connection, which ovs-vsctl opens afresh on every run.
    Back-pressure is kept: while the client's unsent output is above the
    transport's high-water mark, the server stops reading from it."""

    def __init__(self, server: OvsdbServer, remote: Any = None, probe_ms: int = 0,
                 max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self.server = server
        self.remote = remote
        self.transport: asyncio.Transport | None = None
        self.probe_ms = probe_ms
        self.max_backlog = max_backlog
        self.monitors: dict[str, Monitor] = {}  # json-encoded id -> monitor
        self.db_change_aware = False  # set_db_change_aware: stays on across a schema change
        self.pending: list[PendingTransact] = []
        self.closed = False
        self.last_heard = time.monotonic()
        self.probe_sent: float | None = None
        self._probe_timer: asyncio.TimerHandle | None = None
        self._splitter = jsonrpc.MessageSplitter()
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

    # --- I/O -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.session_opened(self)
        if self.remote is not None:
            self.remote.session_started(self)
        self._arm_probe(self.probe_ms / 1000.0)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_heard = time.monotonic()
        self.probe_sent = None
        try:
            for msg in self._splitter.feed(data):
                self.handle_message(msg)
                if self.closed:
                    return
            if self._splitter.error is not None:
                raise self._splitter.error
        except jsonrpc.ProtocolError as e:
            log.info("dropping client: %s", e)
            self.close()

    def eof_received(self) -> bool:
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def pause_writing(self) -> None:
        """The client's output backs up: stop reading its requests meanwhile."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _arm_probe(self, delay: float) -> None:
        if self.probe_ms > 0 and not self.closed:
            loop = asyncio.get_running_loop()
            self._probe_timer = loop.call_later(max(delay, 0.01), self._probe)

    def _probe(self) -> None:
        interval = self.probe_ms / 1000.0
        now = time.monotonic()
        if self.probe_sent is not None:
            if now - self.probe_sent >= interval:
                log.warning("no response to inactivity probe after %g seconds, "
                            "disconnecting", interval)
                self.close()
                return
            self._arm_probe(self.probe_sent + interval - now)
            return
        idle = now - self.last_heard
        if idle >= interval:
            self.probe_sent = now
            self.send(ECHO_PROBE)
            self._arm_probe(interval)
        else:
            self._arm_probe(interval - idle)

    def send(self, msg: dict) -> None:
        if not self.closed:
            self.send_bytes(jsonrpc.encode(msg))

    def send_bytes(self, data: bytes) -> None:
        if self.closed:
            return
        barrier = self.server.barrier
        if barrier.holding:  # a commit is not on disk yet: nothing may overtake it
            barrier.hold(self, data)
            return
        self.write_now(data)

    def write_now(self, data: bytes) -> None:
        if self.closed:
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            self.close()
            return
        if transport.get_write_buffer_size() + len(data) > self.max_backlog:
            log.warning("client's backlog passed %d bytes (it stopped reading?); "
                        "dropping it", self.max_backlog)
            self.close()
            return
        transport.write(data)

    def notify(self, method: str, params: list) -> None:
        self.send(jsonrpc.notification(method, params))

    def close(self) -> None:
        if self.closed:
            return
        if self.server.barrier.holds_for(self):
            # Replies this client is owed wait for a sync: do it now, so that
            # a client that half-closes after its last request still gets them.
            self.server.barrier.release()
        self.closed = True
        if self._probe_timer is not None:
            self._probe_timer.cancel()
        for p in list(self.pending):
            p.cancel()
        self.pending.clear()
        self.monitors.clear()
        self.server.session_closed(self)
        if self.remote is not None:
            self.remote.session_ended(self)
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    # --- dispatch ------------------------------------------------------------
    def handle_message(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            raise jsonrpc.ProtocolError("message is not a JSON object")
        if "method" in msg:
            method, params = msg.get("method"), msg.get("params")
            if not isinstance(method, str) or not isinstance(params, list) \
                    or set(msg) - {"method", "params", "id"}:
                raise jsonrpc.ProtocolError("bad JSON-RPC request")
            msg_id = msg.get("id")
            if msg_id is None:  # id null or absent: a notification
                self._notification(method, params)
                return
            handler = _METHODS.get(method)
            if handler is None:
                self.send(jsonrpc.error_reply(msg_id, "unknown method"))
                return
            try:
                result = handler(self, msg_id, params)
            except OvsdbError as e:
                self.send(jsonrpc.error_reply(msg_id, e.to_json()))
                return
            except Exception:  # a bug must cost this request, not the server
                log.exception("%s request failed", method)
                self.send(jsonrpc.error_reply(msg_id, "internal error"))
                return
            if type(result) is jsonrpc.Encoded:
                self.send_bytes(jsonrpc.encoded_reply(msg_id, result.data))
            elif result is not _NO_REPLY:
                self.send(jsonrpc.reply(msg_id, result))
        elif "result" in msg or "error" in msg:
            # Only our own inactivity probe is ever answered; ovsdb-server
            # drops a client that sends any other reply.
            if msg.get("id") != ECHO_PROBE["id"]:
                raise jsonrpc.ProtocolError("received unexpected reply")
        else:
            raise jsonrpc.ProtocolError("message is neither request nor reply")

    def _notification(self, method: str, params: list) -> None:
        """Only "cancel" means anything: it drops a transaction that is still
        waiting, without a reply (as ovsdb-server does)."""
        if method == "cancel" and len(params) == 1:
            for p in list(self.pending):
                if p.msg_id == params[0]:
                    p.cancel()
                    self.pending.remove(p)

    def _db(self, method: str, params: list) -> DbHandle:
        if not params or not isinstance(params[0], str):
            raise syntax_error(params, f"{method} request params must begin with <db-name>")
        handle = self.server.dbs.get(params[0])
        if handle is None:
            raise OvsdbError("unknown database",
                             f"{method} request specifies unknown database {params[0]}",
                             params, has_syntax=True)
        return handle

    # --- methods -------------------------------------------------------------
    def m_list_dbs(self, msg_id: Any, params: list) -> Any:
        return list(self.server.dbs)

    def m_get_schema(self, msg_id: Any, params: list) -> Any:
        return jsonrpc.Encoded(self._db("get_schema", params).db.schema.canonical_encoded())

    def m_echo(self, msg_id: Any, params: list) -> Any:
        return params

    def m_set_db_change_aware(self, msg_id: Any, params: list) -> Any:
        if len(params) != 1 or type(params[0]) is not bool:
            raise syntax_error(params, "set_db_change_aware: true or false parameter expected")
        self.db_change_aware = params[0]
        return {}

    def m_convert(self, msg_id: Any, params: list) -> Any:
        """Convert a database to a new schema ([db-name, schema]), as
        `ovsdb-client convert` asks; the reply comes once the converted
        database is on disk, and then every client that is not
        db-change-aware is disconnected (server.convert)."""
        handle = self._db("convert", params)
        if len(params) != 2:
            raise syntax_error(params, "array expected")
        try:
            self.server.convert(handle, params[1])
        except OSError as e:
            raise OvsdbError("I/O error", f"{handle.db.name}: converting failed ({e})") from e
        self.send(jsonrpc.reply(msg_id, {}))
        self.server.disconnect_change_unaware()
        return _NO_REPLY

    def database_replaced(self, handle: DbHandle) -> None:
        """handle's database now has another schema: its monitors and waiting
        transactions end.  A change-aware client hears "monitor_canceled" for
        each monitor and "canceled" for each transaction; any other client is
        about to be disconnected, and (as from ovsdb-server) hears nothing."""
        for key, mon in list(self.monitors.items()):
            if mon.handle is handle:
                del self.monitors[key]
                if self.db_change_aware:
                    self.notify("monitor_canceled", [mon.id])
        for pending in [p for p in self.pending if p.handle is handle]:
            pending.cancel()
            self.pending.remove(pending)
            if self.db_change_aware:
                self.send(jsonrpc.error_reply(pending.msg_id, "canceled"))

    def m_transact(self, msg_id: Any, params: list) -> Any:
        handle = self._db("transact", params)
        self.run_transact(msg_id, handle, params[1:], None)
        return _NO_REPLY

    def run_transact(self, msg_id: Any, handle: DbHandle, ops: list,
                     pending: PendingTransact | None) -> None:
        if self.closed:
            return
        elapsed = pending.elapsed_ms() if pending else 0.0
        held = self.server.locks.held_by(self)
        try:
            outcome = Executor(handle.db, held, elapsed).run(ops)
        except WaitPending as w:
            if pending is None:
                pending = PendingTransact(self, msg_id, handle, ops, w.timeout_ms)
                self.pending.append(pending)
            else:
                pending.arm(w.timeout_ms)
            handle.pending.append(pending)
            return
        if pending is not None:
            pending.cancel()
            if pending in self.pending:
                self.pending.remove(pending)
        if outcome.changes:
            try:
                self.server.commit(handle, outcome, retry_waits=False)
            except OSError as e:
                outcome.results.append({"error": "I/O error", "details": str(e)})
        self.send(jsonrpc.reply(msg_id, outcome.results))
        if outcome.changes:  # the waits it satisfies are answered after it
            self.server.retry_waits(handle)

    def _monitor(self, msg_id: Any, params: list, method: str, version: int) -> Any:
        handle = self._db(method, params)
        if len(params) != (4 if version == 3 else 3):
            raise syntax_error(params, "invalid parameters")
        # In ovsdb-server's order: the requests' shape, the id, the requests,
        # and only then the last-txn-id.
        if not isinstance(params[2], dict):
            raise syntax_error(params[2], "monitor-requests must be object")
        key = _monitor_key(params[1])
        if key in self.monitors:
            raise syntax_error(params[1], "duplicate monitor ID")
        mon = Monitor.parse(handle.db, params[1], version, params[2])
        mon.handle = handle
        if version != 3:
            self._set_monitor(key, mon)
            return jsonrpc.Encoded(mon.initial_encoded())
        since = _parse_txn_id(params[3])
        replay = handle.history.changes_since(since)
        self._set_monitor(key, mon)
        if replay is None:
            return jsonrpc.Encoded(b'[false,"%s",%s]' % (
                str(handle.history.latest).encode(), mon.initial_encoded()))
        return [True, str(handle.history.latest), mon.updates(merge_changes(replay))]

    def _set_monitor(self, key: str, mon: Monitor) -> None:
        self.monitors[key] = mon
        self.server.monitors_changed()

    def m_monitor(self, msg_id: Any, params: list) -> Any:
        return self._monitor(msg_id, params, "monitor", 1)

    def m_monitor_cond(self, msg_id: Any, params: list) -> Any:
        return self._monitor(msg_id, params, "monitor_cond", 2)

    def m_monitor_cond_since(self, msg_id: Any, params: list) -> Any:
        return self._monitor(msg_id, params, "monitor_cond_since", 3)

    def m_monitor_cond_change(self, msg_id: Any, params: list) -> Any:
        if len(params) != 3:
            raise syntax_error(params, "invalid parameters")
        key = _monitor_key(params[0])
        mon = self.monitors.get(key)
        if mon is None:
            raise syntax_error(params[0], "unknown monitor session")
        new_key = _monitor_key(params[1])
        if new_key != key and new_key in self.monitors:
            raise syntax_error(params[1], "duplicate monitor ID")
        updates = mon.change_condition(params[2])
        del self.monitors[key]
        mon.id = params[1]
        self._set_monitor(new_key, mon)
        if updates:
            self._send_updates(mon, updates, mon.handle.history.latest)
        return {}

    def m_monitor_cancel(self, msg_id: Any, params: list) -> Any:
        if len(params) != 1:
            self.send(jsonrpc.error_reply(msg_id, "invalid parameters"))
            return _NO_REPLY
        key = _monitor_key(params[0])
        if key not in self.monitors:
            self.send(jsonrpc.error_reply(msg_id, "unknown monitor"))
            return _NO_REPLY
        del self.monitors[key]
        self.server.monitors_changed()
        return {}

    def _lock_name(self, method: str, params: list) -> str:
        if len(params) != 1 or not isinstance(params[0], str):
            raise syntax_error(params, f"{method} request params must be <id>")
        return params[0]

    def m_lock(self, msg_id: Any, params: list) -> Any:
        name = self._lock_name("lock", params)
        if self.server.locks.requested(self, name):
            raise syntax_error(params, 'must issue "unlock" before new "lock"')
        return {"locked": self.server.locks.lock(self, name)}

    def m_steal(self, msg_id: Any, params: list) -> Any:
        name = self._lock_name("steal", params)
        if self.server.locks.requested(self, name):
            raise syntax_error(params, 'must issue "unlock" before new "steal"')
        self.server.locks.steal(self, name)
        return {"locked": True}

    def m_unlock(self, msg_id: Any, params: list) -> Any:
        name = self._lock_name("unlock", params)
        if not self.server.locks.requested(self, name):
            raise syntax_error(params, 'unlock: "unlock" without "lock" or "steal"')
        self.server.locks.unlock(self, name)
        return {}

    # --- notifications out ---------------------------------------------------
    def _send_updates(self, mon: Monitor, updates: dict, txn_id: uuid.UUID) -> None:
        self._send_encoded_updates(mon, jsonrpc.encode(updates), txn_id)

    def _send_encoded_updates(self, mon: Monitor, body: bytes, txn_id: uuid.UUID) -> None:
        """An update/update2/update3 notification around already-encoded
        table-updates."""
        self.send_bytes(mon.notification_head() + update_params_tail(mon.version, txn_id, body))


def update_params_tail(version: int, txn_id: uuid.UUID, body: bytes) -> bytes:
    """What follows the monitor id in an update notification: the transaction
    id (update3 only), the table-updates, and the closing brackets."""
    if version == 3:
        return b'"%s",%s]}' % (str(txn_id).encode(), body)
    return body + b"]}"


def _monitor_key(monitor_id: Any) -> str:
    """Monitor ids are any JSON value; compare them by their encoding."""
    return jsonrpc.encode({"i": monitor_id}).decode()


def _parse_txn_id(value: Any) -> uuid.UUID:
    if not isinstance(value, str):
        raise syntax_error(value, "last-txn-id must be string")
    if not _UUID_TEXT.match(value):
        raise syntax_error(value, "last-txn-id must be UUID format.")
    return uuid.UUID(value)


_UUID_TEXT = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                        r"[0-9a-fA-F]{12}$")
_NO_REPLY = object()
_METHODS = {
    "list_dbs": Session.m_list_dbs,
    "get_schema": Session.m_get_schema,
    "echo": Session.m_echo,
    "set_db_change_aware": Session.m_set_db_change_aware,
    "convert": Session.m_convert,
    "transact": Session.m_transact,
    "monitor": Session.m_monitor,
    "monitor_cond": Session.m_monitor_cond,
    "monitor_cond_since": Session.m_monitor_cond_since,
    "monitor_cond_change": Session.m_monitor_cond_change,
    "monitor_cancel": Session.m_monitor_cancel,
    "lock": Session.m_lock,
    "steal": Session.m_steal,
    "unlock": Session.m_unlock,
}
