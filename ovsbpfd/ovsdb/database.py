"""In-memory contents of one database: tables of rows, plus strong-reference counts.

Rows are never changed in place; a transaction builds new Row objects and the
database swaps them in at commit, so readers and monitors can keep old ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from ovs.db.data import Atom, Datum
from ovs.db.schema import ColumnSchema, TableSchema
from ovs.db.types import Type, UuidType

from .datum_json import datum_to_json, ordered_difference, shares_remembered_atoms, uuid_text
from .schema import Schema

# Sets and maps with more elements than this have their JSON remembered
# whenever it is written (Row.json_once).
_REMEMBERED_FROM = 8


class Row:
    """One row: its identity, version and a Datum per schema column.

    Rows never change, so what is derived from one can be kept on it (memo):
    the JSON of the columns ovs-vsctl verifies on every run, and the encoded
    entry each kind of monitor sends for it in an initial dump.  Everything
    else is computed when asked and not kept, which keeps a big database's
    memory close to that of its datums."""

    __slots__ = ("uuid", "version", "data", "memo", "atoms")

    def __init__(self, row_uuid: uuid.UUID, version: uuid.UUID, data: dict[str, Datum]):
        self.uuid = row_uuid
        self.version = version
        self.data = data
        self.memo: dict[Any, Any] | None = None
        self.atoms: int | None = None  # row_atoms(self), once asked

    def get(self, column: str) -> Datum:
        return self.data[column]

    def cached(self, key: Any, compute: Any) -> Any:
        """compute(), remembered on the row under key."""
        memo = self.memo
        if memo is None:
            memo = self.memo = {}
        value = memo.get(key)
        if value is None:
            value = memo[key] = compute()
        return value

    def json(self, column: str) -> Any:
        """A column's value (or _uuid, _version) as JSON, remembered."""
        memo = self.memo
        if memo is None:
            memo = self.memo = {}
        value = memo.get(column)
        if value is None:
            value = memo[column] = self._column_json(column)
        return value

    def json_once(self, column: str) -> Any:
        """json(column), from the memo if there, else without remembering it,
        unless it is a big set or map: those (a bridge's ports) are what a
        new client's dump and then its waits both ask for, and few."""
        memo = self.memo
        if memo is not None:
            value = memo.get(column)
            if value is not None:
                return value
        value = self._column_json(column)
        datum = self.data.get(column)
        if datum is not None and len(datum.values) > _REMEMBERED_FROM:
            if memo is None:
                memo = self.memo = {}
            memo[column] = value
        return value

    def _column_json(self, column: str) -> Any:
        if column == "_uuid":
            return ["uuid", uuid_text(self.uuid)]
        if column == "_version":
            return ["uuid", str(self.version)]
        return datum_to_json(self.data[column])


def uuid_datum(value: uuid.UUID) -> Datum:
    from ovs.db.types import BaseType, Type

    return Datum(Type(BaseType(UuidType)), {Atom(UuidType, value): None})


_ATOM_DEFAULTS = {"integer": 0, "real": 0.0, "boolean": False, "string": "",
                  "uuid": uuid.UUID(int=0)}


def default_datum(t: Type) -> Datum:
    """The default value of a type (python-ovs's Datum.default nests Atoms in Atoms).
    Datums are never modified, so each type's default is built once."""
    cached = getattr(t, "_ovsbpfd_default", None)
    if cached is None:
        cached = _build_default(t)
        t._ovsbpfd_default = cached
    return cached


def _build_default(t: Type) -> Datum:
    if t.n_min == 0:
        return Datum(t, {})
    key = Atom(t.key.type, _ATOM_DEFAULTS[t.key.type.to_string()])
    value = None
    if t.value is not None:
        value = Atom(t.value.type, _ATOM_DEFAULTS[t.value.type.to_string()])
    return Datum(t, {key: value})


def is_default(datum: Datum) -> bool:
    t = datum.type
    if t.n_min == 0:
        return not datum.values
    if len(datum.values) != 1:
        return False
    return datum.values == default_datum(t).values


def row_atoms(row: Row) -> int:
    """How many atoms (set elements or map pairs) a row holds, as OVS counts
    them; remembered on the row, which the commit (old and new version) and
    the history both weigh."""
    count = row.atoms
    if count is None:
        count = row.atoms = sum(len(d.values) for d in row.data.values())
    return count


def default_data(table: TableSchema) -> dict[str, Datum]:
    """A new dict of every column's default datum (the caller may change the
    dict, never the datums); built once per table, copied in C after that."""
    defaults = getattr(table, "_ovsbpfd_default_data", None)
    if defaults is None:
        defaults = {name: default_datum(col.type) for name, col in table.columns.items()}
        table._ovsbpfd_default_data = defaults
    return dict(defaults)


def strong_refs(table: TableSchema, row: Row) -> Iterator[tuple[str, uuid.UUID, str]]:
    """Yield (column, referenced uuid, referenced table) for every strong reference."""
    for name, col in table.columns.items():
        yield from _refs_of(col, row.data[name], strong=True)


RefChange = tuple[str, uuid.UUID, str, int]
_RECENT_REF_CHANGES: dict[tuple[int, int], tuple[Row | None, Row | None, tuple]] = {}
_RECENT_MAX = 1 << 12


def strong_ref_changes(table: TableSchema, old: Row | None, new: Row | None
                       ) -> tuple[RefChange, ...]:
    """(column, target, target table, -1 or +1) for the strong references that
    differ between two versions of a row (either may be None).  Columns a
    modification left alone are skipped, and a set of references that changed
    yields only its difference, so adding one port to a bridge with N ports
    costs one change, not 2N.

    A commit asks this of each changed row several times (the reference
    check, each garbage collection pass, the install), so the last few
    answers are remembered by the identity of the two rows (rows never
    change; the memo holds them, so their ids are not reused meanwhile)."""
    key = (id(old), id(new))
    hit = _RECENT_REF_CHANGES.get(key)
    if hit is not None and hit[0] is old and hit[1] is new:
        return hit[2]
    changes = tuple(_strong_ref_changes(table, old, new))
    if len(_RECENT_REF_CHANGES) >= _RECENT_MAX:
        _RECENT_REF_CHANGES.clear()
    _RECENT_REF_CHANGES[key] = (old, new, changes)
    return changes


def _strong_ref_changes(table: TableSchema, old: Row | None, new: Row | None
                        ) -> Iterator[RefChange]:
    for col in _strong_ref_columns(table):
        before = old.data[col.name] if old is not None else None
        after = new.data[col.name] if new is not None else None
        if before is after:
            continue
        if before is not None and after is not None and col.type.value is None:
            yield from _ref_set_changes(col, before, after)
            continue
        if before is not None:
            for name, target, target_table in _refs_of(col, before, strong=True):
                yield name, target, target_table, -1
        if after is not None:
            for name, target, target_table in _refs_of(col, after, strong=True):
                yield name, target, target_table, +1


def _ref_set_changes(col: ColumnSchema, before: Datum, after: Datum
                     ) -> Iterator[RefChange]:
    """The references a set column lost (-1) and gained (+1), in the order
    of each datum.  Parsed sets share the committed set's Atoms (datum_json),
    so the two compare as sets built from the dicts' stored hashes, each
    element found by identity; sets with Atoms of their own (read from the
    log) are compared by the uuids' integers, which hash in C."""
    if shares_remembered_atoms(before) and shares_remembered_atoms(after):
        lost, gained = ordered_difference(before, after), ordered_difference(after, before)
    else:
        had_ints = {k.value.int for k in before.values}
        has_ints = {k.value.int for k in after.values}
        if had_ints == has_ints:
            return
        lost = [k for k in before.values if k.value.int not in has_ints]
        gained = [k for k in after.values if k.value.int not in had_ints]
    name, target_table = col.name, col.type.key.ref_table_name
    for k in lost:
        yield name, k.value, target_table, -1
    for k in gained:
        yield name, k.value, target_table, +1


def _strong_ref_columns(table: TableSchema) -> list[ColumnSchema]:
    cols = getattr(table, "_ovsbpfd_strong_cols", None)
    if cols is None:
        cols = [c for c in table.columns.values()
                if c.type.key.is_strong_ref()
                or (c.type.value is not None and c.type.value.is_strong_ref())]
        table._ovsbpfd_strong_cols = cols
    return cols


def weak_ref_columns(table: TableSchema) -> list[ColumnSchema]:
    cols = getattr(table, "_ovsbpfd_weak_cols", None)
    if cols is None:
        cols = [c for c in table.columns.values()
                if (c.type.key.is_weak_ref()
                    or (c.type.value is not None and c.type.value.is_weak_ref()))]
        table._ovsbpfd_weak_cols = cols
    return cols


def _refs_of(col: ColumnSchema, datum: Datum, strong: bool):
    key, value = col.type.key, col.type.value
    key_ref = key.is_strong_ref() if strong else key.is_weak_ref()
    value_ref = value is not None and (value.is_strong_ref() if strong else value.is_weak_ref())
    if not key_ref and not value_ref:
        return
    for k, v in datum.values.items():
        if key_ref:
            yield col.name, k.value, key.ref_table_name
        if value_ref and v is not None:
            yield col.name, v.value, value.ref_table_name


def index_key(row: Row, columns: list[str]) -> tuple:
    """The value a row has for one index: its columns' contents, hashable."""
    return tuple(frozenset(row.data[c].values.items()) for c in columns)


class TableIndexes:
    """Each index of one table as a dict from key to the committed row's uuid,
    kept up to date on every apply, so commits check uniqueness without a scan."""

    def __init__(self, ts: TableSchema) -> None:
        self.columns = [[c.name for c in index] for index in ts.indexes]
        self.maps: list[dict[tuple, uuid.UUID]] = [{} for _ in self.columns]

    def add(self, row: Row) -> None:
        for cols, keys in zip(self.columns, self.maps, strict=True):
            keys[index_key(row, cols)] = row.uuid

    def remove(self, row: Row) -> None:
        for cols, keys in zip(self.columns, self.maps, strict=True):
            key = index_key(row, cols)
            if keys.get(key) == row.uuid:
                del keys[key]


class Database:
    """The committed state of one database."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.tables: dict[str, dict[uuid.UUID, Row]] = {
            name: {} for name in schema.parsed.tables
        }
        # uuid -> number of strong references to that row from any row.
        self.refcount: dict[uuid.UUID, int] = {}
        self.n_atoms = 0
        self.indexes = {name: TableIndexes(ts) for name, ts in schema.parsed.tables.items()}
        # The same rows keyed by their uuids' text, for lookups of a uuid as a
        # client writes it (ovs-vsctl's waits): a str hashes in C, a UUID not.
        self.by_text: dict[str, dict[str, Row]] = {name: {} for name in self.tables}
        # Per table, a number that changes whenever a commit modifies or
        # deletes a row of it: while it stays, the table only grew at its end
        # (inserted rows), which lets a monitor's encoded initial dump of the
        # whole table be extended instead of rebuilt (monitor.py keeps those,
        # here, under (table, entry kind)).
        self.rewrites: dict[str, int] = dict.fromkeys(self.tables, 0)
        self.initial_dumps: dict[tuple[str, str], tuple[int, int, bytes]] = {}

    @property
    def name(self) -> str:
        return self.schema.name

    def table_schema(self, name: str) -> TableSchema:
        return self.schema.parsed.tables[name]

    def apply(self, changes: dict[str, dict[uuid.UUID, tuple[Row | None, Row | None]]]) -> None:
        """Install a checked change set: per table, uuid -> (old, new)."""
        for table_name, rows in changes.items():
            table = self.tables[table_name]
            by_text = self.by_text[table_name]
            ts = self.table_schema(table_name)
            indexes = self.indexes[table_name]
            rewritten = False
            for row_uuid, (old, new) in rows.items():
                for _col, target, _table, delta in strong_ref_changes(ts, old, new):
                    n = self.refcount.get(target, 0) + delta
                    if n:
                        self.refcount[target] = n
                    else:
                        self.refcount.pop(target, None)
                if old is not None or row_uuid in table:
                    rewritten = True
                if old is not None:
                    self.n_atoms -= row_atoms(old)
                    indexes.remove(old)
                if new is None:
                    table.pop(row_uuid, None)
                    by_text.pop(uuid_text(row_uuid), None)
                else:
                    table[row_uuid] = new
                    by_text[uuid_text(row_uuid)] = new
                    self.n_atoms += row_atoms(new)
                    indexes.add(new)
            if rewritten:
                self.rewrites[table_name] += 1
