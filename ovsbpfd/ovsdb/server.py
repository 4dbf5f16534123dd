"""OvsdbServer: holds the databases, listens on the remotes, runs sessions.

What made it fast: a commit is logged at once but synced once per event-loop
turn, with every client's output held until then (durability.py: group
commit, and one write per client per turn); and monitors are grouped by the
shape of their updates, so a commit composes and encodes each distinct update
once, however many clients share it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import uuid
from collections.abc import Callable
from typing import Any

from ovs.db.data import Atom, Datum
from ovs.db.schema import TableSchema

from . import jsonrpc
from .columns import IMPLICIT
from .convert import convert_database, parse_new_schema
from .database import Database, Row, default_data, row_atoms, weak_ref_columns
from .durability import CommitBarrier
from .errors import OvsdbError
from .execution import Executor, TransactOutcome
from .history import TxnHistory
from .locks import LockManager
from .monitor import Monitor
from .remotes import (
    PassiveRemote,
    Remote,
    RemoteConfig,
    RemoteError,
    SslFiles,
    make_remote,
)
from .schema import SERVER_DB_NAME, Schema, server_schema
from .session import DEFAULT_MAX_BACKLOG, PendingTransact, Session, update_params_tail
from .storage import Storage, changes_to_record
from .transaction import ChangeSet

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 2.5  # how often ovsdb-server refreshes the Manager rows' status


class DbHandle:
    """A served database: contents, file (None for _Server), waiting transactions."""

    def __init__(self, db: Database, storage: Storage | None) -> None:
        self.db = db
        self.storage = storage
        self.pending: list[PendingTransact] = []
        self.history = TxnHistory()


class OvsdbServer:
    """Serves databases on remotes.  A remote "db:DB,TABLE,COLUMN" names a
    column whose values are remotes (strings, or rows with a "target" column
    such as the Manager table), re-read after every commit, as ovsdb-server's
    --remote=db:Open_vSwitch,Open_vSwitch,manager_options does; the rows get
    is_connected and status written back."""

    def __init__(self, db_files: list[str], remotes: list[str],
                 ssl_files: SslFiles | None = None,
                 max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self.db_files = list(db_files)
        self.remotes = list(remotes)
        self.ssl_files = ssl_files or SslFiles()
        self.max_backlog = max_backlog
        self.dbs: dict[str, DbHandle] = {}
        self.sessions: set[Session] = set()
        self.locks = LockManager(self._lock_notify)
        self.static_remotes: list[Remote] = []
        self.db_remote_specs: list[tuple[str, str, str]] = []
        self.db_remotes: dict[RemoteConfig, Remote] = {}
        self._status_pending = False
        self._syncing = False
        self._resync = False
        self._tasks: set[asyncio.Task] = set()
        self.barrier = CommitBarrier()  # output waits for the log's sync
        self._monitor_groups: dict | None = None
        self._status_refresher = False

    @property
    def tcp_ports(self) -> list[int]:
        """Bound ptcp/pssl ports of the command-line remotes, in order."""
        return [r.bound_port for r in self.static_remotes
                if isinstance(r, PassiveRemote) and r.bound_port is not None]

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
        for target in self.remotes:
            if target.startswith("db:"):
                self.db_remote_specs.append(self._parse_db_remote(target))
                continue
            remote = make_remote(RemoteConfig(target), self._session_factory, self.ssl_files)
            await remote.start()
            self.static_remotes.append(remote)
        await self._sync_db_remotes()
        self._watch_db_remote_status()

    async def stop(self) -> None:
        remotes = self.static_remotes + list(self.db_remotes.values())
        self.static_remotes, self.db_remotes = [], {}
        for remote in remotes:
            await remote.close()
        for session in list(self.sessions):
            session.close()
        others = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        self.barrier.release()
        for handle in self.dbs.values():
            if handle.storage is not None:
                handle.storage.close()

    def _session_factory(self, remote: Remote) -> Callable[[], Session]:
        """What each connection of remote runs: a new Session protocol."""
        probe_ms = remote.config.probe_ms()
        return lambda: Session(self, remote, probe_ms=probe_ms, max_backlog=self.max_backlog)

    def session_opened(self, session: Session) -> None:
        self.sessions.add(session)

    # --- remotes named by database columns -----------------------------------
    def _parse_db_remote(self, target: str) -> tuple[str, str, str]:
        """(db, table, column) of "db:DB,TABLE,COLUMN"; RemoteError worded as
        ovsdb-server words it (scripts match on it)."""
        parts = target[3:].split(",")
        if len(parts) != 3:
            raise RemoteError(f'"{target}": invalid syntax')
        db_name, table, column = parts
        handle = self.dbs.get(db_name)
        if handle is None:
            raise RemoteError(f'"{target}": no database named {db_name}')
        ts = handle.db.schema.parsed.tables.get(table)
        if ts is None:
            raise RemoteError(f'"{target}": no table named {table}')
        if column not in ts.columns:
            raise RemoteError(f'"{target}": table "{table}" has no column "{column}"')
        return db_name, table, column

    def _watch_db_remote_status(self) -> None:
        """Keep the Manager rows' status fresh once there is a db: remote."""
        if self.db_remote_specs and not self._status_refresher:
            self._status_refresher = True
            self._spawn(self._refresh_status_every(STATUS_PERIOD_S))

    # --- run-time configuration (ovs-appctl -t ovsdb-server ...) -------------
    def configured_remotes(self) -> list[str]:
        """Every remote given on the command line or added since, in the order
        ovsdb-server/list-remotes prints them (sorted)."""
        return sorted(self.remotes)

    async def add_remote(self, target: str) -> None:
        """Serve on target as --remote=target would have (nothing if it is
        configured already).  Only a db: remote is checked here; any other
        that cannot start now stays configured, with a warning, as in
        ovsdb-server (whose add-remote accepts any name)."""
        if target in self.remotes:
            return
        if target.startswith("db:"):
            spec = self._parse_db_remote(target)
            self.remotes.append(target)
            self.db_remote_specs.append(spec)
            await self._sync_db_remotes()
            self._watch_db_remote_status()
            return
        self.remotes.append(target)
        try:
            remote = make_remote(RemoteConfig(target), self._session_factory, self.ssl_files)
            await remote.start()
        except (RemoteError, OSError, ssl.SSLError, ValueError) as e:
            log.warning("%s: cannot start remote: %s", target, e)
            return
        self.static_remotes.append(remote)

    async def remove_remote(self, target: str) -> None:
        """Stop serving on target and drop the sessions it accepted (for a
        db: remote, those of the remotes it named); RemoteError if target is
        not configured."""
        if target not in self.remotes:
            raise RemoteError("no such remote")
        self.remotes.remove(target)
        if target.startswith("db:"):
            self.db_remote_specs.remove(self._parse_db_remote(target))
            if self.db_remote_specs:
                await self._sync_db_remotes()
            else:
                for remote in list(self.db_remotes.values()):
                    await remote.close()
                self.db_remotes.clear()
            return
        for remote in [r for r in self.static_remotes if r.config.target == target]:
            self.static_remotes.remove(remote)
            await remote.close()

    def reconnect_all(self) -> None:
        """Drop every client connection (active remotes then connect again),
        as ovsdb-server/reconnect does."""
        for session in list(self.sessions):
            session.close()

    def memory_usage(self) -> dict[str, int]:
        """The counts ovsdb-server's memory/show reports, over every database:
        cells (rows times columns, _uuid and _version included), atoms,
        weak references, distinct monitors, and sessions (only when there
        are any, as ovsdb-server leaves out a zero it only adds to)."""
        cells = atoms = weak_refs = 0
        for handle in self.dbs.values():
            db = handle.db
            for name, rows in db.tables.items():
                ts = db.table_schema(name)
                cells += len(rows) * (len(ts.columns) + len(IMPLICIT))
                atoms += sum(row_atoms(row) for row in rows.values()) + len(IMPLICIT) * len(rows)
                weak_refs += _count_weak_refs(ts, rows)
        monitors = sum(len(self._groups_for(handle)) for handle in self.dbs.values())
        usage = {"atoms": atoms, "cells": cells, "monitors": monitors, "n-weak-refs": weak_refs}
        if self.sessions:
            usage["sessions"] = len(self.sessions)
        return usage

    def _remote_tables(self, db_name: str, table: str, column: str) -> set[str]:
        """Tables whose changes can change the remotes a db: spec names."""
        ts = self.dbs[db_name].db.schema.parsed.tables.get(table)
        if ts is None or column not in ts.columns:
            return set()  # a schema conversion dropped it
        key = ts.columns[column].type.key
        return {table, key.ref_table_name} if key.ref_table_name else {table}

    def _wanted_db_remotes(self) -> dict[RemoteConfig, tuple[str, str, uuid.UUID] | None]:
        """Remote configs the database asks for -> (db, table, uuid) of the row
        describing each (None when the column holds plain strings)."""
        wanted: dict[RemoteConfig, tuple[str, str, uuid.UUID] | None] = {}
        for db_name, table, column in self.db_remote_specs:
            db = self.dbs[db_name].db
            ts = db.schema.parsed.tables.get(table)
            if ts is None or column not in ts.columns:
                continue  # a schema conversion dropped it
            col_type = ts.columns[column].type
            for row in db.tables[table].values():
                for atom in row.data[column].values:
                    if col_type.key.type.to_string() == "string":
                        wanted.setdefault(RemoteConfig(atom.value), None)
                        continue
                    ref_table = col_type.key.ref_table_name
                    target_row = db.tables.get(ref_table, {}).get(atom.value)
                    if target_row is not None and "target" in target_row.data:
                        wanted.setdefault(_row_config(target_row),
                                          (db_name, ref_table, target_row.uuid))
        return wanted

    async def _sync_db_remotes(self) -> None:
        """Start and stop remotes to match the database.  A commit that arrives
        while a sync is under way makes that sync run once more."""
        if not self.db_remote_specs:
            return
        if self._syncing:
            self._resync = True
            return
        self._syncing = True
        try:
            self._resync = True
            while self._resync:
                self._resync = False
                await self._sync_db_remotes_once()
        finally:
            self._syncing = False
        self._status_changed()

    async def _sync_db_remotes_once(self) -> None:
        wanted = self._wanted_db_remotes()
        for config in [c for c in self.db_remotes if c not in wanted]:
            await self.db_remotes.pop(config).close()
        for config, row_ref in wanted.items():
            if config in self.db_remotes:
                self.db_remotes[config].row_ref = row_ref
                continue
            try:
                remote = make_remote(config, self._session_factory, self.ssl_files)
                remote.row_ref = row_ref
                await remote.start()
            except (RemoteError, OSError, ssl.SSLError) as e:
                log.warning("%s: cannot start remote: %s", config.target, e)
                continue
            remote.on_change = self._status_changed
            self.db_remotes[config] = remote

    def _status_changed(self) -> None:
        """Write Manager-style status soon (once, however many changes come)."""
        if self._status_pending or not self.db_remotes:
            return
        self._status_pending = True
        asyncio.get_running_loop().call_later(0.05, self._write_status)

    async def _refresh_status_every(self, period: float) -> None:
        """ovsdb-server rewrites the Manager rows' status every 2.5 s, not
        only on a change, so that sec_since_connect keeps counting; a write
        that changes nothing commits nothing."""
        while True:
            await asyncio.sleep(period)
            self._status_changed()

    def _write_status(self) -> None:
        self._status_pending = False
        ops_by_db: dict[str, list[dict]] = {}
        for remote in self.db_remotes.values():
            if remote.row_ref is None:
                continue
            db_name, table, row_uuid = remote.row_ref
            handle = self.dbs[db_name]
            row = handle.db.tables.get(table, {}).get(row_uuid)  # gone after a conversion?
            if row is None:
                continue
            columns = handle.db.table_schema(table).columns
            new: dict[str, Any] = {}
            if "is_connected" in columns:
                new["is_connected"] = remote.is_connected
            if "status" in columns:
                new["status"] = ["map", [list(kv) for kv in sorted(remote.status().items())]]
            if all(row.data[c].to_json() == v for c, v in new.items()):
                continue
            ops_by_db.setdefault(db_name, []).append(
                {"op": "update", "table": table, "row": new,
                 "where": [["_uuid", "==", ["uuid", str(row_uuid)]]]})
        for db_name, ops in ops_by_db.items():
            handle = self.dbs[db_name]
            outcome = Executor(handle.db, set()).run(ops)
            if outcome.changes:
                self.commit(handle, outcome)

    def session_closed(self, session: Session) -> None:
        self.sessions.discard(session)
        self.locks.drop_session(session)
        self.monitors_changed()

    def monitors_changed(self) -> None:
        """A monitor came, went or changed its condition: regroup before the
        next commit."""
        self._monitor_groups = None

    def _groups_for(self, handle: DbHandle) -> dict[tuple, list[tuple[Session, Monitor]]]:
        """Every monitor of handle's database, grouped by what its updates
        look like (Monitor.key), so that a commit composes each group's
        update once, however many clients share it."""
        if self._monitor_groups is None:
            groups: dict[DbHandle, dict[tuple, list[tuple[Session, Monitor]]]] = {}
            for session in self.sessions:
                for mon in session.monitors.values():
                    by_key = groups.setdefault(mon.handle, {})
                    by_key.setdefault(mon.key, []).append((session, mon))
            self._monitor_groups = groups
        return self._monitor_groups.get(handle, {})

    def _lock_notify(self, session: Session, method: str, name: str) -> None:
        session.notify(method, [name])

    # --- commits -------------------------------------------------------------
    def commit(self, handle: DbHandle, outcome: TransactOutcome,
               retry_waits: bool = True) -> None:
        """Log a checked transaction, install it, and tell monitors.  What this
        sends waits in the barrier until the log is synced.  A client's own
        commit passes retry_waits=False and calls retry_waits() once it has
        sent its reply: ovsdb-server answers a transaction before the waits
        it satisfies."""
        changes = outcome.changes
        if not changes:
            return
        if handle.storage is not None:
            record = changes_to_record(handle.db, changes, outcome.comments)
            if record is not None:
                handle.storage.append(record, sync=False)
                self.barrier.written(handle.storage)
        self._install(handle, changes)
        if retry_waits:
            self.retry_waits(handle)
        if handle.storage is not None and handle.storage.should_compact():
            self._spawn(self._compact_one(handle))
        if any(db_name == handle.db.name and changes.keys() & self._remote_tables(db_name, t, c)
               for db_name, t, c in self.db_remote_specs):
            self._spawn(self._sync_db_remotes())

    def _install(self, handle: DbHandle, changes: ChangeSet) -> None:
        handle.db.apply(changes)
        txn_id = handle.history.record(changes, handle.db.n_atoms)
        for members in list(self._groups_for(handle).values()):
            first = members[0][1]
            updates = first.updates(changes)
            if not updates:
                continue
            tail = update_params_tail(first.version, txn_id, jsonrpc.encode(updates))
            for session, mon in members:
                session.send_bytes(mon.notification_head() + tail)

    def retry_waits(self, handle: DbHandle) -> None:
        """Run again the transactions of handle's database that wait."""
        for pending in list(handle.pending):
            pending.retry()

    # --- schema conversion ---------------------------------------------------
    def convert(self, handle: DbHandle, schema_json: Any) -> None:
        """Give handle's database the schema schema_json, converting its rows
        (convert.py), as ovsdb-server's "convert" does: the file is rewritten
        with the new schema and contents and synced first; then the
        database's monitors and waiting transactions end (Session.
        database_replaced), its transaction history starts afresh, and its
        _Server row shows the new schema.  The caller then disconnects the
        clients that are not db-change-aware.  OvsdbError (or OSError from
        the file) leaves everything as it was."""
        if handle.storage is None:
            raise OvsdbError("not allowed", f"cannot convert built-in database {handle.db.name}")
        schema = parse_new_schema(schema_json, handle.db.name)
        new_db = convert_database(handle.db, schema)
        handle.storage.replace(new_db, "converted by ovsdb-server")
        handle.db = new_db
        handle.history = TxnHistory()
        for session in list(self.sessions):
            session.database_replaced(handle)
        self.monitors_changed()
        self._show_schema(handle.db)
        self._spawn(self._sync_db_remotes())  # the remotes' rows may have changed
        log.info("%s: converted to schema version %s", handle.db.name,
                 schema.parsed.version)

    def disconnect_change_unaware(self) -> None:
        """Drop every client that did not set_db_change_aware: it may hold a
        schema that is gone (ovsdb-server does the same after a conversion)."""
        for session in list(self.sessions):
            if not session.db_change_aware:
                session.close()

    def _show_schema(self, db: Database) -> None:
        """Rewrite the "schema" of db's row in _Server (whose monitors then
        hear of it, which is how IDLs learn that the schema changed)."""
        server_handle = self.dbs[SERVER_DB_NAME]
        ts = server_handle.db.table_schema("Database")
        for row in list(server_handle.db.tables["Database"].values()):
            if next(iter(row.data["name"].values)).value == db.name:
                data = dict(row.data)
                data["schema"] = _datum(ts, "schema", _schema_text(db.schema))
                new = Row(row.uuid, uuid.uuid4(), data)
                self._install(server_handle, {"Database": {row.uuid: (row, new)}})

    def compact(self) -> None:
        """Compact every database now, on the loop (blocking)."""
        for handle in self.dbs.values():
            if handle.storage is not None and not handle.storage.compacting:
                handle.storage.compact(handle.db)

    async def compact_async(self, name: str | None = None) -> None:
        """Compact every database (or the one named) with the heavy part in a
        worker thread."""
        for handle in list(self.dbs.values()):
            if name is None or handle.db.name == name:
                await self._compact_one(handle)

    async def _compact_one(self, handle: DbHandle) -> None:
        if handle.storage is None:
            return
        try:
            await handle.storage.compact_async(handle.db)
        except OSError as e:
            log.error("compacting %s failed: %s", handle.db.name, e)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- _Server -------------------------------------------------------------
    def _build_server_db(self) -> Database:
        sdb = Database(server_schema())
        ts = sdb.table_schema("Database")
        changes: ChangeSet = {"Database": {}}
        for name, handle in list(self.dbs.items()) + [(SERVER_DB_NAME, None)]:
            schema = sdb.schema if handle is None else handle.db.schema
            data = default_data(ts)
            data["name"] = _datum(ts, "name", name)
            data["model"] = _datum(ts, "model", "standalone")
            data["connected"] = _datum(ts, "connected", True)
            data["leader"] = _datum(ts, "leader", True)
            data["schema"] = _datum(ts, "schema", _schema_text(schema))
            row = Row(uuid.uuid4(), uuid.uuid4(), data)
            changes["Database"][row.uuid] = (None, row)
        sdb.apply(changes)
        return sdb


def _row_config(row: Row) -> RemoteConfig:
    """A Manager-like row's target and connection options."""

    def optional_int(column: str) -> int | None:
        datum = row.data.get(column)
        if datum is None or len(datum.values) != 1:
            return None
        value = next(iter(datum.values)).value
        return value if isinstance(value, int) else None

    target = next(iter(row.data["target"].values)).value
    return RemoteConfig(target, optional_int("inactivity_probe"), optional_int("max_backoff"))


def _schema_text(schema: Schema) -> str:
    """A schema as _Server's Database.schema column holds it."""
    return json.dumps(schema.canonical_json(), sort_keys=True, separators=(",", ":"))


def _datum(ts: Any, column: str, value: Any) -> Datum:
    col = ts.columns[column]
    return Datum(col.type, {Atom(col.type.key.type, value): None})


def _count_weak_refs(table: TableSchema, rows: dict[uuid.UUID, Row]) -> int:
    """How many weak references table's rows hold: one per referring key or
    value, as ovsdb-server counts its weak-reference records."""
    columns = weak_ref_columns(table)
    count = 0
    for row in rows.values():
        for col in columns:
            n = len(row.data[col.name].values)
            count += n * (col.type.key.is_weak_ref()
                          + (col.type.value is not None and col.type.value.is_weak_ref()))
    return count
