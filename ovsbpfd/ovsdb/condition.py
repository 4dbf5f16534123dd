"""Where-clauses (RFC 7047 section 5.1 conditions) for transactions and monitors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import ovs.db.error
from ovs.db.data import Datum
from ovs.db.schema import TableSchema
from ovs.db.types import IntegerType, RealType, Type

from .columns import column_value, find_column, resized, type_to_english
from .database import Row
from .datum_json import datum_from_json
from .errors import OvsdbError, syntax_error

ORDERING = {"<", "<=", ">", ">="}
FUNCTIONS = ORDERING | {"==", "!=", "includes", "excludes"}


def _pairs(d: Datum) -> set:
    return set(d.values.items())


def _includes(col: Datum, arg: Datum) -> bool:
    return _pairs(arg) <= _pairs(col)


def _excludes(col: Datum, arg: Datum) -> bool:
    return not (_pairs(arg) & _pairs(col))


def _scalar(d: Datum) -> Any:
    return next(iter(d.values)).value


_TESTS: dict[str, Callable[[Datum, Datum], bool]] = {
    "==": lambda c, a: c.values == a.values,
    "!=": lambda c, a: c.values != a.values,
    "includes": _includes,
    "excludes": _excludes,
    "<": lambda c, a: _scalar(c) < _scalar(a),
    "<=": lambda c, a: _scalar(c) <= _scalar(a),
    ">": lambda c, a: _scalar(c) > _scalar(a),
    ">=": lambda c, a: _scalar(c) >= _scalar(a),
}


class Clause:
    __slots__ = ("column", "function", "arg", "const")

    def __init__(self, column: str | None, function: str | None, arg: Datum | None,
                 const: bool | None = None) -> None:
        self.column = column
        self.function = function
        self.arg = arg
        self.const = const

    def matches(self, row: Row) -> bool:
        if self.const is not None:
            return self.const
        return _TESTS[self.function](column_value(row, self.column), self.arg)


class Condition:
    """A conjunction of clauses; empty matches every row."""

    def __init__(self, clauses: list[Clause]) -> None:
        self.clauses = clauses

    def matches(self, row: Row) -> bool:
        return all(c.matches(row) for c in self.clauses)

    def key(self) -> tuple:
        """A hashable description of the condition, for sharing work between
        monitors that ask for the same thing."""
        return tuple((c.column, c.function, c.const,
                      None if c.arg is None else json.dumps(c.arg.to_json(), sort_keys=True))
                     for c in self.clauses)

    @property
    def is_true(self) -> bool:
        return all(c.const is True for c in self.clauses)

    @property
    def is_false(self) -> bool:
        return any(c.const is False for c in self.clauses)

    def uuid_equality(self) -> Any:
        """If the condition pins _uuid to one value, return it (fast lookup)."""
        for c in self.clauses:
            if c.column == "_uuid" and c.function == "==":
                return _scalar(c.arg)
        return None


def parse_clause(table: TableSchema, clause: Any, symtab: Any = None) -> Clause:
    if isinstance(clause, bool):
        return Clause(None, None, None, clause)
    if not isinstance(clause, list) or len(clause) != 3 or not isinstance(clause[1], str):
        raise syntax_error(clause, "Parse error in condition.")
    name, function, value = clause
    col = find_column(table, name, clause)
    if function not in FUNCTIONS:
        raise OvsdbError("unknown function", f"No function named {function}.")
    ctype: Type = col.type
    if function in ORDERING:
        if not (ctype.is_scalar() and ctype.key.type in (IntegerType, RealType)):
            raise syntax_error(
                clause,
                f'Type mismatch: "{function}" operator may not be applied to column '
                f"{name} of type {type_to_english(ctype)}.")
        arg_type = ctype
    else:
        n_max = max(ctype.n_max, 1 << 62) if function in ("includes", "excludes") \
            else ctype.n_max
        arg_type = resized(ctype, 0, n_max)
    try:
        arg = datum_from_json(arg_type, value, symtab)
    except ovs.db.error.Error as e:
        raise OvsdbError.from_ovs(e) from None
    return Clause(name, function, arg)


def parse_condition(table: TableSchema, where: Any, symtab: Any = None) -> Condition:
    if not isinstance(where, list):
        raise syntax_error(where, "array expected")
    return Condition([parse_clause(table, c, symtab) for c in where])
