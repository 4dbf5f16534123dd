"""OvsdbServer: holds the databases, listens on the remotes, runs sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from typing import Any

from ovs.db.data import Atom, Datum

from .database import Database, Row, default_data
from .execution import TransactOutcome
from .history import TxnHistory
from .locks import LockManager
from .schema import SERVER_DB_NAME, server_schema
from .session import PendingTransact, Session
from .storage import Storage, changes_to_record
from .transaction import ChangeSet

log = logging.getLogger(__name__)


class DbHandle:
    """A served database: contents, file (None for _Server), waiting transactions."""

    def __init__(self, db: Database, storage: Storage | None) -> None:
        self.db = db
        self.storage = storage
        self.pending: list[PendingTransact] = []
        self.history = TxnHistory()


class OvsdbServer:
    def __init__(self, db_files: list[str], remotes: list[str]) -> None:
        self.db_files = list(db_files)
        self.remotes = list(remotes)
        self.dbs: dict[str, DbHandle] = {}
        self.sessions: set[Session] = set()
        self.locks = LockManager(self._lock_notify)
        self.listeners: list[asyncio.AbstractServer] = []
        self.unix_paths: list[str] = []
        self.tcp_ports: list[int] = []  # bound ptcp ports, in remote order
        self._tasks: set[asyncio.Task] = set()

    # --- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        for path in self.db_files:
            storage = Storage(path)
            db = storage.load()
            if db.name in self.dbs or db.name == SERVER_DB_NAME:
                storage.close()
                raise ValueError(f"{path}: duplicate database name {db.name}")
            self.dbs[db.name] = DbHandle(db, storage)
        self.dbs[SERVER_DB_NAME] = DbHandle(self._build_server_db(), None)
        for remote in self.remotes:
            await self._listen(remote)

    async def stop(self) -> None:
        for listener in self.listeners:
            listener.close()
        for session in list(self.sessions):
            session.close()
        for listener in self.listeners:
            await listener.wait_closed()
        self.listeners.clear()
        for task in list(self._tasks):
            task.cancel()
        for path in self.unix_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.unix_paths.clear()
        for handle in self.dbs.values():
            if handle.storage is not None:
                handle.storage.close()

    async def _listen(self, remote: str) -> None:
        kind, _, rest = remote.partition(":")
        if kind == "punix":
            path = rest
            if os.path.exists(path):
                os.unlink(path)  # a stale socket left by a crashed server
            old_umask = os.umask(0o027)
            try:
                listener = await asyncio.start_unix_server(self._accept, path=path)
            finally:
                os.umask(old_umask)
            os.chmod(path, 0o750)
            self.unix_paths.append(path)
        elif kind == "ptcp":
            port_s, _, host = rest.partition(":")
            host = host.strip("[]") or "0.0.0.0"
            listener = await asyncio.start_server(self._accept, host=host, port=int(port_s),
                                                  reuse_address=True)
            sock = listener.sockets[0]
            self.tcp_ports.append(sock.getsockname()[1])
        else:
            raise ValueError(f"unsupported remote {remote!r}")
        self.listeners.append(listener)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = Session(self, reader, writer)
        self.sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await session.run()
        finally:
            if task is not None:
                self._tasks.discard(task)

    def session_closed(self, session: Session) -> None:
        self.sessions.discard(session)
        self.locks.drop_session(session)

    def _lock_notify(self, session: Session, method: str, name: str) -> None:
        session.notify(method, [name])

    # --- commits -------------------------------------------------------------
    def commit(self, handle: DbHandle, outcome: TransactOutcome) -> None:
        """Make a checked transaction durable, install it, and tell monitors."""
        changes = outcome.changes
        if not changes:
            return
        if handle.storage is not None:
            record = changes_to_record(handle.db, changes, outcome.comments)
            if record is not None:
                handle.storage.append(record)
        self._install(handle, changes)
        if handle.storage is not None and handle.storage.should_compact():
            self.compact()

    def _install(self, handle: DbHandle, changes: ChangeSet) -> None:
        handle.db.apply(changes)
        txn_id = handle.history.record(changes, handle.db.n_atoms)
        for session in list(self.sessions):
            session.db_changed(handle, changes, txn_id)
        for pending in list(handle.pending):
            pending.retry()

    def compact(self) -> None:
        for handle in self.dbs.values():
            if handle.storage is not None:
                handle.storage.compact(handle.db)

    # --- _Server -------------------------------------------------------------
    def _build_server_db(self) -> Database:
        sdb = Database(server_schema())
        ts = sdb.table_schema("Database")
        changes: ChangeSet = {"Database": {}}
        for name, handle in list(self.dbs.items()) + [(SERVER_DB_NAME, None)]:
            schema_json = sdb.schema.to_json() if handle is None else handle.db.schema.to_json()
            data = default_data(ts)
            data["name"] = _datum(ts, "name", name)
            data["model"] = _datum(ts, "model", "standalone")
            data["connected"] = _datum(ts, "connected", True)
            data["leader"] = _datum(ts, "leader", True)
            text = json.dumps(schema_json, sort_keys=True, separators=(",", ":"))
            data["schema"] = _datum(ts, "schema", text)
            row = Row(uuid.uuid4(), uuid.uuid4(), data)
            changes["Database"][row.uuid] = (None, row)
        sdb.apply(changes)
        return sdb


def _datum(ts: Any, column: str, value: Any) -> Datum:
    col = ts.columns[column]
    return Datum(col.type, {Atom(col.type.key.type, value): None})
