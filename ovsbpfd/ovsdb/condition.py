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


def _ordering(test: Callable[[Any, Any], bool]) -> Callable[[Datum, Datum], bool]:
    """An ordering clause; false for an optional column with no value."""
    return lambda c, a: bool(c.values) and test(_scalar(c), _scalar(a))


_TESTS: dict[str, Callable[[Datum, Datum], bool]] = {
    "==": lambda c, a: c.values == a.values,
    "!=": lambda c, a: c.values != a.values,
    "includes": _includes,
    "excludes": _excludes,
    "<": _ordering(lambda x, y: x < y),
    "<=": _ordering(lambda x, y: x <= y),
    ">": _ordering(lambda x, y: x > y),
    ">=": _ordering(lambda x, y: x >= y),
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


class AnyCondition(Condition):
    """A monitor's condition: ovsdb-server sends a row when the condition is
    empty or any one of its clauses holds (a transaction's where-clause
    needs them all)."""

    def matches(self, row: Row) -> bool:
        return not self.clauses or any(c.matches(row) for c in self.clauses)

    @property
    def is_true(self) -> bool:
        return not self.clauses or any(c.const is True for c in self.clauses)

    @property
    def is_false(self) -> bool:
        return bool(self.clauses) and all(c.const is False for c in self.clauses)


def parse_clause(table: TableSchema, clause: Any, symtab: Any = None) -> Clause:
    if isinstance(clause, bool):
        return Clause(None, None, None, clause)
    if not isinstance(clause, list) or len(clause) != 3 or not isinstance(clause[1], str):
        raise syntax_error(clause, "Parse error in condition.")
    name, function, value = clause
    col = find_column(table, name, clause)
    if function not in FUNCTIONS:
        raise OvsdbError("unknown function", f"No function named {function}.")
    arg_type = _argument_type(clause, name, function, col.type)
    try:
        arg = datum_from_json(arg_type, value, symtab)
    except ovs.db.error.Error as e:
        raise OvsdbError.from_ovs(e) from None
    return Clause(name, function, arg)


def _argument_type(clause: list, name: str, function: str, ctype: Type) -> Type:
    """The type the argument of a clause must have, as ovsdb-server relaxes
    the column's: "==" and "!=" keep it (an empty set cannot match a column
    that needs one element), "includes" drops the minimum and "excludes" both
    bounds of a set or map, and the ordering functions also apply to an
    optional integer or real (such as Port.tag), with one element."""
    optional_scalar = ctype.value is None and ctype.n_min == 0 and ctype.n_max == 1
    if function in ORDERING:
        if not ((ctype.is_scalar() or optional_scalar)
                and ctype.key.type in (IntegerType, RealType)):
            raise syntax_error(
                clause,
                f'Type mismatch: "{function}" operator may not be applied to column '
                f"{name} of type {type_to_english(ctype)}.")
        return resized(ctype, 1, 1)
    if ctype.is_scalar() or function in ("==", "!="):
        return ctype
    if function == "includes":
        return resized(ctype, 0, ctype.n_max)
    return resized(ctype, 0, max(ctype.n_max, 1 << 62))


def parse_condition(table: TableSchema, where: Any, symtab: Any = None) -> Condition:
    if not isinstance(where, list):
        raise syntax_error(where, "array expected")
    return Condition([parse_clause(table, c, symtab) for c in where])
