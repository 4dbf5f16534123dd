"""Plain strings parsed without python-ovs (datum_json.datum_from_json) must
give python-ovs's datum or, through it, its error, for every kind of string
column: free, length-limited, enumerated, optional, a set, a map."""

from __future__ import annotations

import ovs.db.error
import pytest
from ovs.db.data import Datum
from ovs.db.types import Type

from ovsbpfd.ovsdb.datum_json import datum_from_json
from ovsbpfd.ovsdb.schema import Schema, schema_path

SCHEMA = Schema.from_file(schema_path()).parsed
TYPES = {
    "name": SCHEMA.tables["Port"].columns["name"].type,
    "fail_mode": SCHEMA.tables["Bridge"].columns["fail_mode"].type,
    "protocols": SCHEMA.tables["Bridge"].columns["protocols"].type,
    "external_ids": SCHEMA.tables["Bridge"].columns["external_ids"].type,
    "short": Type.from_json({"key": {"type": "string", "minLength": 2, "maxLength": 4}}),
    "optional": Type.from_json({"key": "string", "min": 0, "max": 1}),
    "uuids": SCHEMA.tables["Bridge"].columns["ports"].type,
}
VALUES = ["", "p0", "abcd", "abcde", "a", "secure", "standalone", "OpenFlow13", "é", "日本語",
          "\ud800", 5, True, None, ["set", ["p0"]], ["set", []], ["map", []], ["uuid", "x"]]


def _outcome(parse, t, value):
    try:
        return sorted((k.value, v) for k, v in parse(t, value).values.items())
    except ovs.db.error.Error as e:
        return ("error", str(e))


@pytest.mark.parametrize("type_name", TYPES)
@pytest.mark.parametrize("value", VALUES)
def test_ovsdb_cpu_string_parse_is_python_ovs(type_name, value):
    t = TYPES[type_name]
    expected = _outcome(Datum.from_json, t, value)
    if value is None and expected[0] == "error":
        # One deliberate difference: python-ovs tags a null atom "ovsdb error"
        # (it cannot tell null from no JSON), ovsdb-server "syntax error"
        # (test_ovsdb_differential_more, null_atom_is_syntax_error).
        expected = ("error", expected[1].replace("ovsdb error", "syntax error"))
    assert _outcome(datum_from_json, t, value) == expected


def test_ovsdb_cpu_string_fast_path_makes_a_datum_of_the_column_type():
    datum = datum_from_json(TYPES["name"], "p0")
    assert datum.type is TYPES["name"] and [k.value for k in datum.values] == ["p0"]
    assert datum == Datum.from_json(TYPES["name"], "p0")
