"""JSON to Datum and back, quickly for the shapes that come by the thousand.

ovs-vsctl rewrites a bridge's whole "ports" set on every add-port, and the
IDLs do the same for any set they change, so a transaction on a bridge with N
ports parses N uuids.  python-ovs spends several Python calls per element
(unwrapping, float_to_int, a regex, constraint checks); here a well-formed
set of uuid / named-uuid references is built directly, with remembered uuid
texts.  Anything else, including every input that is an error, goes to
python-ovs's Datum.from_json, so errors are worded exactly as before.

The other way, datum_to_json writes what python-ovs's Datum.to_json writes,
without its per-atom method calls and Atom comparisons: a fresh client's
dump of 10,000 ports converts a few hundred thousand datums.

One python-ovs leniency is closed on the way: true and false are Python ints,
so python-ovs takes them for integers and reals, where ovsdb-server answers
"expected integer".
"""

from __future__ import annotations

import operator
import re
import uuid
from typing import Any

import ovs.db.error
from ovs.db.data import Atom, Datum
from ovs.db.types import IntegerType, RealType, StringType, Type, UuidType

_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                        r"[0-9a-fA-F]{12}\Z")
_UUIDS: dict[str, uuid.UUID] = {}
_UUID_CACHE_SIZE = 1 << 15


def parse_uuid_text(text: str) -> uuid.UUID | None:
    """A UUID from its text, or None if it is not one.  The same few thousand
    row uuids come back in every ovs-vsctl run, so recent ones are remembered."""
    value = _UUIDS.get(text)
    if value is None:
        if not _UUID_TEXT.match(text):
            return None
        if len(_UUIDS) >= _UUID_CACHE_SIZE:
            _UUIDS.clear()
        value = _UUIDS[text] = uuid.UUID(text)
    return value


def remembered_uuids() -> dict[str, uuid.UUID]:
    """The text -> UUID memo behind parse_uuid_text, for loops that look a
    text up there first (a dict lookup, no call) and parse only on a miss.
    The same dict for the life of the process: it is cleared, never replaced."""
    return _UUIDS


_TEXTS: dict[int, str] = {}


def uuid_text(value: uuid.UUID) -> str:
    """str(value), remembered for the few thousand row uuids that every
    ovs-vsctl run sees again (in a bridge's ports, say)."""
    text = _TEXTS.get(value.int)
    if text is None:
        if len(_TEXTS) >= _UUID_CACHE_SIZE:
            _TEXTS.clear()
        text = _TEXTS[value.int] = str(value)
    return text


def datum_from_json(t: Type, value: Any, symtab: dict | None = None) -> Datum:
    """Datum.from_json(t, value, symtab), faster for sets of references and
    for plain strings (a name, a type: what every inserted row carries)."""
    if type(value) is str and t.value is None and t.key.type is StringType:
        key = t.key
        if key.enum is None and key.min_length <= len(value) <= key.max_length:
            return Datum(t, {Atom(StringType, value): None})
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
    if not _wrong_size(t, value) and _has_boolean_number(t, value):
        # The size is checked first, then each element in turn, as in
        # ovsdb-server (which takes no boolean for a number).
        _raise_element_error(t, value, symtab)
    try:
        return _from_json(t, value, symtab)
    except ovs.db.error.Error as e:
        if e.msg.endswith(("contains duplicate", "contains duplicate key")):
            _raise_element_error(t, value, symtab)
        raise


def _from_json(t: Type, value: Any, symtab: dict | None) -> Datum:
    """python-ovs's Datum.from_json, but a JSON null where an atom belongs
    is a syntax error of "null", as in ovsdb-server (python-ovs cannot tell
    it from "no JSON" and calls it an "ovsdb error")."""
    try:
        return Datum.from_json(t, value, symtab)
    except ovs.db.error.Error as e:
        if e.json is None and e.tag == "ovsdb error" and e.msg.startswith("expected "):
            raise ovs.db.error.Error(e.msg, None, "syntax error") from None
        raise


_NUMBERS = (IntegerType, RealType)


def _wrong_size(t: Type, value: Any) -> bool:
    """Whether value is a ["set", [...]] or ["map", [...]] with too few or
    too many elements for t."""
    return (type(value) is list and len(value) == 2 and value[0] in ("set", "map")
            and type(value[1]) is list and not t.n_min <= len(value[1]) <= t.n_max)


def _raise_element_error(t: Type, value: Any, symtab: dict | None) -> None:
    """Raise the error of the first element of a value that does not parse,
    a boolean for a number included: ovsdb-server parses every element, in
    order, before it looks for duplicates; python-ovs stops at the first
    duplicate and takes booleans for numbers."""
    wrapped = _wrapped(t, value)
    kind = "map" if t.value is not None else "set"
    one = Type(t.key, t.value, 0, 1)
    for element in value[1] if wrapped else [value]:
        bad = _boolean_numbers(t, element)
        if bad and (t.value is None or bad[0][1] is element[0]):  # a key: before parsing
            raise ovs.db.error.Error(f"expected {bad[0][0].to_string()}", bad[0][1])
        _from_json(one, [kind, [element]] if wrapped else element, symtab)
        if bad:  # a map's value
            raise ovs.db.error.Error(f"expected {bad[0][0].to_string()}", bad[0][1])


def _wrapped(t: Type, value: Any) -> bool:
    """Whether value is written ["set", [...]] (["map", [...]] for a map)."""
    return (type(value) is list and len(value) == 2
            and value[0] == ("map" if t.value is not None else "set") and type(value[1]) is list)


def _elements(t: Type, value: Any) -> list:
    """The elements of a set or map value as written (a lone atom is one)."""
    return value[1] if _wrapped(t, value) else [value]


def _boolean_numbers(t: Type, element: Any) -> list:
    """The atoms of one element that are booleans where t wants a number."""
    key_numeric = t.key.type in _NUMBERS
    value_numeric = t.value is not None and t.value.type in _NUMBERS
    if t.value is not None:
        if type(element) is not list or len(element) != 2:
            return []  # python-ovs words the shape error
        pairs = ((key_numeric, t.key.type, element[0]), (value_numeric, t.value.type, element[1]))
    else:
        pairs = ((key_numeric, t.key.type, element),)
    return [(atomic_type, atom) for numeric, atomic_type, atom in pairs
            if numeric and type(atom) is bool]


def _has_boolean_number(t: Type, value: Any) -> bool:
    if t.key.type not in _NUMBERS and (t.value is None or t.value.type not in _NUMBERS):
        return False
    return any(_boolean_numbers(t, e) for e in _elements(t, value))


_ATOMS: dict[str, Atom] = {}
#: an <id> of RFC 7047 (a named-uuid, a uuid-name, an operation name)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _uuid_atoms(elements: list, symtab: dict | None) -> dict | None:
    """{Atom: None} for ["uuid", U] and (with a symbol table) ["named-uuid", N]
    elements; None if any element is anything else.

    The Atom of a uuid text is remembered and shared (Atoms are never
    changed): a bridge's ports set, sent back whole on every add-port, then
    holds the very Atoms of the committed set, so comparing the two
    (database._ref_set_changes) finds each element by identity."""
    atoms: dict[Atom, None] = {}
    remembered = _ATOMS
    for element in elements:
        if type(element) is not list or len(element) != 2 or type(element[1]) is not str:
            return None
        kind, text = element
        if kind == "uuid":
            atom = remembered.get(text)
            if atom is None:
                row_uuid = parse_uuid_text(text)
                if row_uuid is None:
                    return None
                if len(remembered) >= _UUID_CACHE_SIZE:
                    remembered.clear()
                atom = remembered[text] = Atom(UuidType, row_uuid)
        elif kind == "named-uuid" and symtab and IDENTIFIER.match(text):
            # As python-ovs: a name not defined (yet) gets a fresh uuid, which
            # a later insert with that uuid-name then takes.  A name that is
            # not an <id> is left to python-ovs and the symbol table's check.
            row_uuid = symtab.get(text)
            if row_uuid is None:
                row_uuid = symtab[text] = uuid.uuid4()
            atom = Atom(UuidType, row_uuid)
        else:
            return None
        atoms[atom] = None
    return atoms


def shares_remembered_atoms(datum: Datum) -> bool:
    """Whether a set of uuids (judged by one element) holds the remembered
    Atoms _uuid_atoms shares, rather than Atoms of its own (as python-ovs
    builds when the log is read)."""
    for atom in datum.values:
        return _ATOMS.get(uuid_text(atom.value)) is atom
    return True


def ordered_difference(a: Datum, b: Datum) -> list[Atom]:
    """The Atoms of a not in b, in a's order.  For datums sharing remembered
    Atoms: the sets are built from the dicts' stored hashes and their
    elements found by identity, so only a difference of more than one
    element costs a hash per element (to keep a's order)."""
    only = set(a.values).difference(b.values)
    if len(only) <= 1:
        return list(only)
    return [k for k in a.values if k in only]


_BY_INT = operator.attrgetter("int")


def _int_text(value: int) -> str:
    """uuid_text of the uuid with this integer (formatted here: building a
    UUID object just to print it costs more than the text), remembered."""
    h = f"{value:032x}"
    text = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if len(_TEXTS) >= _UUID_CACHE_SIZE:
        _TEXTS.clear()
    _TEXTS[value] = text
    return text


def datum_to_json(d: Datum) -> Any:
    """d.to_json(), without python-ovs's per-atom method calls and Atom
    comparisons (sets and maps are ordered by their plain values, which is
    the order Atom comparison gives)."""
    t, values = d.type, d.values
    uuid_key = t.key.type is UuidType
    if t.value is None:
        if len(values) == 1:
            for atom in values:
                return ["uuid", uuid_text(atom.value)] if uuid_key else atom.value
        if uuid_key:
            # By the integers (C comparisons), their texts from the memo.
            texts = _TEXTS
            return ["set", [["uuid", texts.get(i) or _int_text(i)]
                            for i in sorted([a.value.int for a in values])]]
        return ["set", sorted(a.value for a in values)]
    uuid_value = t.value.type is UuidType
    if uuid_key:
        pairs = sorted(((k.value, v.value) for k, v in values.items()),
                       key=lambda kv: kv[0].int)
    else:
        pairs = sorted(((k.value, v.value) for k, v in values.items()),
                       key=operator.itemgetter(0))
    return ["map", [[["uuid", uuid_text(k)] if uuid_key else k,
                     ["uuid", uuid_text(v)] if uuid_value else v] for k, v in pairs]]
