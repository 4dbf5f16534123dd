"""Unit tests of the server's fast paths: each must give what the plain path
(python-ovs parsing, full reference lists, the checking JSON decoder) gives."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter

import ovs.db.error
import pytest
from ovs.db.data import Datum

from ovsbpfd.ovsdb.database import Row, default_data, strong_ref_changes
from ovsbpfd.ovsdb.datum_json import datum_from_json
from ovsbpfd.ovsdb.execution import SymbolTable
from ovsbpfd.ovsdb.jsonrpc import MessageSplitter, _has_long_number
from ovsbpfd.ovsdb.schema import Schema, schema_path

SCHEMA = Schema.from_file(schema_path()).parsed
PORTS = SCHEMA.tables["Bridge"].columns["ports"].type
SSL = SCHEMA.tables["Open_vSwitch"].columns["ssl"].type
TAG = SCHEMA.tables["Port"].columns["tag"].type
VLANS = SCHEMA.tables["Bridge"].columns["flood_vlans"].type


# --- JSON decoding ---------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("123456789012345678", False),
    ("1234567890123456789", True),
    ('"a-1234567890123456789-b"', True),
    ("12345678901234567 8901", False),
    ("", False),
])
def test_ovsdb_long_number_detection(text, expected):
    assert _has_long_number(text.encode()) is expected


def test_ovsdb_splitter_integers_beyond_64_bits_are_reals():
    splitter = MessageSplitter()
    big, small = 1 << 63, -(1 << 63)
    msgs = splitter.feed(json.dumps({"id": 1, "params": [big, small, 9, "12345678901234567890"]})
                         .encode())
    (params,) = [m["params"] for m in msgs]
    assert params[0] == float(big) and isinstance(params[0], float)
    assert params[1] == small and isinstance(params[1], int)
    assert params[2:] == [9, "12345678901234567890"]


def test_ovsdb_splitter_long_number_split_across_reads():
    data = json.dumps({"id": 1, "params": [1 << 70]}).encode()
    splitter = MessageSplitter()
    out = []
    for i in range(0, len(data), 5):
        out += splitter.feed(data[i:i + 5])
    assert out == [{"id": 1, "params": [float(1 << 70)]}]


# --- datums ------------------------------------------------------------------------
def _plain(t, value, symtab=None):
    try:
        return Datum.from_json(t, value, symtab)
    except ovs.db.error.Error as e:
        return ("error", str(e))


def _fast(t, value, symtab=None):
    try:
        return datum_from_json(t, value, symtab)
    except ovs.db.error.Error as e:
        return ("error", str(e))


U = [str(uuid.UUID(int=i + 1)) for i in range(5)]


@pytest.mark.parametrize("t, value", [
    (PORTS, ["set", [["uuid", u] for u in U]]),
    (PORTS, ["uuid", U[0]]),
    (PORTS, ["set", []]),
    (PORTS, ["set", [["uuid", U[0]], ["uuid", U[0]]]]),
    (PORTS, ["set", [["uuid", U[0]], ["uuid", "nope"]]]),
    (PORTS, ["set", [["uuid", U[0]], 5]]),
    (PORTS, ["set", [["uuid", U[0], 1]]]),
    (PORTS, ["set", ["uuid", U[0]]]),
    (PORTS, ["uuid", U[0].upper()]),
    (PORTS, ["named-uuid", "x"]),
    (SSL, ["set", [["uuid", U[0]], ["uuid", U[1]]]]),
    (SSL, ["set", []]),
    (TAG, 5),
    (VLANS, ["set", [1, 2]]),
])
def test_ovsdb_fast_datum_parse_agrees_with_python_ovs(t, value):
    fast, plain = _fast(t, value), _plain(t, value)
    if isinstance(fast, Datum):
        assert isinstance(plain, Datum) and fast.values == plain.values
    else:
        assert isinstance(plain, tuple) and fast == plain


@pytest.mark.parametrize("t, value, message", [
    (TAG, True, "expected integer"),
    (VLANS, ["set", [1, False]], "expected integer"),
])
def test_ovsdb_booleans_are_not_integers(t, value, message):
    """python-ovs takes true for 1; ovsdb-server does not, nor do we."""
    assert isinstance(Datum.from_json(t, value), Datum)
    with pytest.raises(ovs.db.error.Error, match=message):
        datum_from_json(t, value)


def test_ovsdb_fast_datum_parse_named_uuids_share_the_symbol_table():
    symtab = SymbolTable()
    first = datum_from_json(PORTS, ["set", [["named-uuid", "a"], ["uuid", U[0]]]], symtab)
    again = datum_from_json(PORTS, ["named-uuid", "a"], symtab)
    assert {a.value for a in first.values} == {symtab["a"], uuid.UUID(U[0])}
    assert [a.value for a in again.values] == [symtab["a"]]


# --- reference counting --------------------------------------------------------------
def _naive_net(table, old, new) -> Counter:
    """Net change per target counting every reference of both versions."""
    net: Counter = Counter()
    for version, sign in ((old, -1), (new, +1)):
        if version is None:
            continue
        for col in table.columns.values():
            if col.type.key.is_strong_ref():
                for atom in version.data[col.name].values:
                    net[atom.value] += sign
    return Counter({k: v for k, v in net.items() if v})


def test_ovsdb_ref_set_changes_net_out_like_full_lists():
    table = SCHEMA.tables["Bridge"]
    rng = random.Random(7)
    pool = [uuid.uuid4() for _ in range(30)]

    def bridge(ports):
        data = default_data(table)
        data["ports"] = datum_from_json(PORTS, ["set", [["uuid", str(p)] for p in ports]])
        return Row(uuid.uuid4(), uuid.uuid4(), data)

    for _ in range(200):
        old = bridge(rng.sample(pool, rng.randint(0, 12))) if rng.random() < 0.9 else None
        new = bridge(rng.sample(pool, rng.randint(0, 12))) if rng.random() < 0.9 else None
        got: Counter = Counter()
        for _col, target, target_table, delta in strong_ref_changes(table, old, new):
            assert target_table == "Port" and delta in (-1, 1)
            got[target] += delta
        assert Counter({k: v for k, v in got.items() if v}) == _naive_net(table, old, new)


# --- monitors and diffs -------------------------------------------------------------
def _db_with_ports(n: int):
    from ovsbpfd.ovsdb.database import Database

    db = Database(Schema.from_file(schema_path()))
    ops = [{"op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"]}},
           {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {
               "name": "br0", "ports": ["set", [["named-uuid", f"p{i}"] for i in range(n)]]}}]
    for i in range(n):
        ops.append({"op": "insert", "table": "Port", "uuid-name": f"p{i}", "row": {
            "name": f"p{i}", "tag": i % 3, "interfaces": ["named-uuid", f"i{i}"]}})
        ops.append({"op": "insert", "table": "Interface", "uuid-name": f"i{i}",
                    "row": {"name": f"p{i}", "external_ids": ["map", [["k", str(i)]]]}})
    from ovsbpfd.ovsdb.execution import Executor

    outcome = Executor(db, set()).run(ops)
    assert outcome.changes, outcome.results
    db.apply(outcome.changes)
    return db


@pytest.mark.parametrize("version, requests", [
    (1, {"Port": {"columns": ["name", "tag"]}, "Bridge": {}}),
    (2, {"Port": [{"columns": ["name", "interfaces", "tag"]}], "Interface": [{}]}),
    (2, {"Port": [{"columns": ["name"], "where": [["tag", "==", 1]]}]}),
    (2, {"Port": [{"columns": ["name"], "where": [False]}], "Bridge": [{"columns": ["ports"]}]}),
    (3, {"Port": [{"columns": ["name"], "select": {"initial": False}}],
         "Open_vSwitch": [{"columns": ["bridges", "_version"]}]}),
])
def test_ovsdb_encoded_initial_dump_is_the_initial_dump(version, requests):
    from ovsbpfd.ovsdb.monitor import Monitor

    db = _db_with_ports(12)
    for _ in range(2):  # the second time from the rows' cached bytes
        mon = Monitor.parse(db, "m", version, requests)
        assert json.loads(mon.initial_encoded()) == mon.initial()


def test_ovsdb_set_diff_by_value_is_the_symmetric_difference():
    from ovsbpfd.ovsdb.diff import apply_diff, datum_diff

    rng = random.Random(3)
    pool = [str(uuid.uuid4()) for _ in range(20)]
    for t, make in ((PORTS, lambda xs: ["set", [["uuid", x] for x in xs]]),
                    (VLANS, lambda xs: ["set", [pool.index(x) for x in xs]])):
        for _ in range(100):
            a = rng.sample(pool, rng.randint(0, 10))
            b = rng.sample(pool, rng.randint(0, 10))
            old, new = datum_from_json(t, make(a)), datum_from_json(t, make(b))
            diff = datum_diff(old, new)
            assert set(diff.values) == set(old.values) ^ set(new.values)
            assert apply_diff(old, diff).values == new.values


@pytest.mark.parametrize("seed", range(20))
def test_ovsdb_splitter_finds_messages_cut_anywhere(seed):
    """Messages with brackets, quotes and backslashes inside strings, fed in
    random pieces, come out whole and in order."""
    rng = random.Random(seed)
    msgs = [{"id": i, "method": "echo", "params": [
        rng.choice(['a}b', 'x"]{y', 'back\\\\slash\\"', "é[}", "", "{}[]"]) * rng.randint(0, 50),
        {"k": [[], {}, [1, [2, {"z": None}]]]}]} for i in range(30)]
    data = b"".join(json.dumps(m, ensure_ascii=rng.random() < 0.5).encode()
                    + rng.choice([b"", b" ", b"\n"]) for m in msgs)
    splitter, out, pos = MessageSplitter(), [], 0
    while pos < len(data):
        step = rng.choice([1, 2, 7, 64, 1000])
        out += splitter.feed(data[pos:pos + step])
        pos += step
    assert out == msgs


def _every_column_type_with_values(rng: random.Random):
    """(type, json) for every column of both test schemas, with random values."""
    import os

    from ovs.db.types import BooleanType, IntegerType, RealType, StringType, UuidType

    here = os.path.dirname(os.path.abspath(__file__))
    schemas = [SCHEMA, Schema.from_file(os.path.join(here, "data", "constraints.ovsschema")).parsed]

    def atom(base):
        if base.enum is not None:
            return rng.choice([a.value for a in base.enum.values])
        kind = base.type
        if kind == IntegerType:
            lo = base.min if base.min is not None else -(1 << 40)
            hi = base.max if base.max is not None else 1 << 40
            return rng.randint(int(lo), int(hi))
        if kind == RealType:
            lo = base.min if base.min is not None else -1e6
            hi = base.max if base.max is not None else 1e6
            return rng.uniform(lo, hi)
        if kind == BooleanType:
            return rng.random() < 0.5
        if kind == StringType:
            return "".join(rng.choice("ab-é1 \\\"") for _ in range(rng.randint(2, 4)))
        assert kind == UuidType
        return ["uuid", str(uuid.UUID(int=rng.getrandbits(128)))]

    for schema in schemas:
        for table in schema.tables.values():
            for col in table.columns.values():
                t = col.type
                n = rng.randint(t.n_min, min(t.n_max, 6))
                if t.is_map():
                    keys = {json.dumps(k): k for k in (atom(t.key) for _ in range(n))}
                    value = ["map", [[k, atom(t.value)] for k in keys.values()]]
                elif n == 1 and rng.random() < 0.5:
                    value = atom(t.key)
                else:
                    keys = {json.dumps(k): k for k in (atom(t.key) for _ in range(n))}
                    value = ["set", list(keys.values())]
                yield t, value


@pytest.mark.parametrize("seed", range(5))
def test_ovsdb_fast_datum_to_json_is_python_ovs_to_json(seed):
    from ovsbpfd.ovsdb.datum_json import datum_to_json

    rng = random.Random(seed)
    n = 0
    for t, value in _every_column_type_with_values(rng):
        try:
            datum = Datum.from_json(t, value)
        except ovs.db.error.Error:
            continue  # e.g. too few distinct values drawn for a minimum
        assert datum_to_json(datum) == datum.to_json(), (t.to_json(), value)
        n += 1
    assert n > 150
