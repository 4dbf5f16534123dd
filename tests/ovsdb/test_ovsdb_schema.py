"""The served vswitch schema matches Debian's openvswitch-common 3.1, column for column."""

import json
import os

import pytest

from ovsbpfd.ovsdb.schema import Schema, schema_path, server_schema

from .helpers import DEBIAN_SCHEMA


def _columns(path: str) -> dict[str, dict]:
    with open(path) as f:
        tables = json.load(f)["tables"]
    return {t: {c: v["type"] for c, v in spec["columns"].items()} for t, spec in tables.items()}


@pytest.mark.skipif(not os.path.exists(DEBIAN_SCHEMA), reason="openvswitch-common missing")
def test_ovsdb_schema_same_tables_and_columns_as_debian():
    assert _columns(schema_path()) == _columns(DEBIAN_SCHEMA)


def test_ovsdb_schema_parses_with_python_ovs():
    schema = Schema.from_file(schema_path())
    assert schema.name == "Open_vSwitch"
    assert not schema.parsed.tables["Bridge"].is_root
    assert schema.parsed.tables["Open_vSwitch"].max_rows == 1


def test_ovsdb_server_schema_has_database_table():
    cols = set(server_schema().parsed.tables["Database"].columns)
    assert cols == {"name", "model", "connected", "leader", "schema", "cid", "sid", "index"}
