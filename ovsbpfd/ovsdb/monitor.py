"""Monitors: monitor (update), monitor_cond (update2), monitor_cond_since (update3).

A monitor remembers, per table, which columns a client wants, which kinds of
change ("select") and, for the conditional forms, a where-condition.  After each
commit the server asks every monitor to turn the change set into the
table-updates object its client expects.

What made it fast: a new client's initial dump is assembled from bytes each
row keeps of itself (its encoded `"uuid":{"initial":{...}}` entry, one per
column selection and monitor version), so a client that connects after a
commit re-encodes only the rows that commit touched; and the server composes
each commit's update once per distinct monitor shape (Monitor.key), not once
per client.  Nothing else is kept per row, so a fresh client's dump of a big
database adds one bytes object per row, not a dict of JSON per column.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from ovs.db.schema import TableSchema

from .condition import Condition, parse_condition
from .database import Database, Row, default_datum
from .datum_json import uuid_text
from .diff import datum_diff_json
from .errors import OvsdbError, syntax_error
from .jsonrpc import encode
from .transaction import ChangeSet

SELECT_KINDS = ("initial", "insert", "delete", "modify")
# Joined dumps bigger than this are not kept (a big database's full dump
# would double the memory its rows' entries already take).
_KEPT_DUMP_MAX = 1 << 18
_UPDATE_METHODS = {1: b"update", 2: b"update2", 3: b"update3"}


@dataclass
class TableMonitor:
    table: TableSchema
    columns: list[str]
    select: dict[str, bool]
    condition: Condition = field(default_factory=lambda: Condition([]))

    def __post_init__(self) -> None:
        # Memo keys of this column selection's initial-dump entry, for update2/3
        # monitors and for update (version 1) ones: strings, whose hash is kept.
        cols = ",".join(self.columns)
        self.encoded_keys = ("\0initial:" + cols, "\0new:" + cols)
        # (column, its default datum); None for _uuid and _version, never default.
        self.defaults = [(c, None if c in ("_uuid", "_version")
                          else default_datum(self.table.columns[c].type))
                         for c in self.columns]


class Monitor:
    """One client monitor; version 1 (update), 2 (update2) or 3 (update3)."""

    def __init__(self, db: Database, monitor_id: Any, version: int,
                 tables: dict[str, TableMonitor]) -> None:
        self.db = db
        self.id = monitor_id
        self.version = version
        self.tables = tables
        self.handle: Any = None  # the server's DbHandle this monitor watches
        self._key: tuple | None = None
        self._head: tuple[Any, bytes] | None = None

    def notification_head(self) -> bytes:
        """The start of this monitor's update notification, up to and including
        the comma after its id (encoded once, again only if the id changes)."""
        if self._head is None or self._head[0] is not self.id:
            self._head = (self.id, b'{"id":null,"method":"%s","params":[%s,' % (
                _UPDATE_METHODS[self.version], encode(self.id)))
        return self._head[1]

    @property
    def key(self) -> tuple:
        """What decides this monitor's notifications (not its id): monitors with
        equal keys get byte-identical updates, so a commit composes them once."""
        if self._key is None:
            self._key = (self.version, tuple(
                (name, tuple(tm.columns), tuple(sorted(tm.select.items())),
                 tm.condition.key()) for name, tm in sorted(self.tables.items())))
        return self._key

    # --- building ----------------------------------------------------------
    @classmethod
    def parse(cls, db: Database, monitor_id: Any, version: int, requests: Any) -> Monitor:
        if not isinstance(requests, dict):
            raise syntax_error(requests, "monitor-requests must be object")
        tables: dict[str, TableMonitor] = {}
        for table_name, req in requests.items():
            ts = db.schema.parsed.tables.get(table_name)
            if ts is None:
                raise OvsdbError("syntax error", f"no table named {table_name}")
            reqs = req if isinstance(req, list) else [req]
            columns: list[str] = []
            select = dict.fromkeys(SELECT_KINDS, False)
            clauses: list = []
            for r in reqs:
                cols, sel, cond = _parse_request(ts, r, version)
                for c in cols:
                    if c in columns:
                        raise syntax_error(cols, f"column {c} mentioned more than once")
                    columns.append(c)
                for k in SELECT_KINDS:
                    select[k] = select[k] or sel[k]
                if cond is not None:
                    clauses.extend(cond.clauses)
            tables[table_name] = TableMonitor(ts, columns, select, Condition(clauses))
        return cls(db, monitor_id, version, tables)

    # --- composing ---------------------------------------------------------
    def initial(self) -> dict:
        out: dict[str, dict] = {}
        for name, tm in self.tables.items():
            if not tm.select["initial"] or tm.condition.is_false:
                continue
            rows = {}
            for row in self.db.tables[name].values():
                if tm.condition.matches(row):
                    rows[uuid_text(row.uuid)] = self._insert(tm, row, initial=True)
            if rows:
                out[name] = rows
        return out

    def initial_encoded(self) -> bytes:
        """initial(), already encoded as JSON: each row's entry comes from its
        memo (rows never change), so only rows new since the last dump of this
        kind are encoded; and a whole table's entries, joined, are kept on the
        database, so a table that only grew since is extended, not re-joined."""
        parts = []
        for name, tm in self.tables.items():
            if not tm.select["initial"] or tm.condition.is_false:
                continue
            key = tm.encoded_keys[self.version == 1]
            if tm.condition.clauses:
                rows = [r for r in self.db.tables[name].values() if tm.condition.matches(r)]
                body = b",".join(self._entries(tm, key, rows))
            else:
                body = self._whole_table_entries(name, tm, key)
            if body:
                parts.append(b'%s:{%s}' % (encode(name), body))
        return b"{%s}" % b",".join(parts)

    def _whole_table_entries(self, name: str, tm: TableMonitor, key: str) -> bytes:
        """Every row's entry of one table, joined: the kept join of the same
        kind, extended by the rows inserted since (the table's rewrite count
        unchanged means that its rows are the kept ones and then new ones at
        the end), or joined afresh."""
        db = self.db
        table = db.tables[name]
        rewrites = db.rewrites[name]
        kept = db.initial_dumps.get((name, key))
        if kept is not None and kept[0] == rewrites and kept[1] <= len(table):
            body = kept[2]
            if kept[1] < len(table):
                new = b",".join(self._entries(tm, key, islice(table.values(), kept[1], None)))
                body = body + b"," + new if body else new
        else:
            body = b",".join(self._entries(tm, key, table.values()))
        if len(body) <= _KEPT_DUMP_MAX:
            db.initial_dumps[(name, key)] = (rewrites, len(table), body)
        else:
            db.initial_dumps.pop((name, key), None)
        return body

    def _entries(self, tm: TableMonitor, key: str, rows: Any) -> list[bytes]:
        """The rows' initial-dump entries, from their memos or encoded now."""
        entries = []
        for row in rows:
            memo = row.memo
            entry = memo.get(key) if memo is not None else None
            if entry is None:
                entry = self._encode_initial(tm, row)
                if memo is None:
                    memo = row.memo = {}
                memo[key] = entry
            entries.append(entry)
        return entries

    def _encode_initial(self, tm: TableMonitor, row: Row) -> bytes:
        """The row's `"uuid":{...}` entry in an initial dump."""
        if self.version == 1:
            entry = {"new": {c: row.json_once(c) for c in tm.columns}}
        else:
            entry = {"initial": _non_default(tm, row)}
        return b'"%s":%s' % (uuid_text(row.uuid).encode(), encode(entry))

    def updates(self, changes: ChangeSet) -> dict:
        out: dict[str, dict] = {}
        for name, rows in changes.items():
            tm = self.tables.get(name)
            if tm is None:
                continue
            table_out = {}
            for row_uuid, (old, new) in rows.items():
                entry = self._row_update(tm, old, new)
                if entry is not None:
                    table_out[uuid_text(row_uuid)] = entry
            if table_out:
                out[name] = table_out
        return out

    def change_condition(self, requests: Any) -> dict:
        """Apply monitor_cond_change; returns the inserts/deletes this causes."""
        if not isinstance(requests, dict):
            raise syntax_error(requests, "monitor-cond-change-requests must be an object")
        new_conds: dict[str, Condition] = {}
        for table_name, reqs in requests.items():
            tm = self.tables.get(table_name)
            if tm is None:
                raise OvsdbError("syntax error",
                                 f"no table named {table_name} in monitor session")
            if not isinstance(reqs, list):
                raise syntax_error(reqs, "array expected")
            clauses = []
            for r in reqs:
                if not isinstance(r, dict):
                    raise syntax_error(r, "object expected")
                if "columns" in r:
                    raise syntax_error(r, "changing columns is unsupported")
                clauses.extend(parse_condition(tm.table, r.get("where", [True])).clauses)
            new_conds[table_name] = Condition(clauses)
        out: dict[str, dict] = {}
        self._key = None
        for table_name, cond in new_conds.items():
            tm = self.tables[table_name]
            old_cond, tm.condition = tm.condition, cond
            rows = {}
            for row in self.db.tables[table_name].values():
                was, now = old_cond.matches(row), cond.matches(row)
                if was and not now and tm.select["delete"]:
                    rows[uuid_text(row.uuid)] = self._delete(tm, row)
                elif now and not was and tm.select["insert"]:
                    rows[uuid_text(row.uuid)] = self._insert(tm, row, initial=False)
            if rows:
                out[table_name] = rows
        return out

    def _row_update(self, tm: TableMonitor, old: Row | None, new: Row | None) -> Any:
        was = old is not None and tm.condition.matches(old)
        now = new is not None and tm.condition.matches(new)
        if was and now:
            if not tm.select["modify"]:
                return None
            return self._modify(tm, old, new)
        if now:
            return self._insert(tm, new, initial=False) if tm.select["insert"] else None
        if was:
            return self._delete(tm, old) if tm.select["delete"] else None
        return None

    def _insert(self, tm: TableMonitor, row: Row, initial: bool) -> dict:
        if self.version == 1:
            return {"new": {c: row.json_once(c) for c in tm.columns}}
        return {"initial" if initial else "insert": _non_default(tm, row)}

    def _delete(self, tm: TableMonitor, row: Row) -> dict:
        if self.version == 1:
            return {"old": {c: row.json_once(c) for c in tm.columns}}
        return {"delete": None}

    def _modify(self, tm: TableMonitor, old: Row, new: Row) -> dict | None:
        changed = [c for c in tm.columns if _differs(old, new, c)]
        if not changed:
            return None
        if self.version == 1:
            return {"old": {c: old.json_once(c) for c in changed},
                    "new": {c: new.json_once(c) for c in tm.columns}}
        return {"modify": {c: datum_diff_json(_value(old, c), _value(new, c))
                           for c in changed}}


def _non_default(tm: TableMonitor, row: Row) -> dict:
    """The monitored columns of row that do not hold their default value.  A
    column left at its default usually holds the very default object."""
    data, out = row.data, {}
    for c, default in tm.defaults:
        if default is None:
            out[c] = row.json_once(c)
            continue
        datum = data[c]
        if datum is not default and datum.values != default.values:
            out[c] = row.json_once(c)
    return out


def _differs(old: Row, new: Row, column: str) -> bool:
    if column in ("_uuid", "_version"):
        return _value(old, column) != _value(new, column)
    a, b = old.data[column], new.data[column]
    return a is not b and a != b


def _value(row: Row, column: str):
    if column in ("_uuid", "_version"):
        from .columns import column_value

        return column_value(row, column)
    return row.data[column]


def _members(obj: Any, context: str, allowed: dict[str, type]) -> dict[str, Any]:
    """Check an object's members the way ovsdb-server's parser does, with its
    messages ("Parsing table Bridge failed: Type mismatch for member 'select'.")."""
    prefix = f"Parsing {context} failed: "
    if not isinstance(obj, dict):
        raise OvsdbError("syntax error", prefix + "Object expected.")
    out = {}
    for name, kind in allowed.items():
        if name in obj:
            value = obj[name]
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise syntax_error(obj, f"{prefix}Type mismatch for member '{name}'.")
            out[name] = value
    for name in obj:
        if name not in allowed:
            raise syntax_error(obj, f"{prefix}Member '{name}' is present but not allowed here.")
    return out


def _parse_request(ts: TableSchema, req: Any, version: int
                   ) -> tuple[list[str], dict[str, bool], Condition | None]:
    allowed: dict[str, type] = {"columns": list, "select": dict}
    if version >= 2:
        allowed = {"where": list, **allowed}
    members = _members(req, f"table {ts.name}", allowed)
    select = dict.fromkeys(SELECT_KINDS, True)
    if "select" in members:
        flags = _members(members["select"], f"table {ts.name} select",
                         dict.fromkeys(SELECT_KINDS, bool))
        select.update(flags)
    columns_json = members.get("columns")
    if columns_json is None:
        # Every column, and _version too (but not _uuid), as ovsdb-server does.
        columns = [*ts.columns, "_version"]
    else:
        columns = []
        for c in columns_json:
            if not isinstance(c, str) or (c not in ts.columns and c not in ("_uuid", "_version")):
                raise syntax_error(columns_json, f"{c} is not a valid column name")
            columns.append(c)
    cond = None
    if "where" in members:
        cond = parse_condition(ts, members["where"])
    return columns, select, cond


ZERO_UUID = str(uuid.UUID(int=0))
