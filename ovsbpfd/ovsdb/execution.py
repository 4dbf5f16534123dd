"""The transact method: parse and run each operation of RFC 7047 section 5.2.

Operations run in order against one Transaction; the first failing operation
ends the list (its error object is its result).  When every operation succeeds
the commit checks run, and their error, if any, is appended as one more entry.

What made it fast: an ovs-vsctl run is mostly "wait" operations that echo rows
back; those that hold as sent are decided without parsing (wait_check.py),
sets of references are parsed without python-ovs (datum_json.py), and which
column defaults break their own constraints is worked out once per table.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import ovs.db.error
from ovs.db.data import Datum
from ovs.db.schema import TableSchema

from .columns import IMPLICIT, column_value, parse_column_list
from .condition import parse_condition
from .database import Database, Row, default_data, default_datum
from .datum_json import IDENTIFIER, datum_from_json
from .errors import OvsdbError, raise_unused_members, syntax_error
from .hash_order import ovs_order
from .mutation import parse_mutation
from .schema import SERVER_DB_NAME
from .transaction import ChangeSet, Transaction
from .wait_check import holding_waits_end, only_uuid_equality, row_matches_json

_MISSING = object()


class SymbolTable(dict):
    """named-uuid -> uuid; truthy even when empty (python-ovs tests truthiness).

    python-ovs takes any string as a named-uuid; ovsdb-server only an <id>.
    It asks `name in symtab` before anything else, so the check goes there,
    and fails where that element comes in the datum, as ovsdb-server's does."""

    def __init__(self) -> None:
        super().__init__()
        self.created: set[str] = set()

    def __bool__(self) -> bool:
        return True

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and not IDENTIFIER.match(name):
            raise ovs.db.error.Error("named-uuid string is not a valid <id>",
                                     ["named-uuid", name])
        return super().__contains__(name)


class WaitPending(Exception):
    """A wait operation is not satisfied yet; retry the whole transaction later."""

    def __init__(self, timeout_ms: float) -> None:
        super().__init__("wait pending")
        self.timeout_ms = timeout_ms


@dataclass
class TransactOutcome:
    results: list[Any]
    changes: ChangeSet | None = None
    comments: list[str] = field(default_factory=list)
    durable: bool = False


class OpParser:
    """Reads the members of one operation object with ovsdb-server's errors."""

    def __init__(self, op: dict, index: int, total: int) -> None:
        self.op = op
        self.used: set[str] = {"op"}
        self.prefix = f"Parsing ovsdb operation {index} of {total} failed: "

    def fail(self, message: str) -> OvsdbError:
        return syntax_error(self.op, self.prefix + message)

    def get(self, name: str, types: tuple, optional: bool = False, ident: bool = False) -> Any:
        self.used.add(name)
        if name not in self.op:
            if optional:
                return _MISSING
            raise self.fail(f"Required '{name}' member is missing.")
        value = self.op[name]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if ok and ident and not IDENTIFIER.match(value):
            ok = False
        if not ok:
            raise self.fail(f"Type mismatch for member '{name}'.")
        return value

    def finish(self) -> None:
        raise_unused_members(self.op, self.used, self.fail)


def row_to_json(row: Row, columns: list[str]) -> dict:
    return {name: row.json_once(name) for name in columns}


class Executor:
    """Runs one transact request against a database."""

    def __init__(self, db: Database, held_locks: set[str], elapsed_ms: float = 0) -> None:
        self.db = db
        self.txn = Transaction(db)
        self.symtab = SymbolTable()
        self.held_locks = held_locks
        self.elapsed_ms = elapsed_ms
        self.outcome = TransactOutcome([])

    def run(self, ops: list[Any]) -> TransactOutcome:
        results = self.outcome.results
        total = len(ops)
        i = 0
        while i < total:
            op = ops[i]
            if type(op) is dict and op.get("op") == "wait":
                holding_end = holding_waits_end(self.db, self.txn, ops, i)
                if holding_end > i:  # ovs-vsctl's waits, holding as sent
                    results.extend([{} for _ in range(holding_end - i)])
                    i = holding_end
                    continue
            i += 1
            try:
                results.append(self._run_one(op, i, total))
            except (OvsdbError, ovs.db.error.Error) as e:
                error = e if isinstance(e, OvsdbError) else OvsdbError.from_ovs(e)
                results.append(error.to_json())
                # Like ovsdb-server: one result per operation, null for those
                # that never ran after the failing one.
                results.extend([None] * (total - i))
                return self.outcome
        try:
            changes = self.txn.check()
        except OvsdbError as e:
            results.append(e.to_json())
            return self.outcome
        self.outcome.changes = changes
        return self.outcome

    def _run_one(self, op: Any, index: int, total: int) -> dict:
        if not isinstance(op, dict):
            raise OvsdbError("syntax error", f"Parsing ovsdb operation {index} of {total} "
                             "failed: Object expected.")
        p = OpParser(op, index, total)
        name = p.get("op", (str,), ident=True)
        handler = _HANDLERS.get(name)
        if handler is None:
            raise p.fail(f'No operation "{name}"')
        table = None
        if name in _TABLE_OPS:
            table_name = p.get("table", (str,), ident=True)
            table = self.db.schema.parsed.tables.get(table_name)
            if table is None:
                raise p.fail(f"No table named {table_name}.")
        result = handler(self, p, table)
        # As ovsdb-server: an operation that is not read-only (commit too) is
        # refused on _Server only once it ran without an error of its own.
        if name in _WRITE_OPS and self.db.name == SERVER_DB_NAME:
            raise OvsdbError("not allowed", f"{name} operation not allowed on table in "
                             f"reserved database {SERVER_DB_NAME}")
        return result

    # --- helpers -------------------------------------------------------------
    def _parse_row(self, table: TableSchema, row_json: dict, op: dict, for_update: bool,
                   implicit: bool = False) -> dict[str, Datum]:
        """The row's datums by column; with implicit, _uuid and _version too
        (a wait's rows compare them), else they are only parsed."""
        try:
            return self._parse_row_in(table, row_json, op, for_update, implicit, row_json)
        except (OvsdbError, ovs.db.error.Error):
            if len(row_json) < 2:
                raise
        # Of several bad members, report the one ovsdb-server meets first.
        order = {name: row_json[name] for name in ovs_order(list(row_json))}
        return self._parse_row_in(table, row_json, op, for_update, implicit, order)

    def _parse_row_in(self, table: TableSchema, row_json: dict, op: dict, for_update: bool,
                      implicit: bool, members: dict) -> dict[str, Datum]:
        data: dict[str, Datum] = {}
        immutable: list[str] = []
        for name, value in members.items():
            col = table.columns.get(name)
            if col is None and name in IMPLICIT:
                datum = datum_from_json(IMPLICIT[name].type, value, self.symtab)
                if implicit:
                    data[name] = datum
                immutable.append(name)
                continue
            if col is None:
                raise OvsdbError("unknown column", f"No column {name} in table {table.name}.",
                                 row_json, has_syntax=True)
            data[name] = datum_from_json(col.type, value, self.symtab)
            if not col.mutable:
                immutable.append(name)
        if for_update and immutable:  # once every value parsed, as ovsdb-server does
            raise OvsdbError(
                "constraint violation",
                f"Cannot update immutable column {immutable[0]} in table {table.name}.",
                op, has_syntax=True)
        return data

    def _matching(self, table: TableSchema, where: list) -> list[Row]:
        pinned_uuid = only_uuid_equality(where)
        if pinned_uuid is not None:  # the usual where-clause of ovs-vsctl and the IDLs
            row = self.txn.get(table.name, pinned_uuid)
            return [row] if row is not None else []
        cond = parse_condition(table, where, self.symtab)
        if cond.is_false:
            return []
        pinned = cond.uuid_equality()
        if pinned is not None:
            row = self.txn.get(table.name, pinned)
            return [row] if row is not None and cond.matches(row) else []
        return [r for r in self.txn.rows(table.name) if cond.matches(r)]

    # --- operations ----------------------------------------------------------
    def op_insert(self, p: OpParser, table: TableSchema) -> dict:
        given_uuid = p.get("uuid", (str,), optional=True)
        uuid_name = p.get("uuid-name", (str,), optional=True, ident=True)
        row_json = p.get("row", (dict,))
        p.finish()
        if given_uuid is not _MISSING:
            try:
                row_uuid = uuid.UUID(given_uuid)
            except ValueError:
                raise syntax_error(given_uuid, "bad uuid") from None
            if self.txn.exists_in(table.name, row_uuid):
                raise OvsdbError("duplicate uuid", "This UUID would duplicate a UUID "
                                 "already present within the table or deleted within "
                                 "the same transaction.", given_uuid, has_syntax=True)
        if uuid_name is not _MISSING:
            # Checked with or without a given uuid, as ovsdb-server does.
            if uuid_name in self.symtab.created:
                raise OvsdbError("duplicate uuid-name", 'This "uuid-name" appeared on an '
                                 'earlier "insert" operation.', uuid_name, has_syntax=True)
            if given_uuid is _MISSING:
                row_uuid = self.symtab.setdefault(uuid_name, uuid.uuid4())
        elif given_uuid is _MISSING:
            row_uuid = uuid.uuid4()
        if uuid_name is not _MISSING:
            self.symtab[uuid_name] = row_uuid
            self.symtab.created.add(uuid_name)
        data = default_data(table)
        given = self._parse_row(table, row_json, p.op, for_update=False)
        data.update(given)
        _check_defaults(table, data, given)
        self.txn.insert(table.name, Row(row_uuid, uuid.uuid4(), data))
        return {"uuid": ["uuid", str(row_uuid)]}

    def op_select(self, p: OpParser, table: TableSchema) -> dict:
        where = p.get("where", (list,))
        columns = p.get("columns", (list,), optional=True)
        p.finish()
        default = list(table.columns) + ["_uuid", "_version"]
        matching = self._matching(table, where)  # the where-clause is checked first
        names = parse_column_list(table, None if columns is _MISSING else columns, default)
        rows = [row_to_json(r, names) for r in matching]
        if "_uuid" not in names and len(rows) > 1:
            # Without _uuid, ovsdb-server returns each distinct row once.
            rows = list({_json_key(r): r for r in rows}.values())
        return {"rows": rows}

    def op_update(self, p: OpParser, table: TableSchema) -> dict:
        where = p.get("where", (list,))
        row_json = p.get("row", (dict,))
        p.finish()
        data = self._parse_row(table, row_json, p.op, for_update=True)
        rows = self._matching(table, where)
        for row in rows:
            new = dict(row.data)
            new.update(data)
            self.txn.put(table.name, Row(row.uuid, uuid.uuid4(), new))
        return {"count": len(rows)}

    def op_mutate(self, p: OpParser, table: TableSchema) -> dict:
        where = p.get("where", (list,))
        mutations_json = p.get("mutations", (list,))
        p.finish()
        mutations = [parse_mutation(table, m, self.symtab) for m in mutations_json]
        rows = self._matching(table, where)
        for row in rows:
            new = dict(row.data)
            for m in mutations:
                new[m.column.name] = m.apply(new[m.column.name])
            self.txn.put(table.name, Row(row.uuid, uuid.uuid4(), new))
        return {"count": len(rows)}

    def op_delete(self, p: OpParser, table: TableSchema) -> dict:
        where = p.get("where", (list,))
        p.finish()
        rows = self._matching(table, where)
        for row in rows:
            self.txn.delete(table.name, row.uuid)
        return {"count": len(rows)}

    def op_wait(self, p: OpParser, table: TableSchema) -> dict:
        timeout = p.get("timeout", (int,), optional=True)
        where = p.get("where", (list,))
        columns = p.get("columns", (list,), optional=True)
        until = p.get("until", (str,))
        rows_json = p.get("rows", (list,))
        p.finish()
        # Checked in ovsdb-server's order: where, columns, timeout, until, rows.
        matching = self._matching(table, where)
        # Without "columns", every column is compared, _uuid and _version too.
        names = parse_column_list(table, None if columns is _MISSING else columns,
                                  [*table.columns, "_uuid", "_version"])
        if timeout is not _MISSING and timeout < 0:
            raise syntax_error(timeout, "timeout must be nonnegative")
        if until not in ("==", "!="):
            raise syntax_error(until, '"until" must be "==" or "!="')
        if until == "==" and _rows_equal_as_sent(table, matching, names, rows_json):
            return {}
        # Rows compare as sets, as ovsdb-server's row hashes do: a row sent
        # twice counts once, and so do matching rows equal in these columns.
        expected: set = set()
        for r in rows_json:
            if not isinstance(r, dict):
                raise syntax_error(r, "row must be JSON object")
            # Members outside "columns" are parsed (and must be valid) but, as in
            # ovsdb-server, only the wait columns take part in the comparison.
            parsed = self._parse_row(table, r, p.op, for_update=False, implicit=True)
            full = {n: parsed.get(n) or default_datum(_col_type(table, n)) for n in names}
            expected.add(_row_key(full))
        actual = {_row_key({n: column_value(row, n) for n in names}) for row in matching}
        equal = expected == actual
        if equal == (until == "=="):
            return {}
        if timeout is _MISSING or self.elapsed_ms < timeout:
            raise WaitPending(float("inf") if timeout is _MISSING else timeout)
        if int(self.elapsed_ms):
            raise OvsdbError("timed out", f'"wait" timed out after {int(self.elapsed_ms)} ms')
        raise OvsdbError("timed out", '"where" clause test failed')

    def op_commit(self, p: OpParser, table: None) -> dict:
        durable = p.get("durable", (bool,))
        p.finish()
        self.outcome.durable = self.outcome.durable or durable
        return {}

    def op_abort(self, p: OpParser, table: None) -> dict:
        p.finish()
        raise OvsdbError("aborted", "aborted by request")

    def op_comment(self, p: OpParser, table: None) -> dict:
        comment = p.get("comment", (str,))
        p.finish()
        self.outcome.comments.append(comment)
        return {}

    def op_assert(self, p: OpParser, table: None) -> dict:
        lock = p.get("lock", (str,))
        p.finish()
        if lock not in self.held_locks:
            raise OvsdbError("not owner", f"Asserted lock {lock} not held.")
        return {}


def _check_defaults(table: TableSchema, data: dict[str, Datum], given: dict) -> None:
    """Defaults must meet the column's constraints too (an enum that does not
    contain "" or 0, a range that excludes 0); ovsdb-server checks every
    one-element value on insert, and given values were checked when parsed.
    Which defaults fail is a property of the schema, found once per table."""
    for name in _bad_defaults(table):
        if name not in given:
            _check_atoms(table.columns[name], data[name])


def _bad_defaults(table: TableSchema) -> list[str]:
    bad = getattr(table, "_ovsbpfd_bad_defaults", None)
    if bad is None:
        bad = []
        for name, col in table.columns.items():
            datum = default_datum(col.type)
            if len(datum.values) != 1:
                continue
            try:
                _check_atoms(col, datum)
            except ovs.db.error.Error:
                bad.append(name)
        table._ovsbpfd_bad_defaults = bad
    return bad


def _check_atoms(col: Any, datum: Datum) -> None:
    for key, value in datum.values.items():
        key.check_constraints(col.type.key)
        if value is not None:
            value.check_constraints(col.type.value)


def _rows_equal_as_sent(table: TableSchema, rows: list[Row], names: list[str],
                        rows_json: list) -> bool:
    """Whether the client echoed exactly the JSON the server would write for the
    one matching row (or expects none and there is none): then the wait holds
    without parsing a datum."""
    if len(rows) != len(rows_json) or len(rows) > 1:
        return False
    return not rows or row_matches_json(table, rows[0], names, rows_json[0])


def _json_key(value: Any) -> str:
    """A JSON value as a hashable key (true, 1 and 1.0 kept apart)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _row_key(data: dict[str, Datum]) -> frozenset:
    return frozenset((n, frozenset(d.values.items())) for n, d in data.items())


def _col_type(table: TableSchema, name: str) -> Any:
    col = table.columns.get(name) or IMPLICIT[name]
    return col.type


_HANDLERS = {
    "insert": Executor.op_insert,
    "select": Executor.op_select,
    "update": Executor.op_update,
    "mutate": Executor.op_mutate,
    "delete": Executor.op_delete,
    "wait": Executor.op_wait,
    "commit": Executor.op_commit,
    "abort": Executor.op_abort,
    "comment": Executor.op_comment,
    "assert": Executor.op_assert,
}
_WRITE_OPS = {"insert", "update", "mutate", "delete", "commit"}
_TABLE_OPS = {"insert", "select", "update", "mutate", "delete", "wait"}
