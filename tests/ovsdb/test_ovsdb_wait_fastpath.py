"""The wait fast path (wait_check.wait_holds_as_sent) says True only for a
wait written exactly as ovs-vsctl writes it and holding as sent; any other
member, timeout or spelling sends the operation down the full path."""

from __future__ import annotations

import copy
import uuid

import pytest

from ovsbpfd.ovsdb.database import Database, Row, default_data
from ovsbpfd.ovsdb.datum_json import datum_from_json
from ovsbpfd.ovsdb.schema import Schema
from ovsbpfd.ovsdb.wait_check import wait_holds_as_sent

from .helpers import SCHEMA

PORT = uuid.UUID("11111111-2222-3333-4444-555555555555")
IFACE = "66666666-7777-8888-9999-aaaaaaaaaaaa"


@pytest.fixture(scope="module")
def port_table():
    db = Database(Schema.from_file(SCHEMA))
    table = db.table_schema("Port")
    data = default_data(table)
    data["name"] = datum_from_json(table.columns["name"].type, "p0")
    data["interfaces"] = datum_from_json(table.columns["interfaces"].type, ["uuid", IFACE])
    row = Row(PORT, uuid.uuid4(), data)
    return table, (lambda name, u: row if (name, u) == ("Port", PORT) else None)


def vsctl_wait(**changes):
    op = {"rows": [{"interfaces": ["uuid", IFACE]}], "until": "==",
          "where": [["_uuid", "==", ["uuid", str(PORT)]]], "columns": ["interfaces"],
          "timeout": 0, "op": "wait", "table": "Port"}
    for key, value in changes.items():
        if value is KeyError:
            del op[key]
        else:
            op[key] = value
    return op


def test_ovsdb_wait_as_vsctl_sends_it_holds(port_table):
    table, get_row = port_table
    assert wait_holds_as_sent(table, vsctl_wait(), get_row)
    assert wait_holds_as_sent(table, vsctl_wait(timeout=KeyError), get_row)
    assert wait_holds_as_sent(table, vsctl_wait(timeout=5000), get_row)
    two = vsctl_wait(columns=["interfaces", "name"],
                     rows=[{"interfaces": ["uuid", IFACE], "name": "p0"}])
    assert wait_holds_as_sent(table, two, get_row)


@pytest.mark.parametrize("changes", [
    {"extra": 1},
    {"timeout": KeyError, "extra": 1},
    {"timeout": True},
    {"timeout": -1},
    {"timeout": 1.5},
    {"timeout": None},
    {"until": KeyError},
    {"until": "!="},
    {"rows": KeyError},
    {"columns": ["interfaces", "interfaces"],
     "rows": [{"interfaces": ["uuid", IFACE]}]},
    {"columns": ["nonesuch"]},
    {"columns": [1]},
    {"rows": [{"interfaces": ["uuid", IFACE.upper()]}]},
    {"rows": [{"interfaces": ["set", [["uuid", IFACE]]]}]},
    {"rows": [{"interfaces": ["uuid", IFACE], "name": "p0"}]},
    {"where": [["_uuid", "==", ["uuid", "not-a-uuid"]]]},
    {"where": [["name", "==", "p0"]]},
])
def test_ovsdb_wait_in_any_other_shape_takes_the_full_path(port_table, changes):
    table, get_row = port_table
    assert not wait_holds_as_sent(table, vsctl_wait(**copy.deepcopy(changes)), get_row)
