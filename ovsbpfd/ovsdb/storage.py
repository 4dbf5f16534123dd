"""The on-disk database: OVS's standalone format, an append-only log of records.

Each record is a line `OVSDB JSON <length> <sha1>` followed by <length> bytes of
JSON and a newline.  The first record is the schema; every later one is a
committed transaction (or, after compaction, one snapshot of all rows).
A record is synced to disk before the transaction that produced it is
acknowledged (see durability.py: the server syncs once per event-loop turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
import uuid
from typing import Any

import ovs.db.error
from ovs.db.data import Datum

from .columns import resized
from .database import Database, Row, default_data, is_default
from .datum_json import datum_from_json, datum_to_json
from .diff import apply_diff, datum_diff_json
from .errors import OvsdbError
from .jsonrpc import encode
from .log_sync import BackgroundSync
from .schema import Schema
from .transaction import ChangeSet

MAGIC = b"OVSDB JSON "


def _record_bytes(obj: Any) -> bytes:
    body = encode(obj) + b"\n"
    header = b"%s%d %s\n" % (MAGIC, len(body), hashlib.sha1(body).hexdigest().encode())
    return header + body


def read_records(path: str) -> tuple[list[Any], int]:
    """All complete records of a log file, and the byte offset where they end.

    A torn record at the end (a crash during append) is ignored, like OVS does."""
    records, ends = read_records_with_ends(path)
    return records, ends[-1]


def read_records_with_ends(path: str) -> tuple[list[Any], list[int]]:
    """Like read_records, with the byte offset where each record ends."""
    with open(path, "rb") as f:
        data = f.read()
    ends: list[int] = []
    records: list[Any] = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0 or not data.startswith(MAGIC, pos):
            break
        parts = data[pos + len(MAGIC):nl].split(b" ")
        if len(parts) != 2 or not parts[0].isdigit():
            break
        length = int(parts[0])
        body = data[nl + 1:nl + 1 + length]
        if len(body) != length or hashlib.sha1(body).hexdigest().encode() != parts[1]:
            break
        try:
            records.append(json.loads(body))
        except ValueError:
            break
        pos = nl + 1 + length
        ends.append(pos)
    if not records:
        raise OvsdbError("ovsdb error", f"{path}: not an OVSDB standalone database")
    return records, ends


def create_db(path: str, schema_path: str) -> None:
    """Create a database file holding just the schema, like `ovsdb-tool create`."""
    schema = Schema.from_file(schema_path)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(_record_bytes(schema.to_json()))
        f.flush()
        os.fsync(f.fileno())
    if os.path.exists(path):
        os.unlink(tmp)
        raise FileExistsError(path)
    os.rename(tmp, path)
    _fsync_dir(path)


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replay(db: Database, record: dict) -> None:
    """Apply one transaction record to the in-memory database."""
    is_diff = bool(record.get("_is_diff"))
    changes: ChangeSet = {}
    for table_name, rows in record.items():
        if table_name.startswith("_"):
            continue
        ts = db.schema.parsed.tables.get(table_name)
        if ts is None or not isinstance(rows, dict):
            raise OvsdbError("ovsdb error", f"log record names unknown table {table_name}")
        for uuid_str, row_json in rows.items():
            row_uuid = uuid.UUID(uuid_str)
            old = db.tables[table_name].get(row_uuid)
            if row_json is None:
                changes.setdefault(table_name, {})[row_uuid] = (old, None)
                continue
            data = dict(old.data) if old is not None else default_data(ts)
            for name, value in row_json.items():
                col = ts.columns.get(name)
                if col is None:
                    continue
                try:
                    if old is not None and is_diff:
                        diff = datum_from_json(resized(col.type, 0, 1 << 62), value)
                        data[name] = apply_diff(data[name], Datum(col.type, diff.values))
                    else:
                        # Shares the uuid Atoms later parses use (fast set deltas).
                        data[name] = datum_from_json(col.type, value)
                except ovs.db.error.Error as e:
                    raise OvsdbError.from_ovs(e) from None
            changes.setdefault(table_name, {})[row_uuid] = (old, Row(row_uuid, uuid.uuid4(), data))
    db.apply(changes)


def changes_to_record(db: Database, changes: ChangeSet, comments: list[str]) -> dict | None:
    """The log record for a committed change set, or None if nothing persistent changed."""
    record: dict[str, Any] = {}
    for table_name, rows in changes.items():
        ts = db.schema.parsed.tables[table_name]
        persistent = [c for c in ts.columns.values() if c.persistent]
        out: dict[str, Any] = {}
        for row_uuid, (old, new) in rows.items():
            if new is None:
                out[str(row_uuid)] = None
                continue
            cols: dict[str, Any] = {}
            for col in persistent:
                datum = new.data[col.name]
                if old is None:
                    if not is_default(datum):
                        cols[col.name] = datum_to_json(datum)
                else:
                    before = old.data[col.name]
                    # An update shares the datums it did not change: no need
                    # for python-ovs's element-by-element comparison of those.
                    if before is not datum and before != datum:
                        cols[col.name] = datum_diff_json(before, datum)
            if old is None or cols:
                out[str(row_uuid)] = cols
        if out:
            record[table_name] = out
    if not record:
        return None
    record["_date"] = int(time.time() * 1000)
    record["_is_diff"] = True
    if comments:
        record["_comment"] = "\n".join(comments)
    return record


def freeze_rows(db: Database) -> dict[str, list[Row]]:
    """The rows of every table as they are now.  Rows are immutable, so this
    shallow copy stays a consistent snapshot while later commits go on."""
    return {name: list(rows.values()) for name, rows in db.tables.items()}


def snapshot_record(db: Database, frozen: dict[str, list[Row]] | None = None,
                    comment: str = "compacting database online") -> dict:
    record: dict[str, Any] = {}
    tables = frozen if frozen is not None else freeze_rows(db)
    for table_name, rows in tables.items():
        ts = db.schema.parsed.tables[table_name]
        persistent = [c for c in ts.columns.values() if c.persistent]
        out = {}
        for row in rows:
            out[str(row.uuid)] = {c.name: datum_to_json(row.data[c.name]) for c in persistent
                                  if not is_default(row.data[c.name])}
        if out:
            record[table_name] = out
    record["_date"] = int(time.time() * 1000)
    record["_comment"] = comment
    return record


class Storage:
    """An open database file: loads it, appends commits, compacts it.

    Compaction can run in a worker thread (compact_async): the snapshot is
    taken from immutable rows, written and fsync'd to a temporary file while
    commits keep being appended (and fsync'd) to the live file; the records
    committed meanwhile are then copied behind the snapshot, fsync'd, and only
    then does the rename make the new file live.  A crash at any point leaves
    one complete file holding every acknowledged commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file: Any = None
        self.snapshot_size = 0
        self.log_size = 0
        self.n_records = 0
        self._since_snapshot: list[bytes] | None = None  # set while compacting
        self._appended = 0  # records appended since opening (never reset)
        self._durable = 0  # of those, how many are known to be on disk
        self._flusher = BackgroundSync()
        self._replaced = 0  # bumped by replace(): a compaction begun before is stale

    @property
    def compacting(self) -> bool:
        return self._since_snapshot is not None

    def load(self) -> Database:
        records, ends = read_records_with_ends(self.path)
        end = ends[-1]
        schema = Schema.from_json(records[0])
        db = Database(schema)
        for record in records[1:]:
            if isinstance(record, dict):
                replay(db, record)
        self.file = open(self.path, "r+b")  # noqa: SIM115 - kept open for appends
        self.file.truncate(end)
        self.file.seek(end)
        # The schema and first data record stand for the snapshot, so a file
        # reopened with a long log still compacts after 100 more commits.
        self.snapshot_size = ends[min(1, len(ends) - 1)]
        self.log_size = end
        self.n_records = len(records)
        return db

    def append(self, record: dict, sync: bool = True) -> None:
        """Write a record; with sync=False the caller must call sync() before
        acknowledging it (the server does so once per event-loop turn)."""
        data = _record_bytes(record)
        self.file.write(data)
        self.file.flush()
        if sync:
            self.sync()
        self.log_size += len(data)
        self.n_records += 1
        self._appended += 1
        if self._since_snapshot is not None:
            self._since_snapshot.append(data)

    def begin_sync(self) -> None:
        """Start making the records appended so far durable, in the background;
        sync() finishes the job."""
        if self.file is not None and self._durable < self._appended:
            self._flusher.start(self.file.fileno(), self._appended)

    def sync(self) -> None:
        """Make every appended record durable (waiting for a flush begun by
        begin_sync, then flushing again only if records came after it).
        fdatasync is enough: an append changes only the data and the size, and
        it flushes both."""
        self._durable = max(self._durable, self._flusher.wait())
        if self.file is not None and self._durable < self._appended:
            appended = self._appended
            os.fdatasync(self.file.fileno())
            self._durable = appended

    def should_compact(self) -> bool:
        """Compact when the log is 4x the last snapshot and past 10 MB or 100 records,
        roughly ovsdb-server's rule."""
        if self.compacting:
            return False
        grown = self.log_size - self.snapshot_size
        return self.log_size > 4 * self.snapshot_size and (
            grown > 10 * 1024 * 1024 or self.n_records > 100)

    def compact(self, db: Database) -> None:
        """Rewrite the file as schema + one snapshot, atomically via rename."""
        tmp = self._write_snapshot(db, freeze_rows(db))
        self._install_snapshot(tmp, [])

    async def compact_async(self, db: Database) -> None:
        """compact(), with the serialising and writing done in a worker thread."""
        if self.compacting:
            return
        frozen = freeze_rows(db)
        self._since_snapshot = []
        replaced = self._replaced
        try:
            tmp = await asyncio.to_thread(self._write_snapshot, db, frozen)
        except BaseException:
            self._since_snapshot = None
            raise
        backlog, self._since_snapshot = self._since_snapshot, None
        if self.file is None or self._replaced != replaced:  # closed or converted meanwhile
            os.unlink(tmp)
            return
        self._install_snapshot(tmp, backlog)

    def replace(self, db: Database, comment: str) -> None:
        """Make the file db's schema and contents alone (a schema conversion),
        durably, before returning; a compaction under way is dropped."""
        self._replaced += 1  # a compaction under way stays "compacting" until it sees this
        tmp = self._write_snapshot(db, freeze_rows(db), comment, f"{self.path}.tmp-convert")
        self._install_snapshot(tmp, [])

    def _write_snapshot(self, db: Database, frozen: dict[str, list[Row]],
                        comment: str = "compacting database online",
                        tmp: str | None = None) -> str:
        tmp = tmp or f"{self.path}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(_record_bytes(db.schema.to_json()))
                f.write(_record_bytes(snapshot_record(db, frozen, comment)))
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def _install_snapshot(self, tmp: str, backlog: list[bytes]) -> None:
        # A flush of the old file may still be running; the new file, synced
        # below, holds every record appended so far.
        with contextlib.suppress(OSError):
            self._flusher.wait()
        with open(tmp, "ab") as f:
            snapshot_size = f.tell()
            for data in backlog:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path)
        _fsync_dir(self.path)
        self.file.close()
        self.file = open(self.path, "r+b")  # noqa: SIM115
        self.file.seek(0, os.SEEK_END)
        self.snapshot_size = snapshot_size
        self.log_size = self.file.tell()
        self.n_records = 2 + len(backlog)
        self._durable = self._appended

    def close(self) -> None:
        self._flusher.close()
        if self.file is not None:
            self.file.close()
            self.file = None
