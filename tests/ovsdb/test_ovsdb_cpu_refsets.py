"""Sets of references parsed with shared Atoms, and their deltas.

datum_json shares one Atom per uuid text between parses, and
database._ref_set_changes compares two sets by those Atoms when both share
them, by the uuids' integers otherwise.  Either way the deltas must be the
same ones, in the same order (the first missing target names the error a
client sees), as comparing the uuids one by one."""

from __future__ import annotations

import random
import uuid

from ovs.db.data import Datum

from ovsbpfd.ovsdb.database import (
    Row,
    _ref_set_changes,
    _strong_ref_changes,
    default_data,
    strong_ref_changes,
)
from ovsbpfd.ovsdb.datum_json import datum_from_json, shares_remembered_atoms
from ovsbpfd.ovsdb.diff import datum_diff
from ovsbpfd.ovsdb.schema import Schema, schema_path

SCHEMA = Schema.from_file(schema_path()).parsed
PORTS_COL = SCHEMA.tables["Bridge"].columns["ports"]
PORTS = PORTS_COL.type


def _json(uuids: list[uuid.UUID]) -> list:
    return ["set", [["uuid", str(u)] for u in uuids]]


def _expected(before: list[uuid.UUID], after: list[uuid.UUID]) -> list[tuple]:
    return ([("ports", u, "Port", -1) for u in before if u not in after]
            + [("ports", u, "Port", +1) for u in after if u not in before])


def _order(datum: Datum) -> list[uuid.UUID]:
    return [atom.value for atom in datum.values]


def _random_change(rng: random.Random, pool: list[uuid.UUID], most: int, added: int
                   ) -> tuple[Datum, Datum, list[uuid.UUID], list[uuid.UUID]]:
    """A set of up to `most` uuids of the pool and a changed copy (some kept,
    up to `added` more), each parsed with shared Atoms or python-ovs's own."""
    before_ids = rng.sample(pool, rng.randint(0, most))
    after_ids = list(dict.fromkeys(rng.sample(before_ids, rng.randint(0, len(before_ids)))
                                   + rng.sample(pool, rng.randint(0, added))))
    parsers = (lambda v: datum_from_json(PORTS, v), lambda v: Datum.from_json(PORTS, v))
    before = rng.choice(parsers)(_json(before_ids))
    after = rng.choice(parsers)(_json(after_ids))
    return before, after, before_ids, after_ids


def test_ovsdb_cpu_parsed_sets_share_atoms():
    pool = [uuid.uuid4() for _ in range(4)]
    first = datum_from_json(PORTS, _json(pool))
    again = datum_from_json(PORTS, _json(pool[::-1]))
    by_value = {a.value: a for a in first.values}
    assert all(by_value[a.value] is a for a in again.values)
    assert shares_remembered_atoms(first) and shares_remembered_atoms(again)
    assert not shares_remembered_atoms(Datum.from_json(PORTS, _json(pool)))
    assert shares_remembered_atoms(Datum.from_json(PORTS, ["set", []]))


def test_ovsdb_cpu_ref_set_deltas_in_datum_order_shared_or_not():
    rng = random.Random(11)
    pool = [uuid.uuid4() for _ in range(40)]
    for _ in range(400):
        before, after, _before_ids, _after_ids = _random_change(rng, pool, 15, 4)
        got = list(_ref_set_changes(PORTS_COL, before, after))
        assert got == _expected(_order(before), _order(after))


def test_ovsdb_cpu_set_diffs_in_datum_order_shared_or_not():
    rng = random.Random(5)
    pool = [uuid.uuid4() for _ in range(30)]
    for _ in range(300):
        old, new, old_ids, new_ids = _random_change(rng, pool, 12, 3)
        expected = [u for u in _order(old) if u not in new_ids] \
            + [u for u in _order(new) if u not in old_ids]
        assert [a.value for a in datum_diff(old, new).values] == expected


def test_ovsdb_cpu_remembered_ref_changes_are_the_computed_ones():
    """strong_ref_changes remembers answers by the rows' identity; asked
    again, for more pairs than it keeps, it answers as a fresh computation."""
    table = SCHEMA.tables["Bridge"]
    rng = random.Random(3)
    pool = [uuid.uuid4() for _ in range(20)]

    def bridge(ports):
        data = default_data(table)
        data["ports"] = datum_from_json(PORTS, _json(ports))
        return Row(uuid.uuid4(), uuid.uuid4(), data)

    pairs = [(bridge(rng.sample(pool, rng.randint(0, 8))) if rng.random() < 0.8 else None,
              bridge(rng.sample(pool, rng.randint(0, 8))) if rng.random() < 0.8 else None)
             for _ in range(600)]
    for _ in range(2):
        for old, new in pairs:
            assert list(strong_ref_changes(table, old, new)) \
                == list(_strong_ref_changes(table, old, new))
