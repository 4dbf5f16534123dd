"""JSON to Datum, quickly for the shape clients send most: sets of references.

ovs-vsctl rewrites a bridge's whole "ports" set on every add-port, and the
IDLs do the same for any set they change, so a transaction on a bridge with N
ports parses N uuids.  python-ovs spends several Python calls per element
(unwrapping, float_to_int, a regex, constraint checks); here a well-formed
set of uuid / named-uuid references is built directly, with remembered uuid
texts.  Anything else, including every input that is an error, goes to
python-ovs's Datum.from_json, so errors are worded exactly as before.

One python-ovs leniency is closed on the way: true and false are Python ints,
so python-ovs takes them for integers and reals, where ovsdb-server answers
"expected integer".
"""

from __future__ import annotations

import uuid
from typing import Any

import ovs.db.error
from ovs.db.data import Atom, Datum
from ovs.db.types import IntegerType, RealType, Type, UuidType

from .wait_check import parse_uuid_text


def datum_from_json(t: Type, value: Any, symtab: dict | None = None) -> Datum:
    """Datum.from_json(t, value, symtab), faster for sets of references."""
    if t.value is None and t.key.type is UuidType and t.key.enum is None \
            and type(value) is list and len(value) == 2:
        if value[0] == "set" and type(value[1]) is list:
            elements = value[1]
        else:
            elements = [value]
        atoms = _uuid_atoms(elements, symtab)
        if atoms is not None and len(atoms) == len(elements) \
                and t.n_min <= len(atoms) <= t.n_max:
            return Datum(t, atoms)
    _reject_booleans_as_numbers(t, value)
    return Datum.from_json(t, value, symtab)


_NUMBERS = (IntegerType, RealType)


def _reject_booleans_as_numbers(t: Type, value: Any) -> None:
    key_numeric = t.key.type in _NUMBERS
    value_numeric = t.value is not None and t.value.type in _NUMBERS
    if not key_numeric and not value_numeric:
        return
    if type(value) is list and len(value) == 2 \
            and value[0] == ("map" if t.value is not None else "set") and type(value[1]) is list:
        elements = value[1]
    else:
        elements = [value]
    for element in elements:
        if t.value is not None:
            if type(element) is not list or len(element) != 2:
                continue  # python-ovs words the shape error
            pairs = ((key_numeric, t.key.type, element[0]),
                     (value_numeric, t.value.type, element[1]))
        else:
            pairs = ((key_numeric, t.key.type, element),)
        for numeric, atomic_type, atom in pairs:
            if numeric and type(atom) is bool:
                raise ovs.db.error.Error(f"expected {atomic_type.to_string()}", atom)


def _uuid_atoms(elements: list, symtab: dict | None) -> dict | None:
    """{Atom: None} for ["uuid", U] and (with a symbol table) ["named-uuid", N]
    elements; None if any element is anything else."""
    atoms: dict[Atom, None] = {}
    for element in elements:
        if type(element) is not list or len(element) != 2 or type(element[1]) is not str:
            return None
        kind, text = element
        if kind == "uuid":
            row_uuid = parse_uuid_text(text)
            if row_uuid is None:
                return None
        elif kind == "named-uuid" and symtab:
            # As python-ovs: a name not defined (yet) gets a fresh uuid, which
            # a later insert with that uuid-name then takes.
            row_uuid = symtab.get(text)
            if row_uuid is None:
                row_uuid = symtab[text] = uuid.uuid4()
        else:
            return None
        atoms[Atom(UuidType, row_uuid)] = None
    return atoms
