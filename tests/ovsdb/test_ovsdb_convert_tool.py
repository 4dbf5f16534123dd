"""Schema conversion compared with Debian's `ovsdb-tool convert` on the same
file: the same contents afterwards (rows, uuids, values), or the same error
for a conversion that cannot be done."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable

import pytest

from ovsbpfd.ovsdb.convert import upgrade_file
from ovsbpfd.ovsdb.errors import OvsdbError
from ovsbpfd.ovsdb.schema import Schema
from tests.ovsdb.helpers import SCHEMA

DB = "Open_vSwitch"

POPULATION = [DB,
    {"op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"]}},
    {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {
        "name": "br0", "fail_mode": "standalone", "ports": ["set", [
            ["named-uuid", "p1"], ["named-uuid", "p2"]]],
        "mirrors": ["named-uuid", "m"]}},
    {"op": "insert", "table": "Port", "uuid-name": "p1", "row": {
        "name": "p1", "tag": 100, "trunks": ["set", [1, 2, 3]],
        "mac": "00:00:00:00:00:01", "interfaces": ["named-uuid", "i1"]}},
    {"op": "insert", "table": "Port", "uuid-name": "p2", "row": {
        "name": "p2", "tag": 100, "interfaces": ["named-uuid", "i2"]}},
    {"op": "insert", "table": "Interface", "uuid-name": "i1", "row": {
        "name": "p1", "options": ["map", [["k", "v"]]]}},
    {"op": "insert", "table": "Interface", "uuid-name": "i2", "row": {
        "name": "p2", "options": ["map", [["k", "v"]]]}},
    {"op": "insert", "table": "Mirror", "uuid-name": "m", "row": {
        "name": "m0", "select_src_port": ["set", [["named-uuid", "p1"], ["named-uuid", "p2"]]]}},
    {"op": "insert", "table": "QoS", "row": {"type": "linux-htb"}},
]


def _cols(schema: dict, table: str) -> dict:
    return schema["tables"][table]["columns"]


def _add_and_drop(s: dict) -> None:
    _cols(s, "Bridge")["note"] = {"type": {"key": "string", "min": 0, "max": 1}}
    del _cols(s, "Port")["mac"]


def _narrow_range(s: dict) -> None:
    _cols(s, "Port")["tag"]["type"]["key"]["maxInteger"] = 50


def _narrow_enum(s: dict) -> None:
    _cols(s, "Bridge")["fail_mode"]["type"]["key"]["enum"] = ["set", ["secure"]]


def _fewer_elements(s: dict) -> None:
    _cols(s, "Port")["trunks"]["type"]["max"] = 2


def _integer_to_string(s: dict) -> None:
    _cols(s, "Port")["tag"]["type"] = {"key": "string", "min": 0, "max": 1}


def _integer_to_real(s: dict) -> None:
    _cols(s, "Port")["tag"]["type"] = {"key": "real", "min": 0, "max": 1}


def _now_required(s: dict) -> None:
    _cols(s, "Bridge")["netflow"]["type"]["min"] = 1


def _not_root_any_more(s: dict) -> None:
    s["tables"]["QoS"]["isRoot"] = False


def _new_index_with_duplicates(s: dict) -> None:
    s["tables"]["Port"]["indexes"] = [["name"], ["tag"]]


def _drop_table(s: dict) -> None:
    del s["tables"]["Mirror"]
    del _cols(s, "Bridge")["mirrors"]


def _weak_to_strong(s: dict) -> None:
    _cols(s, "Mirror")["select_src_port"]["type"]["key"].pop("refType")


def _map_to_set(s: dict) -> None:
    _cols(s, "Interface")["options"]["type"] = {"key": "string", "min": 0, "max": "unlimited"}


CHANGES: dict[str, Callable[[dict], None]] = {
    "add_and_drop_columns": _add_and_drop,
    "narrower_range": _narrow_range,
    "narrower_enum": _narrow_enum,
    "fewer_set_elements": _fewer_elements,
    "integer_to_string": _integer_to_string,
    "integer_to_real": _integer_to_real,
    "column_now_required": _now_required,
    "table_not_root_any_more": _not_root_any_more,
    "new_index_with_duplicates": _new_index_with_duplicates,
    "table_dropped": _drop_table,
    "weak_reference_made_strong": _weak_to_strong,
    "map_to_set": _map_to_set,
}


# Debian's ovsdb-tool 3.1 "converts" these by writing an empty database
# (exit status 0, every row lost); ovsbpfd refuses them, with the error that
# a transaction writing the same rows under the new schema gets (its start).
EMPTIED_BY_OVSDB_TOOL = {
    "column_now_required": "ovsdb-tool: syntax \"[\"set\",[]]\": syntax error: "
                           "set must have exactly one member but 0 are present",
    "new_index_with_duplicates": "ovsdb-tool: constraint violation: Transaction causes "
                                 "multiple rows in \"Port\" table to have identical values",
}


def _dump(path: str, schema: dict) -> dict:
    """Every row of every table of the file, all columns but _version."""
    ops = [{"op": "select", "table": t, "where": [],
            "columns": ["_uuid", *sorted(schema["tables"][t]["columns"])]}
           for t in sorted(schema["tables"])]
    out = subprocess.run(["ovsdb-tool", "query", path, json.dumps([DB, *ops])],
                         capture_output=True, text=True, check=True).stdout
    return {t: sorted(r["rows"], key=json.dumps)
            for t, r in zip(sorted(schema["tables"]), json.loads(out), strict=True)}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_conversion_matches_ovsdb_tool(change: str) -> None:
    with open(SCHEMA) as f:
        schema = json.load(f)
    new = copy.deepcopy(schema)
    new["version"] = "9.0.0"
    new.pop("cksum", None)
    CHANGES[change](new)
    with tempfile.TemporaryDirectory() as tmp:
        schema_file = os.path.join(tmp, "new.ovsschema")
        with open(schema_file, "w") as f:
            json.dump(new, f)
        theirs, ours = os.path.join(tmp, "theirs.db"), os.path.join(tmp, "ours.db")
        subprocess.run(["ovsdb-tool", "create", theirs, SCHEMA], check=True)
        subprocess.run(["ovsdb-tool", "transact", theirs, json.dumps(POPULATION)],
                       check=True, capture_output=True)
        shutil.copy(theirs, ours)
        tool = subprocess.run(["ovsdb-tool", "convert", theirs, schema_file],
                              capture_output=True, text=True)
        try:
            upgrade_file(ours, Schema.from_json(new))
            our_error = None
        except OvsdbError as e:
            our_error = f"ovsdb-tool: {e.to_text()}"
        if change in EMPTIED_BY_OVSDB_TOOL:
            assert tool.returncode == 0 and not any(_dump(theirs, new).values())
            assert our_error is not None
            assert our_error.startswith(EMPTIED_BY_OVSDB_TOOL[change])
            return
        if tool.returncode != 0:
            assert our_error == tool.stderr.strip()
            return
        assert our_error is None
        assert _dump(ours, new) == _dump(theirs, new)
