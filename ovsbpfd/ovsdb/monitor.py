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

from .condition import AnyCondition, Condition, parse_condition
from .database import Database, Row, default_datum
from .datum_json import uuid_text
from .diff import datum_diff_json
from .errors import OvsdbError, raise_unused_members, syntax_error
from .hash_order import ovs_order
from .jsonrpc import encode
from .transaction import ChangeSet

SELECT_KINDS = ("initial", "insert", "delete", "modify")
# Joined dumps bigger than this are not kept (a big database's full dump
# would double the memory its rows' entries already take).
_KEPT_DUMP_MAX = 1 << 18
_UPDATE_METHODS = {1: b"update", 2: b"update2", 3: b"update3"}


@dataclass
class TableMonitor:
    """What a monitor wants of one table.  Each column has the select flags
    of the request that named it (col_select, all of them if not given): a
    change of kind K is sent when the table selects K, and shows only the
    columns that select K, as ovsdb-server does."""

    table: TableSchema
    columns: list[str]
    select: dict[str, bool]
    condition: Condition = field(default_factory=lambda: AnyCondition([]))
    col_select: dict[str, frozenset[str]] | None = None

    def __post_init__(self) -> None:
        if self.col_select is None:
            self.col_select = dict.fromkeys(self.columns, frozenset(SELECT_KINDS))
        self.kind_columns = {k: [c for c in self.columns if k in self.col_select[c]]
                             for k in SELECT_KINDS}
        self.modify_columns = frozenset(self.kind_columns["modify"])
        # Memo keys of this column selection's initial-dump entry, for update2/3
        # monitors and for update (version 1) ones: strings, whose hash is kept.
        cols = ",".join(self.kind_columns["initial"])
        self.encoded_keys = ("\0initial:" + cols, "\0new:" + cols)
        # Per kind, (column, its default datum); None for _uuid and _version,
        # never default.
        self.defaults = {k: [(c, None if c in ("_uuid", "_version")
                              else default_datum(self.table.columns[c].type))
                             for c in self.kind_columns[k]]
                         for k in ("initial", "insert")}


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
                 tuple(tuple(tm.kind_columns[k]) for k in SELECT_KINDS),
                 tm.condition.key()) for name, tm in sorted(self.tables.items())))
        return self._key

    # --- building ----------------------------------------------------------
    @classmethod
    def parse(cls, db: Database, monitor_id: Any, version: int, requests: Any) -> Monitor:
        if not isinstance(requests, dict):
            raise syntax_error(requests, "monitor-requests must be object")
        return cls(db, monitor_id, version, _in_ovs_order(_parse_tables, db, version, requests))

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
            entry = {"new": {c: row.json_once(c) for c in tm.kind_columns["initial"]}}
        else:
            entry = {"initial": _non_default(tm.defaults["initial"], row)}
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
        """Apply monitor_cond_change; returns the inserts/deletes this causes.
        As in ovsdb-server: of a table's requests the last one decides, and
        a monitor without conditions (version 1) checks the requests' shape
        but keeps sending every row."""
        if not isinstance(requests, dict):
            raise OvsdbError("syntax error", "monitor-cond-change-requests must be object")
        new_conds = _in_ovs_order(self._parse_changes, requests)
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

    def _parse_changes(self, requests: dict) -> dict[str, Condition]:
        """The new condition of each table of a monitor_cond_change."""
        new_conds: dict[str, Condition] = {}
        for table_name, reqs in requests.items():
            tm = self.tables.get(table_name)
            if tm is None:
                suffix = " in monitor session" if table_name in self.db.tables else ""
                raise OvsdbError("syntax error", f"no table named {table_name}{suffix}")
            if not isinstance(reqs, list):
                raise OvsdbError("syntax error",
                                 f"table {table_name} no monitor-cond-change JSON array")
            for r in reqs:
                members = _members(r, f"table {table_name}", {"columns": list, "where": list})
                if "columns" in members:
                    raise syntax_error(r, "changing columns is unsupported")
                if self.version != 1:
                    # ovsdb-server (3.1) crashes on a request without "where";
                    # here that means every row.
                    where = members.get("where", [])
                    new_conds[table_name] = AnyCondition(parse_condition(tm.table, where).clauses)
        return new_conds

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
        kind = "initial" if initial else "insert"
        if self.version == 1:
            return {"new": {c: row.json_once(c) for c in tm.kind_columns[kind]}}
        return {kind: _non_default(tm.defaults[kind], row)}

    def _delete(self, tm: TableMonitor, row: Row) -> dict:
        if self.version == 1:
            return {"old": {c: row.json_once(c) for c in tm.kind_columns["delete"]}}
        return {"delete": None}

    def _modify(self, tm: TableMonitor, old: Row, new: Row) -> dict | None:
        """A change to any monitored column is sent, showing the changed
        columns that select "modify" (so possibly none)."""
        changed = [c for c in tm.columns if _differs(old, new, c)]
        if not changed:
            return None
        shown = [c for c in changed if c in tm.modify_columns]
        if self.version == 1:
            return {"old": {c: old.json_once(c) for c in shown},
                    "new": {c: new.json_once(c) for c in tm.kind_columns["modify"]}}
        return {"modify": {c: datum_diff_json(_value(old, c), _value(new, c))
                           for c in shown}}


def _in_ovs_order(parse: Any, *args: Any) -> Any:
    """parse(*args); if that fails for requests (the last argument) on
    several tables, raise the error of the table ovsdb-server checks first
    (hash_order)."""
    *rest, requests = args
    try:
        return parse(*rest, requests)
    except OvsdbError:
        if len(requests) < 2:
            raise
    return parse(*rest, {t: requests[t] for t in ovs_order(list(requests))})


def _parse_tables(db: Database, version: int, requests: dict) -> dict[str, TableMonitor]:
    """The TableMonitors of a monitor request, table by table."""
    tables: dict[str, TableMonitor] = {}
    for table_name, req in requests.items():
        ts = db.schema.parsed.tables.get(table_name)
        if ts is None:
            raise OvsdbError("syntax error", f"no table named {table_name}")
        reqs = req if isinstance(req, list) else [req]
        columns: list[str] = []
        select = dict.fromkeys(SELECT_KINDS, False)
        col_select: dict[str, frozenset[str]] = {}
        condition: AnyCondition | None = None
        for r in reqs:
            # As ovsdb-server: members, select, columns (each new to the
            # table), and only then the where-clause, request by request.
            first = len(columns)
            sel, where = _parse_request(ts, r, version, columns)
            kinds = frozenset(k for k in SELECT_KINDS if sel[k])
            for c in columns[first:]:
                col_select[c] = kinds
            for k in SELECT_KINDS:
                select[k] = select[k] or sel[k]
            # Every where-clause is parsed, but the table's first request
            # decides the condition (none: every row), as in ovsdb-server.
            clauses = parse_condition(ts, where).clauses if where is not None else []
            if condition is None:
                condition = AnyCondition(clauses)
        tables[table_name] = TableMonitor(ts, columns, select, condition or AnyCondition([]),
                                          col_select)
    return tables


def _non_default(defaults: list, row: Row) -> dict:
    """The columns of row (with their defaults) that do not hold their
    default value.  A column left at its default usually holds the very
    default object."""
    data, out = row.data, {}
    for c, default in defaults:
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
    raise_unused_members(obj, set(allowed), lambda message: syntax_error(obj, prefix + message))
    return out


def _parse_request(ts: TableSchema, req: Any, version: int, columns: list[str]
                   ) -> tuple[dict[str, bool], list | None]:
    """One monitor request: its select flags and where-clause (unparsed);
    its columns are appended to `columns`, those of the table's earlier
    requests, each checked in turn as ovsdb-server does."""
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
        for c in [*ts.columns, "_version"]:
            if c in columns:
                raise OvsdbError("syntax error", f"column {c} mentioned more than once")
            columns.append(c)
    else:
        for c in columns_json:
            if not isinstance(c, str):
                raise syntax_error(columns_json, "array of column names expected")
            if c not in ts.columns and c not in ("_uuid", "_version"):
                raise syntax_error(columns_json, f"{c} is not a valid column name")
            if c in columns:
                raise syntax_error(columns_json, f"column {c} mentioned more than once")
            columns.append(c)
    return select, members.get("where")


ZERO_UUID = str(uuid.UUID(int=0))
