"""Column lookup shared by conditions, mutations and selects, including the
implicit _uuid and _version columns every table has."""

from __future__ import annotations

from typing import Any

from ovs.db.data import Atom, Datum
from ovs.db.schema import ColumnSchema, TableSchema
from ovs.db.types import BaseType, Type, UuidType

from .database import Row
from .errors import OvsdbError, syntax_error

_UUID_TYPE = Type(BaseType(UuidType))
UUID_COLUMN = ColumnSchema("_uuid", False, True, _UUID_TYPE)
VERSION_COLUMN = ColumnSchema("_version", False, True, _UUID_TYPE)
IMPLICIT = {"_uuid": UUID_COLUMN, "_version": VERSION_COLUMN}


def find_column(table: TableSchema, name: Any, syntax: Any) -> ColumnSchema:
    """Look a column up by name, with ovsdb-server's "unknown column" error."""
    if not isinstance(name, str):
        raise syntax_error(syntax, "Parse error in condition.")
    col = table.columns.get(name) or IMPLICIT.get(name)
    if col is None:
        raise OvsdbError("unknown column", f"No column {name} in table {table.name}.",
                         syntax, has_syntax=True)
    return col


def column_value(row: Row, name: str) -> Datum:
    if name == "_uuid":
        return Datum(_UUID_TYPE, {Atom(UuidType, row.uuid): None})
    if name == "_version":
        return Datum(_UUID_TYPE, {Atom(UuidType, row.version): None})
    return row.data[name]


def parse_column_list(table: TableSchema, columns: Any, default: list[str]) -> list[str]:
    """Parse a "columns" member: a list of existing column names."""
    if columns is None:
        return default
    if not isinstance(columns, list):
        raise syntax_error(columns, "array expected")
    seen: set[str] = set()
    for name in columns:  # in order: the first bad element decides the error
        if not isinstance(name, str) or name in seen:
            raise syntax_error(columns, "array of distinct column names expected")
        if name not in table.columns and name not in IMPLICIT:
            raise syntax_error(columns, f"{name} is not a valid column name")
        seen.add(name)
    return columns


def type_to_english(t: Type) -> str:
    """A type in words as ovsdb-server writes it in errors ("set of up to 1
    strings", "map of (string, string) pairs"); python-ovs words it otherwise."""
    key = t.key.type.to_string()
    if t.is_scalar():
        return key
    kind = "map" if t.is_map() else "set"
    if t.n_max >= UNLIMITED:
        quantity = f" of {t.n_min} or more" if t.n_min else " of"
    elif t.n_min:
        quantity = f" of {t.n_min} to {t.n_max}"
    else:
        quantity = f" of up to {t.n_max}"
    if t.is_map():
        return f"{kind}{quantity} ({key}, {t.value.type.to_string()}) pairs"
    return f"{kind}{quantity} {key}s"


UNLIMITED = 4294967295  # ovsdb-server's "unlimited" (UINT_MAX)


def resized(t: Type, n_min: int, n_max: int) -> Type:
    """The same key/value types with other size bounds (python-ovs's copy() breaks
    on bases without an enum, and base types are never modified, so share them)."""
    return Type(t.key, t.value, n_min, n_max)
