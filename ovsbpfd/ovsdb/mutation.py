"""Mutations (RFC 7047 section 5.1) applied to one column's Datum."""

from __future__ import annotations

import math
from typing import Any

import ovs.db.error
from ovs.db.data import Atom, Datum
from ovs.db.schema import ColumnSchema, TableSchema
from ovs.db.types import IntegerType, RealType, Type

from .columns import find_column, resized, type_to_english
from .datum_json import datum_from_json
from .errors import OvsdbError, syntax_error

ARITHMETIC = {"+=", "-=", "*=", "/=", "%="}
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1


class Mutation:
    __slots__ = ("column", "mutator", "arg")

    def __init__(self, column: ColumnSchema, mutator: str, arg: Datum) -> None:
        self.column = column
        self.mutator = mutator
        self.arg = arg

    def apply(self, datum: Datum) -> Datum:
        if self.mutator in ARITHMETIC:
            return self._arith(datum)
        return self._set_op(datum)

    def _arith(self, datum: Datum) -> Datum:
        base = self.column.type.key
        operand = next(iter(self.arg.values)).value
        # As ovsdb-server: every element (in the datum's sorted order) is
        # computed, and then each result checked against the constraints.
        results = [Atom(base.type, _compute(self.mutator, v, operand, base.type))
                   for v in sorted(atom.value for atom in datum.values)]
        values: dict[Atom, Atom | None] = {}
        for new_atom in results:
            try:
                new_atom.check_constraints(base)
            except ovs.db.error.Error as e:
                raise OvsdbError.from_ovs(e) from None
            values[new_atom] = None
        if len(values) != len(datum.values):
            raise OvsdbError("constraint violation",
                             f'Result of "{self.mutator}" operation contains duplicates.')
        return Datum(datum.type, values)

    def _set_op(self, datum: Datum) -> Datum:
        ctype = self.column.type
        values = dict(datum.values)
        if self.mutator == "insert":
            for k, v in self.arg.values.items():
                values.setdefault(k, v)
        elif ctype.is_map() and not self.arg.type.is_map():
            for k in self.arg.values:
                values.pop(k, None)
        else:
            for k, v in self.arg.values.items():
                if k in values and values[k] == v:
                    del values[k]
        n = len(values)
        if n < ctype.n_min or n > ctype.n_max:
            raise OvsdbError(
                "constraint violation",
                f"Attempted to store {n} elements in {type_to_english(ctype)}.")
        return Datum(datum.type, values)


def _compute(mutator: str, a: Any, b: Any, atomic: Any) -> Any:
    if atomic == IntegerType:
        if mutator in ("/=", "%=") and b == 0:
            raise OvsdbError("domain error", "Division by zero.")
        if mutator == "+=":
            r = a + b
        elif mutator == "-=":
            r = a - b
        elif mutator == "*=":
            if _mul_refused(a, b):
                raise OvsdbError("range error",
                                 f'Result of "{mutator}" operation is out of range.')
            r = a * b
        elif mutator == "/=":
            r = int(a / b) if abs(a) < (1 << 52) else _cdiv(a, b)
        else:
            r = a - b * _cdiv(a, b)
        if r < INT_MIN or r > INT_MAX:
            raise OvsdbError("range error", f'Result of "{mutator}" operation is out of range.')
        return r
    if mutator == "/=" and b == 0:
        raise OvsdbError("domain error", "Division by zero.")
    r = {"+=": a + b, "-=": a - b, "*=": a * b}.get(mutator) if mutator != "/=" else a / b
    if r is None or math.isinf(r) or math.isnan(r):
        raise OvsdbError("range error", f'Result of "{mutator}" operation is out of range.')
    return float(r)


def _mul_refused(a: int, b: int) -> bool:
    """ovsdb-server's overflow test for a *= b where a > 0 or b > 0 (C
    division, and ">=": 1 * 2**62 is refused).  With both <= 0 its test
    divides by b (SIGFPE for 0) and misses overflows; the plain range
    check after the product stands in for it here."""
    if a > 0:
        return a >= _cdiv(INT_MAX, b) if b > 0 else b < _cdiv(INT_MIN, a)
    return b > 0 and a < _cdiv(INT_MIN, b)


def _cdiv(a: int, b: int) -> int:
    """C-style integer division, truncating toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def parse_mutation(table: TableSchema, mutation: Any, symtab: Any = None) -> Mutation:
    if (not isinstance(mutation, list) or len(mutation) != 3
            or not isinstance(mutation[1], str)):
        raise syntax_error(mutation, "Parse error in mutation.")
    name, mutator, value = mutation
    col = find_column(table, name, mutation)
    if name.startswith("_") or not col.mutable:
        raise OvsdbError("constraint violation",
                         f"Cannot mutate immutable column {name} in table {table.name}.",
                         mutation, has_syntax=True)
    ctype: Type = col.type
    if mutator in ARITHMETIC:
        if ctype.key.type not in (IntegerType, RealType) or ctype.value is not None \
                or (mutator == "%=" and ctype.key.type == RealType):
            raise syntax_error(mutation, _mismatch(mutator, name, ctype))
        return Mutation(col, mutator,
                        _argument(Type(ctype.key.without_constraints()), value, symtab))
    if mutator in ("insert", "delete"):
        if not (ctype.is_set() or ctype.is_map()) or ctype.n_max == 1 and ctype.n_min == 1:
            raise syntax_error(mutation, _mismatch(mutator, name, ctype))
        # An insert may hold as many elements as the column, a delete any
        # number; a delete from a map that does not parse as a map is a set
        # of keys, and then its error is the one reported (as ovsdb-server).
        n_max = ctype.n_max if mutator == "insert" else max(ctype.n_max, 1 << 62)
        try:
            arg = _argument(resized(ctype, 0, n_max), value, symtab)
        except OvsdbError:
            if not (ctype.is_map() and mutator == "delete"):
                raise
            arg = _argument(Type(ctype.key, None, 0, n_max), value, symtab)
        return Mutation(col, mutator, arg)
    raise OvsdbError("unknown mutator", f"No mutator named {mutator}.")


def _argument(t: Type, value: Any, symtab: Any) -> Datum:
    """A mutation's argument parsed as t; OvsdbError as ovsdb-server words it."""
    try:
        return datum_from_json(t, value, symtab)
    except ovs.db.error.Error as e:
        raise OvsdbError.from_ovs(e) from None


def _mismatch(mutator: str, name: str, ctype: Type) -> str:
    return (f'Type mismatch: "{mutator}" operator may not be applied to column {name} '
            f"of type {type_to_english(ctype)}.")
