"""A transaction's working copy of the database and the checks run at commit.

The order of the commit checks follows ovsdb-server, because it decides which
error a client sees: reference integrity, garbage collection, row limits, weak
references, then index uniqueness.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

from ovs.db.data import Datum
from ovs.db.schema import TableSchema

from .database import Database, Row, index_key, strong_ref_changes, weak_ref_columns
from .errors import OvsdbError

Change = tuple[Row | None, Row | None]
ChangeSet = dict[str, dict[uuid.UUID, Change]]


class Transaction:
    """Copy-on-write view of a Database: reads fall through, writes stay local."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # table -> uuid -> new row (None = deleted), only for touched rows.
        self.written: dict[str, dict[uuid.UUID, Row | None]] = {}
        self.inserted: set[uuid.UUID] = set()
        # (table, uuid) of the rows whose weak references the commit dropped:
        # modified, for ovsdb-server, even if that undid the only change.
        self.weak_fixed: set[tuple[str, uuid.UUID]] = set()

    # --- reading ---------------------------------------------------------
    def rows(self, table: str) -> Iterator[Row]:
        written = self.written.get(table)
        committed = self.db.tables[table]
        if not written:
            yield from list(committed.values())
            return
        for row_uuid, row in list(committed.items()):
            if row_uuid in written:
                new = written[row_uuid]
                if new is not None:
                    yield new
            else:
                yield row
        for row_uuid, new in list(written.items()):
            if new is not None and row_uuid not in committed:
                yield new

    def get(self, table: str, row_uuid: uuid.UUID) -> Row | None:
        written = self.written.get(table)
        if written is not None and row_uuid in written:
            return written[row_uuid]
        return self.db.tables[table].get(row_uuid)

    def exists_in(self, table: str, row_uuid: uuid.UUID) -> bool:
        """True if the uuid names a row of this table, committed, inserted or
        deleted here (ovsdb-server lets two tables share a uuid)."""
        return row_uuid in self.db.tables[table] or row_uuid in self.written.get(table, {})

    # --- writing ---------------------------------------------------------
    def put(self, table: str, row: Row) -> None:
        self.written.setdefault(table, {})[row.uuid] = row

    def insert(self, table: str, row: Row) -> None:
        self.inserted.add(row.uuid)
        self.put(table, row)

    def delete(self, table: str, row_uuid: uuid.UUID) -> None:
        written = self.written.get(table)
        if written is not None and row_uuid in written \
                and row_uuid not in self.db.tables[table]:
            # Inserted and deleted here: gone without a trace, so that a
            # later insert may take its uuid again (as in ovsdb-server).
            del written[row_uuid]
            return
        self.written.setdefault(table, {})[row_uuid] = None

    # --- commit ----------------------------------------------------------
    def changes(self) -> ChangeSet:
        """Per table: uuid -> (old, new), dropping rows that did not change."""
        out: ChangeSet = {}
        for table, rows in self.written.items():
            committed = self.db.tables[table]
            for row_uuid, new in rows.items():
                old = committed.get(row_uuid)
                if old is None and new is None:
                    continue
                if old is not None and new is not None and old.data == new.data \
                        and (table, row_uuid) not in self.weak_fixed:
                    continue  # (as ovsdb-server, a change the weak-reference
                    # clean-up undid still gives the row a new _version)
                out.setdefault(table, {})[row_uuid] = (old, new)
        return out

    def check(self) -> ChangeSet:
        """Run the commit-time checks, fixing up weak refs and collecting garbage."""
        schema = self.db.schema.parsed
        self._check_strong_refs(schema.tables)
        self._collect_garbage(schema.tables)
        self._check_max_rows(schema.tables)
        self._drop_weak_refs(schema.tables)
        changes = self.changes()
        self._check_indexes(schema.tables, changes)
        return changes

    def _final_refcounts(self, tables: dict[str, TableSchema]) -> dict[uuid.UUID, int]:
        """Strong reference counts after this transaction (only changed targets)."""
        delta: dict[uuid.UUID, int] = {}
        for table, (old, new) in self._iter_changes():
            for _c, target, _t, d in strong_ref_changes(tables[table], old, new):
                delta[target] = delta.get(target, 0) + d
        return {u: self.db.refcount.get(u, 0) + d for u, d in delta.items()}

    def _iter_changes(self) -> Iterator[tuple[str, Change]]:
        for table, rows in self.written.items():
            committed = self.db.tables[table]
            for row_uuid, new in rows.items():
                yield table, (committed.get(row_uuid), new)

    def _check_strong_refs(self, tables: dict[str, TableSchema]) -> None:
        for table, (old, new) in self._iter_changes():
            if new is None:
                continue
            for col, target, target_table, d in strong_ref_changes(tables[table], old, new):
                if d < 0:
                    continue
                # A committed row deleted by this transaction still counts as
                # existing here: ovsdb-server reports it below as "cannot delete".
                if not self._exists_here(target_table, target):
                    target, target_table = self._first_dangling(tables[table], new, col)
                    raise OvsdbError(
                        "referential integrity violation",
                        f"Table {table} column {col} row {new.uuid} references "
                        f"nonexistent row {target} in table {target_table}.")
        counts = self._final_refcounts(tables)
        for table, rows in self.written.items():
            for row_uuid, new in rows.items():
                if new is None and row_uuid in self.db.tables[table]:
                    n = counts.get(row_uuid, self.db.refcount.get(row_uuid, 0))
                    if n > 0:
                        raise OvsdbError(
                            "referential integrity violation",
                            f"cannot delete {table} row {row_uuid} because of "
                            f"{n} remaining reference(s)")

    def _exists_here(self, table: str, row_uuid: uuid.UUID) -> bool:
        """A row of the transaction or a committed one (a committed row this
        transaction deletes is reported as "cannot delete" instead)."""
        return self.get(table, row_uuid) is not None or row_uuid in self.db.tables[table]

    def _first_dangling(self, ts: TableSchema, row: Row, column: str
                        ) -> tuple[uuid.UUID, str]:
        """The missing target ovsdb-server names: it checks a column's keys,
        then its values, in the datum's (sorted) order."""
        col = ts.columns[column]
        pairs = sorted(row.data[column].values.items(), key=lambda kv: _atom_order(kv[0]))
        for base, pick in ((col.type.key, 0), (col.type.value, 1)):
            if base is None or not base.is_strong_ref():
                continue
            for pair in pairs:
                target = pair[pick].value
                if not self._exists_here(base.ref_table_name, target):
                    return target, base.ref_table_name
        raise AssertionError("no dangling reference")

    def _collect_garbage(self, tables: dict[str, TableSchema]) -> None:
        while True:
            counts = self._final_refcounts(tables)
            doomed = []
            for table, (_old, new) in self._iter_changes():
                if new is not None and not tables[table].is_root:
                    if counts.get(new.uuid, self.db.refcount.get(new.uuid, 0)) <= 0:
                        doomed.append((table, new.uuid))
            for row_uuid, n in counts.items():
                if n <= 0:
                    for table, rows in self.db.tables.items():
                        if row_uuid in rows and not tables[table].is_root:
                            if self.get(table, row_uuid) is not None:
                                doomed.append((table, row_uuid))
            if not doomed:
                return
            for table, row_uuid in doomed:
                self.delete(table, row_uuid)

    def _check_max_rows(self, tables: dict[str, TableSchema]) -> None:
        for table, rows in self.written.items():
            limit = tables[table].max_rows
            if limit >= (1 << 31):
                continue
            committed = self.db.tables[table]
            n = len(committed)
            for row_uuid, new in rows.items():
                if new is None and row_uuid in committed:
                    n -= 1
                elif new is not None and row_uuid not in committed:
                    n += 1
            if n > limit:
                raise OvsdbError(
                    "constraint violation",
                    f'transaction causes "{table}" table to contain {n} rows, '
                    f"greater than the schema-defined limit of {limit} row(s)")

    def _drop_weak_refs(self, tables: dict[str, TableSchema]) -> None:
        touched_tables = {t for t, rows in self.written.items()
                          if any(r is None for r in rows.values())}
        for table, ts in tables.items():
            weak_cols = weak_ref_columns(ts)
            if not weak_cols:
                continue
            candidates: list[Row] = []
            targets = {c.type.key.ref_table_name for c in weak_cols} | {
                c.type.value.ref_table_name for c in weak_cols if c.type.value is not None}
            if targets & touched_tables:
                candidates = list(self.rows(table))
            else:
                candidates = [r for r in self.written.get(table, {}).values() if r is not None]
            for row in candidates:
                fixed = self._without_dangling(ts, row, weak_cols)
                if fixed is not None:
                    self.put(table, fixed)
                    self.weak_fixed.add((table, row.uuid))

    def _without_dangling(self, ts: TableSchema, row: Row, weak_cols: list) -> Row | None:
        new_data = None
        for col in weak_cols:
            datum = row.data[col.name]
            key, value = col.type.key, col.type.value
            keep = {}
            for k, v in datum.values.items():
                if key.is_weak_ref() and self.get(key.ref_table_name, k.value) is None:
                    continue
                if (value is not None and value.is_weak_ref()
                        and self.get(value.ref_table_name, v.value) is None):
                    continue
                keep[k] = v
            if len(keep) != len(datum.values):
                if len(keep) < col.type.n_min:
                    raise OvsdbError("constraint violation",
                                     self._weak_min_message(ts, row, col, datum, keep))
                if new_data is None:
                    new_data = dict(row.data)
                new_data[col.name] = Datum(datum.type, keep)
        if new_data is None:
            return None
        return Row(row.uuid, row.version, new_data)

    def _weak_min_message(self, ts: TableSchema, row: Row, col: Any, datum: Datum,
                          keep: dict) -> str:
        """ovsdb-server's words for a weak reference column left below its
        minimum, naming the all-zeros uuid (a default) in a new row."""
        new_row = row.uuid not in self.db.tables[ts.name]
        if new_row and _dangling_zero(col, datum, keep):
            return (f'Weak reference column "{col.name}" in "{ts.name}" row {row.uuid} '
                    "(inserted within this transaction) contained all-zeros UUID "
                    "(probably as the default value for this column) but deleting this "
                    "value caused a constraint volation because this column is not "
                    "allowed to be empty.")
        where = " (inserted within this transaction)" if new_row else ""
        return (f"Deletion of {len(datum.values) - len(keep)} weak reference(s) to deleted "
                f'(or never-existing) rows from column "{col.name}" in "{ts.name}" '
                f"row {row.uuid}{where} caused this column to become empty, but "
                "constraints on this column disallow an empty column.")

    def _check_indexes(self, tables: dict[str, TableSchema], changes: ChangeSet) -> None:
        """Uniqueness of every index, looking only at the rows this transaction
        changed and the committed index maps (no table scan)."""
        for table, rows in changes.items():
            indexes = self.db.indexes[table]
            if not indexes.columns:
                continue
            changed = {u: new for u, (_o, new) in rows.items() if new is not None}
            for names, committed_keys in zip(indexes.columns, indexes.maps, strict=True):
                seen: dict[tuple, Row] = {}
                for row in changed.values():
                    key = index_key(row, names)
                    other = seen.get(key)
                    if other is None:
                        holder = committed_keys.get(key)
                        if holder is not None and holder != row.uuid and holder not in rows:
                            other = self.db.tables[table][holder]
                    if other is not None:
                        raise OvsdbError("constraint violation",
                                         self._index_message(table, names, row, other, changed))
                    seen[key] = row

    def _index_message(self, table: str, names: list[str], a: Row, b: Row,
                       changed: dict) -> str:
        values = _english_list([_datum_text(a.data[n]) for n in names])
        cols = ("column " if len(names) == 1 else "columns ") + \
            _english_list([f'"{n}"' for n in names])
        # ovsdb-server names the row that was already there first.
        first, second = (b, a) if a.uuid in changed and b.uuid not in changed else (a, b)
        if first.uuid in changed and second.uuid not in changed:
            first, second = second, first
        return (f'Transaction causes multiple rows in "{table}" table to have identical '
                f"values ({values}) for index on {cols}.  "
                f"First row, with UUID {first.uuid}, "
                f"{self._provenance(table, first, names)}.  "
                f"Second row, with UUID {second.uuid}, "
                f"{self._provenance(table, second, names)}.")

    def _provenance(self, table: str, row: Row, names: list[str]) -> str:
        old = self.db.tables[table].get(row.uuid)
        if old is None:
            return "was inserted by this transaction"
        if (old is row or old.data == row.data) and (table, row.uuid) not in self.weak_fixed:
            return "existed in the database before this transaction and was not modified " \
                   "by the transaction"
        if index_key(old, names) == index_key(row, names):
            return "existed in the database before this transaction, which modified some " \
                   "of the row's columns but not any columns in this index"
        before = _english_list([_datum_text(old.data[n]) for n in names])
        return f"had the following index values before the transaction: {before}"


def _atom_order(atom: Any) -> Any:
    """An atom's place in a datum, as OVS sorts them (a uuid by its value)."""
    value = atom.value
    return value.int if isinstance(value, uuid.UUID) else value


def _dangling_zero(col: Any, datum: Datum, keep: dict) -> bool:
    """Whether a weak reference dropped from datum was the all-zeros uuid."""
    zero = uuid.UUID(int=0)
    for k, v in datum.values.items():
        if k in keep:
            continue
        if (col.type.key.is_weak_ref() and k.value == zero) or (
                v is not None and col.type.value.is_weak_ref() and v.value == zero):
            return True
    return False


def _english_list(items: list[str]) -> str:
    """a; a and b; a, b and c."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _atom_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if _BARE.match(value) and value not in ("true", "false") \
            else json.dumps(value)
    return str(value)


def _datum_text(datum: Datum) -> str:
    """A datum as ovsdb-server prints it in error messages."""
    parts = []
    for k, v in sorted(datum.values.items()):
        parts.append(_atom_text(k.value) if v is None
                     else f"{_atom_text(k.value)}={_atom_text(v.value)}")
    if datum.type.n_max == 1 and len(parts) == 1 and not datum.type.is_map():
        return parts[0]
    return ("{%s}" if datum.type.is_map() else "[%s]") % ", ".join(parts)
