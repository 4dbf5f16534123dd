"""The run-of-waits loop (wait_check.holding_waits_end) must stop exactly
where the one-wait check (wait_holds_as_sent) stops, and a transaction must
get the same results with the loop as without it (every wait then taking
the full path)."""

from __future__ import annotations

import copy
import uuid

import pytest

from ovsbpfd.ovsdb import execution
from ovsbpfd.ovsdb.database import Database, Row, default_data
from ovsbpfd.ovsdb.datum_json import datum_from_json
from ovsbpfd.ovsdb.execution import Executor
from ovsbpfd.ovsdb.schema import Schema
from ovsbpfd.ovsdb.transaction import Transaction
from ovsbpfd.ovsdb.wait_check import holding_waits_end, wait_holds_as_sent

from .helpers import SCHEMA

PORTS = [uuid.UUID(int=(i + 1) << 64 | 7) for i in range(4)]
IFACES = [str(uuid.UUID(int=(i + 1) << 80 | 9)) for i in range(4)]


def _port_row(table, i: int) -> Row:
    data = default_data(table)
    data["name"] = datum_from_json(table.columns["name"].type, f"p{i}")
    data["interfaces"] = datum_from_json(table.columns["interfaces"].type,
                                         ["uuid", IFACES[i]])
    return Row(PORTS[i], uuid.uuid4(), data)


@pytest.fixture()
def db():
    database = Database(Schema.from_file(SCHEMA))
    table = database.table_schema("Port")
    database.apply({"Port": {u: (None, _port_row(table, i)) for i, u in enumerate(PORTS)}})
    return database


def vsctl_wait(i: int = 0, **changes):
    op = {"rows": [{"interfaces": ["uuid", IFACES[i]]}], "until": "==",
          "where": [["_uuid", "==", ["uuid", str(PORTS[i])]]], "columns": ["interfaces"],
          "timeout": 0, "op": "wait", "table": "Port"}
    for key, value in copy.deepcopy(changes).items():
        if value is KeyError:
            del op[key]
        else:
            op[key] = value
    return op


VARIANTS = [
    {},
    {"extra": 1},
    {"timeout": KeyError},
    {"timeout": KeyError, "extra": 1},
    {"timeout": 5000},
    {"timeout": True},
    {"timeout": False},
    {"timeout": 0.0},
    {"timeout": -1},
    {"timeout": None},
    {"until": KeyError},
    {"until": "!="},
    {"rows": KeyError},
    {"rows": []},
    {"rows": [{"interfaces": ["uuid", IFACES[0]]}, {"interfaces": ["uuid", IFACES[0]]}]},
    {"columns": ["interfaces", "interfaces"]},
    {"columns": ["interfaces", "name"],
     "rows": [{"interfaces": ["uuid", IFACES[0]], "name": "p0"}]},
    {"columns": ["nonesuch"]},
    {"columns": [1]},
    {"columns": [["interfaces"]]},
    {"columns": []},
    {"columns": "interfaces"},
    {"rows": [{"interfaces": ["uuid", IFACES[0].upper()]}]},
    {"rows": [{"interfaces": ["uuid", IFACES[1]]}]},
    {"rows": [{"interfaces": ["set", [["uuid", IFACES[0]]]]}]},
    {"rows": [{"interfaces": ["uuid", IFACES[0]], "name": "p0"}]},
    {"rows": [{"name": "p0"}], "columns": ["name"]},
    {"rows": [{"name": "p1"}], "columns": ["name"]},
    {"rows": [{"tag": ["set", []]}], "columns": ["tag"]},
    {"where": [["_uuid", "==", ["uuid", "not-a-uuid"]]]},
    {"where": [["_uuid", "==", ["uuid", str(PORTS[0]).upper()]]]},
    {"where": [["_uuid", "==", ["uuid", str(uuid.UUID(int=5))]]]},
    {"where": [["_uuid", "==", ["uuid", str(uuid.UUID(int=5))]]], "rows": []},
    {"where": [["_uuid", "!=", ["uuid", str(PORTS[0])]]]},
    {"where": [["name", "==", "p0"]]},
    {"where": [["_uuid", "==", ["uuid", str(PORTS[0])]], ["name", "==", "p0"]]},
    {"where": [["_uuid", "==", ["named-uuid", "x"]]]},
    {"where": [[["_uuid"], "==", ["uuid", str(PORTS[0])]]]},
    {"where": "x"},
    {"table": "Interface"},
    {"table": "Nonesuch"},
    {"table": 3},
    {"op": "select"},
]


@pytest.mark.parametrize("changes", VARIANTS)
def test_ovsdb_cpu_wait_run_stops_where_the_single_check_says(db, changes):
    txn = Transaction(db)
    table = db.table_schema("Port")
    odd = vsctl_wait(0, **changes)
    ops = [vsctl_wait(1), odd, vsctl_wait(2)]
    single = isinstance(odd.get("table"), str) and odd.get("op") == "wait" \
        and odd["table"] in ("Port", "Interface") \
        and wait_holds_as_sent(db.table_schema(odd["table"]), odd, txn.get)
    assert holding_waits_end(db, txn, ops, 0) == (3 if single else 1)
    assert holding_waits_end(db, txn, ops, 1) == (3 if single else 1)
    assert holding_waits_end(db, txn, ops, 2) == 3
    assert wait_holds_as_sent(table, vsctl_wait(1), txn.get)


def test_ovsdb_cpu_wait_run_sees_the_transactions_own_writes(db):
    txn = Transaction(db)
    table = db.table_schema("Port")
    ops = [vsctl_wait(i) for i in range(4)]
    assert holding_waits_end(db, txn, ops, 0) == 4
    txn.delete("Port", PORTS[1])
    assert holding_waits_end(db, txn, ops, 0) == 1
    changed = _port_row(table, 2)
    changed.data["interfaces"] = datum_from_json(table.columns["interfaces"].type,
                                                 ["uuid", IFACES[3]])
    txn.put("Port", changed)
    assert holding_waits_end(db, txn, ops, 2) == 2
    assert holding_waits_end(db, txn, ops, 3) == 4
    assert holding_waits_end(db, txn, [], 0) == 0


def _results(db, ops, fast: bool, monkeypatch) -> list:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(execution, "holding_waits_end", lambda _db, _txn, _ops, start: start)
        return Executor(db, set()).run(copy.deepcopy(ops)).results


@pytest.mark.parametrize("changes", VARIANTS)
def test_ovsdb_cpu_wait_run_gives_the_full_paths_results(db, changes, monkeypatch):
    ops = [vsctl_wait(1), vsctl_wait(0, **changes), vsctl_wait(2),
           {"op": "comment", "comment": "x"}, vsctl_wait(3)]
    fast = _results(db, ops, True, monkeypatch)
    assert fast == _results(db, ops, False, monkeypatch)
    assert fast[0] == {} and len(fast) == len(ops)


def test_ovsdb_cpu_rows_by_text_follow_every_commit(db):
    table = db.table_schema("Port")
    renamed = _port_row(table, 1)
    renamed.data["name"] = datum_from_json(table.columns["name"].type, "renamed")
    fresh = Row(uuid.UUID(int=99), uuid.uuid4(), default_data(table))
    db.apply({"Port": {PORTS[0]: (db.tables["Port"][PORTS[0]], None),
                       PORTS[1]: (db.tables["Port"][PORTS[1]], renamed),
                       fresh.uuid: (None, fresh)}})
    for name, rows in db.tables.items():
        assert db.by_text[name] == {str(u): row for u, row in rows.items()}
    assert db.by_text["Port"][str(PORTS[1])] is renamed
    assert str(PORTS[0]) not in db.by_text["Port"]
