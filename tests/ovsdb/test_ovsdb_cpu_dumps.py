"""A monitor's encoded initial dump of a whole table is kept on the database
and extended while the table only grows (monitor._whole_table_entries).
Through any mix of inserts, modifications, deletions and garbage
collection, every dump must be byte for byte the one joined afresh, and
decode to the unencoded initial()."""

from __future__ import annotations

import json
import random

import pytest

from ovsbpfd.ovsdb.database import Database
from ovsbpfd.ovsdb.datum_json import datum_to_json
from ovsbpfd.ovsdb.execution import Executor
from ovsbpfd.ovsdb.monitor import Monitor
from ovsbpfd.ovsdb.schema import Schema, schema_path

REQUESTS = [
    (3, {"Port": [{"columns": ["fake_bridge", "interfaces", "name", "tag"]}],
         "Interface": [{"columns": ["error", "name", "ofport"]}],
         "Bridge": [{"columns": ["name", "ports"]}],
         "Open_vSwitch": [{"columns": ["bridges"]}]}),
    (1, {"Port": {"columns": ["name", "tag"]}, "Interface": {}}),
    (2, {"Port": [{"columns": ["name"], "where": [["tag", "==", 1]]}],
         "Interface": [{"columns": ["name", "external_ids"]}]}),
]


def _run(db: Database, ops: list) -> None:
    outcome = Executor(db, set()).run(ops)
    assert outcome.changes is not None, outcome.results
    db.apply(outcome.changes)


def _bridge(db: Database) -> str:
    return str(next(iter(db.tables["Bridge"])))


def _ports(db: Database) -> list[str]:
    return [str(u) for u in db.tables["Port"]]


def _add_ports(db: Database, names: list[str]) -> None:
    ops: list = []
    for name in names:
        ops.append({"op": "insert", "table": "Port", "uuid-name": f"p{name}",
                    "row": {"name": name, "tag": len(name) % 3,
                            "interfaces": ["named-uuid", f"i{name}"]}})
        ops.append({"op": "insert", "table": "Interface", "uuid-name": f"i{name}",
                    "row": {"name": name}})
    ops.append({"op": "mutate", "table": "Bridge",
                "where": [["_uuid", "==", ["uuid", _bridge(db)]]],
                "mutations": [["ports", "insert",
                               ["set", [["named-uuid", f"p{n}"] for n in names]]]]})
    _run(db, ops)


def _drop_port(db: Database, port: str) -> None:
    """Off the bridge: the Port and its Interface go as garbage."""
    _run(db, [{"op": "mutate", "table": "Bridge",
               "where": [["_uuid", "==", ["uuid", _bridge(db)]]],
               "mutations": [["ports", "delete", ["uuid", port]]]}])


def _retag(db: Database, port: str, tag: int) -> None:
    _run(db, [{"op": "update", "table": "Port", "where": [["_uuid", "==", ["uuid", port]]],
               "row": {"tag": tag}}])


def _fresh_join(db: Database, version: int, requests: dict) -> bytes:
    db.initial_dumps.clear()
    try:
        return Monitor.parse(db, "m", version, requests).initial_encoded()
    finally:
        db.initial_dumps.clear()


@pytest.mark.parametrize("seed", range(4))
def test_ovsdb_cpu_kept_dumps_are_the_fresh_ones(seed):
    rng = random.Random(seed)
    db = Database(Schema.from_file(schema_path()))
    _run(db, [{"op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"]}},
              {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "br0"}}])
    counter = 0
    for _step in range(40):
        choice = rng.random()
        if choice < 0.55 or not db.tables["Port"]:
            names = [f"q{counter + i}" for i in range(rng.randint(1, 3))]
            counter += len(names)
            _add_ports(db, names)
        elif choice < 0.8:
            _retag(db, rng.choice(_ports(db)), rng.randint(0, 2))
        else:
            _drop_port(db, rng.choice(_ports(db)))
        for version, requests in rng.sample(REQUESTS, rng.randint(1, len(REQUESTS))):
            mon = Monitor.parse(db, "m", version, requests)
            kept = mon.initial_encoded()
            assert json.loads(kept) == mon.initial()
            assert kept == _fresh_join(db, version, requests)
            # Dumped afresh above: keep the state a kept join would have.
            mon.initial_encoded()


def test_ovsdb_cpu_dump_kept_only_for_whole_tables():
    db = Database(Schema.from_file(schema_path()))
    _run(db, [{"op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"]}},
              {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "br0"}}])
    _add_ports(db, ["a", "b"])
    Monitor.parse(db, "m", *REQUESTS[2]).initial_encoded()
    assert {name for name, _key in db.initial_dumps} == {"Interface"}
    rewrites = dict(db.rewrites)
    _add_ports(db, ["c"])
    assert db.rewrites["Port"] == rewrites["Port"]
    assert db.rewrites["Bridge"] == rewrites["Bridge"] + 1


def test_ovsdb_cpu_big_sets_json_remembered_when_dumped():
    """A bridge's ports, written for a dump, are kept for the waits after it;
    small values are not kept (a big database's dump stays bytes only)."""
    db = Database(Schema.from_file(schema_path()))
    _run(db, [{"op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"]}},
              {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "br0"}}])
    _add_ports(db, [f"n{i}" for i in range(9)])
    (bridge,) = db.tables["Bridge"].values()
    port = next(iter(db.tables["Port"].values()))
    ports = bridge.json_once("ports")
    assert ports == datum_to_json(bridge.data["ports"]) and len(ports[1]) == 9
    assert bridge.json("ports") is ports
    assert port.json_once("interfaces") == datum_to_json(port.data["interfaces"])
    assert "interfaces" not in (port.memo or {})
