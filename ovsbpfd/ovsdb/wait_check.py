"""Deciding a "wait" operation without parsing it, when it plainly holds.

ovs-vsctl verifies every column it read by sending one wait per row
(`[["_uuid","==",U]]`, one column, `"until":"=="`, and the row as the server
sent it): an add-port on a bridge with N ports carries N+2 of them.  When the
client echoes exactly the JSON the server would write for that row, the wait
holds, and checking that takes one dict lookup and one comparison per column
instead of a parse of every datum.

Anything else (other spellings, missing members, defaults left out, a real
mismatch, bad input) returns None, and the operation takes the full path,
which produces every result and error ovsdb-server would.
"""

from __future__ import annotations

import uuid
from typing import Any

from ovs.db.schema import ColumnSchema, TableSchema
from ovs.db.types import StringType, UuidType

from .columns import IMPLICIT
from .database import Row
from .datum_json import parse_uuid_text, remembered_uuids


def only_uuid_equality(where: Any) -> uuid.UUID | None:
    """The uuid of a where-clause [["_uuid", "==", ["uuid", U]]], else None."""
    if (type(where) is list and len(where) == 1 and type(where[0]) is list
            and len(where[0]) == 3 and where[0][0] == "_uuid" and where[0][1] == "=="):
        arg = where[0][2]
        if type(arg) is list and len(arg) == 2 and arg[0] == "uuid" and type(arg[1]) is str:
            return parse_uuid_text(arg[1])
    return None


def wait_holds_as_sent(table: TableSchema, op: dict, get_row: Any) -> bool:
    """True when `op` (a wait on `table`) is well formed in the way ovs-vsctl
    and IDLs write it, and the row get_row(uuid) has exactly the sent values.
    False means "take the full path", never "the wait failed".  (Written out
    flat: ovs-vsctl sends one of these per port on every run.)

    The caller has checked that "op" is "wait" and "table" a string, so with
    "until", "columns", "rows" and "where" found here, six members (or seven
    with "timeout") means that there is no other member."""
    columns, rows, where = op.get("columns"), op.get("rows"), op.get("where")
    if (type(columns) is not list or type(rows) is not list or type(where) is not list
            or op.get("until") != "==" or len(where) != 1 or len(rows) > 1):
        return False
    members = len(op)
    if members != 6:
        timeout = op.get("timeout")
        if members != 7 or type(timeout) is not int or timeout < 0:
            return False
    clause = where[0]
    if type(clause) is not list or len(clause) != 3 or clause[0] != "_uuid" \
            or clause[1] != "==":
        return False
    arg = clause[2]
    if type(arg) is not list or len(arg) != 2 or arg[0] != "uuid" or type(arg[1]) is not str:
        return False
    row_uuid = parse_uuid_text(arg[1])
    if row_uuid is None:
        return False
    plain, known = _column_kinds(table)
    if len(columns) == 1:
        if type(columns[0]) is not str or columns[0] not in known:
            return False
    else:
        for name in columns:
            if type(name) is not str or name not in known:
                return False
        if len(set(columns)) != len(columns):
            return False
    row = get_row(table.name, row_uuid)
    if row is None or not rows:
        return row is None and not rows
    sent = rows[0]
    if type(sent) is not dict or len(sent) != len(columns):
        return False
    for name in columns:
        theirs = sent.get(name, _ABSENT)
        if theirs is _ABSENT:
            return False
        if name in plain:
            if theirs != row.json(name):
                return False
        elif not same_json(theirs, row.json(name)):
            return False
    return True


def row_matches_json(table: TableSchema, row: Row, names: list[str], sent: Any) -> bool:
    """Whether `sent` has exactly the members `names`, each spelled as the
    server writes that column of `row`."""
    if type(sent) is not dict or len(sent) != len(names):
        return False
    plain, _known = _column_kinds(table)
    for name in names:
        if name not in sent:
            return False
        ours = row.json(name)
        theirs = sent[name]
        if name in plain:
            if theirs != ours:
                return False
        elif not same_json(theirs, ours):
            return False
    return True


_ABSENT = object()


def _column_kinds(table: TableSchema) -> tuple[frozenset[str], frozenset[str]]:
    """(columns whose JSON holds only strings and arrays, every column name
    including _uuid and _version).  For the first, Python's == is exact (a str
    equals only a str), with no true == 1 == 1.0 to fear."""
    kinds = getattr(table, "_ovsbpfd_column_kinds", None)
    if kinds is None:
        columns: dict[str, ColumnSchema] = {**table.columns, **IMPLICIT}
        plain = set()
        for name, col in columns.items():
            types = {col.type.key.type}
            if col.type.value is not None:
                types.add(col.type.value.type)
            if types <= {StringType, UuidType}:
                plain.add(name)
        kinds = table._ovsbpfd_column_kinds = (frozenset(plain), frozenset(columns))
    return kinds


def same_json(a: Any, b: Any) -> bool:
    """JSON equality where true is not 1 and 1 is not 1.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return a == b


def holding_waits_end(db: Any, txn: Any, ops: list, start: int) -> int:
    """The index of the first operation at or after `start` that is not a wait
    wait_holds_as_sent accepts (len(ops) if all are): the operations in
    between hold, each with result {}.

    A loop over the run of waits ovs-vsctl sends (one per port), the table
    looked up once per run.  Each wait is compared in one C call with the
    exact wait ovs-vsctl writes for the row it names (one plain column,
    timeout 0, the row as the server wrote it): a template per column,
    refilled with the row's uuid text and value, so nothing is built per
    wait.  Only if that fails does it take wait_holds_as_sent, which gives
    the same answer for every other spelling."""
    tables = db.schema.parsed.tables
    written_tables = txn.written
    uuids = remembered_uuids()
    get_row = txn.get
    table_name: Any = None
    table: Any = None
    plain: frozenset[str] = frozenset()
    committed_by_text: dict = {}
    templates: dict[str, _WaitTemplate] = {}
    end = len(ops)
    i = start
    while i < end:
        op = ops[i]
        if type(op) is not dict or op.get("op") != "wait":
            return i
        name = op.get("table")
        if name != table_name or type(name) is not str:
            table = tables.get(name) if type(name) is str else None
            if table is None:
                return i
            table_name = name
            plain = _column_kinds(table)[0]
            committed_by_text = db.by_text[name]
            templates = {}
        try:
            text = op["where"][0][2][1]
            column = op["columns"][0]
            if column not in plain:
                row = None
            elif name not in written_tables:
                row = committed_by_text.get(text)
            else:
                row = get_row(name, uuids[text])
        except (KeyError, IndexError, TypeError):
            row = None
        if row is not None:
            try:
                ours = row.memo[column]
            except (KeyError, TypeError):
                ours = row.json(column)
            template = templates.get(column)
            if template is None:
                template = templates[column] = _WaitTemplate(name, column)
            template.uuid[1] = text
            template.row[column] = ours
            if op == template.op and type(op["timeout"]) is int:
                i += 1
                continue
        if not wait_holds_as_sent(table, op, get_row):
            return i
        i += 1
    return i


class _WaitTemplate:
    """The wait ovs-vsctl sends to verify one column of a row, with the
    row's uuid text and value left to fill in.  A plain column's JSON holds
    only strings and arrays, so Python's == on the whole operation is JSON
    equality, except for the timeout (0 == 0.0 == False), whose type the
    caller checks."""

    __slots__ = ("op", "uuid", "row")

    def __init__(self, table: str, column: str) -> None:
        self.uuid: list[Any] = ["uuid", None]
        self.row: dict[str, Any] = {column: None}
        self.op = {"op": "wait", "table": table, "timeout": 0, "until": "==",
                   "where": [["_uuid", "==", self.uuid]], "columns": [column],
                   "rows": [self.row]}
