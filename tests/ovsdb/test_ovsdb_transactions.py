"""Unit tests of transaction semantics on the in-memory database (no sockets)."""

from __future__ import annotations

import pytest

from ovsbpfd.ovsdb.database import Database
from ovsbpfd.ovsdb.execution import Executor, WaitPending
from ovsbpfd.ovsdb.jsonrpc import MessageSplitter, ProtocolError
from ovsbpfd.ovsdb.monitor import Monitor
from ovsbpfd.ovsdb.schema import Schema, schema_path


@pytest.fixture
def db() -> Database:
    return Database(Schema.from_file(schema_path()))


def run(db: Database, *ops, locks=frozenset()) -> list:
    outcome = Executor(db, set(locks)).run(list(ops))
    if outcome.changes is not None:
        db.apply(outcome.changes)
    return outcome.results


def add_bridge(db: Database, name: str) -> str:
    if not db.tables["Open_vSwitch"]:
        run(db, {"op": "insert", "table": "Open_vSwitch", "row": {}})
    res = run(db, {"op": "insert", "table": "Bridge", "row": {"name": name}, "uuid-name": "b"},
              {"op": "mutate", "table": "Open_vSwitch", "where": [],
               "mutations": [["bridges", "insert", ["named-uuid", "b"]]]})
    assert "error" not in res[-1], res
    return res[0]["uuid"][1]


def test_ovsdb_failed_transaction_changes_nothing(db):
    add_bridge(db, "br0")
    before = {t: dict(rows) for t, rows in db.tables.items()}
    res = run(db, {"op": "insert", "table": "Bridge", "row": {"name": "br1"}, "uuid-name": "x"},
              {"op": "mutate", "table": "Open_vSwitch", "where": [],
               "mutations": [["bridges", "insert", ["named-uuid", "x"]]]},
              {"op": "insert", "table": "Bridge", "row": {"fail_mode": "nope"}})
    assert res[-1]["error"] == "constraint violation"
    assert {t: dict(rows) for t, rows in db.tables.items()} == before


def test_ovsdb_unreferenced_rows_are_collected(db):
    run(db, {"op": "insert", "table": "Open_vSwitch", "row": {}})
    res = run(db, {"op": "insert", "table": "Bridge", "row": {"name": "lonely"}})
    assert "uuid" in res[0]
    assert db.tables["Bridge"] == {}


def test_ovsdb_strong_reference_blocks_delete(db):
    add_bridge(db, "br0")
    res = run(db, {"op": "delete", "table": "Bridge", "where": []})
    assert res[-1]["error"] == "referential integrity violation"
    assert len(db.tables["Bridge"]) == 1


def test_ovsdb_index_uniqueness(db):
    add_bridge(db, "br0")
    res = run(db, {"op": "insert", "table": "Bridge", "row": {"name": "br0"}, "uuid-name": "b"},
              {"op": "mutate", "table": "Open_vSwitch", "where": [],
               "mutations": [["bridges", "insert", ["named-uuid", "b"]]]})
    assert res[-1]["error"] == "constraint violation"
    assert "identical values (br0)" in res[-1]["details"]


def test_ovsdb_weak_reference_removed_with_target(db):
    add_bridge(db, "br0")
    res = run(db, {"op": "insert", "table": "Interface", "row": {"name": "p"}, "uuid-name": "i"},
              {"op": "insert", "table": "Port", "uuid-name": "p",
               "row": {"name": "p", "interfaces": ["named-uuid", "i"]}},
              {"op": "insert", "table": "Mirror",
               "row": {"name": "m", "select_src_port": ["named-uuid", "p"]}, "uuid-name": "m"},
              {"op": "update", "table": "Bridge", "where": [],
               "row": {"ports": ["named-uuid", "p"], "mirrors": ["named-uuid", "m"]}})
    assert "error" not in res[-1], res
    run(db, {"op": "update", "table": "Bridge", "where": [], "row": {"ports": ["set", []]}})
    (mirror,) = db.tables["Mirror"].values()
    assert mirror.data["select_src_port"].values == {}
    assert db.tables["Port"] == {}


def test_ovsdb_wait_with_timeout_is_pending(db):
    add_bridge(db, "br0")
    op = {"op": "wait", "table": "Bridge", "where": [], "columns": ["name"], "until": "==",
          "rows": [{"name": "other"}], "timeout": 1000}
    with pytest.raises(WaitPending):
        Executor(db, set()).run([op])
    expired = Executor(db, set(), elapsed_ms=1000).run([op])
    assert expired.results[0]["error"] == "timed out"


def test_ovsdb_assert_needs_lock(db):
    assert run(db, {"op": "assert", "lock": "l"})[0]["error"] == "not owner"
    assert run(db, {"op": "assert", "lock": "l"}, locks={"l"}) == [{}]


def test_ovsdb_monitor_update2_diff(db):
    uuid = add_bridge(db, "br0")
    mon = Monitor.parse(db, "m", 2, {"Bridge": [{"columns": ["external_ids", "fail_mode"]}]})
    assert mon.initial() == {"Bridge": {uuid: {"initial": {}}}}
    outcome = Executor(db, set()).run([
        {"op": "update", "table": "Bridge", "where": [],
         "row": {"external_ids": ["map", [["a", "1"]]], "fail_mode": "secure"}}])
    updates = mon.updates(outcome.changes)
    assert updates == {"Bridge": {uuid: {"modify": {
        "external_ids": ["map", [["a", "1"]]], "fail_mode": "secure"}}}}


def test_ovsdb_splitter_handles_fragments_and_strings():
    s = MessageSplitter()
    assert s.feed(b'{"a":"}{\\"') == []
    assert s.feed(b'","b":[1]} {"c"') == [{"a": '}{"', "b": [1]}]
    assert s.feed(b":2}") == [{"c": 2}]
    with pytest.raises(ProtocolError):
        s.feed(b"garbage")
