"""Differential conformance: the same JSON-RPC sequences go to ovsbpfd's OVSDB
server and to Debian's ovsdb-server; replies and notifications must match once
UUIDs (and the order of rows, which is a hash order) are normalised."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from .helpers import RpcClient, debian_server, ovsbpfd_server

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None,
                                reason="Debian ovsdb-server not installed")

DB = "Open_vSwitch"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ROOT_TABLES = ["Open_vSwitch", "QoS", "Queue", "Flow_Sample_Collector_Set"]
RESET = [{"op": "delete", "table": t, "where": []} for t in ROOT_TABLES]


def T(*ops):
    return ("transact", [DB, *ops])


def ins(table, row, name=None):
    op = {"op": "insert", "table": table, "row": row}
    if name:
        op["uuid-name"] = name
    return op


def sel(table, where=(), columns=None):
    op = {"op": "select", "table": table, "where": list(where)}
    if columns is not None:
        op["columns"] = columns
    return op


OVS_ROW = ins("Open_vSwitch", {"next_cfg": 1}, "o")
BRIDGE = [ins("Bridge", {"name": "br0"}, "b"),
          {"op": "mutate", "table": "Open_vSwitch", "where": [],
           "mutations": [["bridges", "insert", ["set", [["named-uuid", "b"]]]]]}]
SETUP = T(OVS_ROW, *BRIDGE)

CASES: dict[str, list] = {
    "list_dbs": [("list_dbs", [])],
    "echo": [("echo", ["a", 1, {"b": None}])],
    "unknown_method": [("frobnicate", [])],
    "set_db_change_aware": [("set_db_change_aware", [True])],
    "get_schema_unknown_db": [("get_schema", ["Nope"])],
    "transact_unknown_db": [("transact", ["Nope", sel("Bridge")])],
    "transact_no_db": [("transact", [])],
    "transact_no_ops": [("transact", [DB])],
    "insert_select": [SETUP, T(sel("Bridge", columns=["name", "ports", "fail_mode"]))],
    "select_all_columns": [SETUP, T(sel("Bridge", [["name", "==", "br0"]]))],
    "select_uuid_column": [SETUP, T(sel("Open_vSwitch", columns=["_uuid", "next_cfg"]))],
    "select_bad_column": [T(sel("Bridge", columns=["nope"]))],
    "select_missing_table": [T({"op": "select", "where": []})],
    "select_where_type": [T({"op": "select", "table": "Bridge", "where": {}})],
    "select_extra_member": [T({"op": "select", "table": "Bridge", "where": [], "x": 1})],
    "unknown_table": [T(sel("Bridgex"))],
    "unknown_op": [T({"op": "frob"})],
    "op_not_object": [T(5)],
    "unknown_column_insert": [T(ins("Bridge", {"namex": 1}))],
    "wrong_type_insert": [T(ins("Bridge", {"name": 1}))],
    "enum_violation": [T(ins("Bridge", {"name": "x", "fail_mode": "bad"}))],
    "range_violation": [T(ins("Bridge", {"name": "x", "flood_vlans": 5000}))],
    "set_size_violation": [T(ins("Bridge", {"name": "x",
                                            "flood_vlans": ["set", list(range(4097))]}))],
    "bad_uuid_name": [T(ins("Bridge", {"name": "q"}, "1x"))],
    "duplicate_uuid_name": [T(ins("Bridge", {"name": "q"}, "a"),
                              ins("Bridge", {"name": "r"}, "a"))],
    "forward_named_uuid": [T(OVS_ROW), T(
        {"op": "mutate", "table": "Open_vSwitch", "where": [],
         "mutations": [["bridges", "insert", ["set", [["named-uuid", "fwd"]]]]]},
        ins("Bridge", {"name": "fwd"}, "fwd")), T(sel("Bridge", columns=["name"]))],
    "dangling_named_uuid": [T(ins("Open_vSwitch", {"bridges": ["named-uuid", "x"]}))],
    "max_rows": [T(OVS_ROW), T(ins("Open_vSwitch", {}))],
    "index_violation": [T(OVS_ROW, ins("Bridge", {"name": "d"}, "b"),
                          ins("Bridge", {"name": "d"}, "c"),
                          {"op": "update", "table": "Open_vSwitch", "where": [],
                           "row": {"bridges": ["set", [["named-uuid", "b"],
                                                       ["named-uuid", "c"]]]}})],
    "index_vs_existing": [SETUP, T(ins("Bridge", {"name": "br0"}, "c"),
                                   {"op": "mutate", "table": "Open_vSwitch", "where": [],
                                    "mutations": [["bridges", "insert", ["named-uuid", "c"]]]})],
    "garbage_collection": [T(OVS_ROW, ins("Bridge", {"name": "orphan"})),
                           T(sel("Bridge", columns=["name"]))],
    "gc_after_unreference": [SETUP, T({"op": "update", "table": "Open_vSwitch", "where": [],
                                       "row": {"bridges": ["set", []]}}),
                             T(sel("Bridge", columns=["name"]))],
    "delete_referenced": [SETUP, T({"op": "delete", "table": "Bridge", "where": []})],
    "delete_count": [SETUP, T({"op": "delete", "table": "Open_vSwitch", "where": []}),
                     T(sel("Bridge"))],
    "update_immutable": [SETUP, T({"op": "update", "table": "Bridge", "where": [],
                                   "row": {"name": "x"}})],
    "update_missing_row": [T({"op": "update", "table": "Bridge", "where": []})],
    "update_count": [SETUP, T({"op": "update", "table": "Bridge",
                               "where": [["name", "==", "br0"]],
                               "row": {"external_ids": ["map", [["k", "v"]]]}}),
                     T(sel("Bridge", columns=["external_ids"]))],
    "mutate_arith": [T(OVS_ROW), T({"op": "mutate", "table": "Open_vSwitch", "where": [],
                                    "mutations": [["next_cfg", "+=", 5],
                                                  ["next_cfg", "*=", 3]]}),
                     T(sel("Open_vSwitch", columns=["next_cfg"]))],
    "mutate_div_zero": [T(OVS_ROW), T({"op": "mutate", "table": "Open_vSwitch", "where": [],
                                       "mutations": [["next_cfg", "/=", 0]]})],
    "mutate_overflow": [T(OVS_ROW), T({"op": "mutate", "table": "Open_vSwitch", "where": [],
                                       "mutations": [["next_cfg", "+=", 2**63 - 1]]})],
    "mutate_type_mismatch": [T({"op": "mutate", "table": "Open_vSwitch", "where": [],
                                "mutations": [["next_cfg", "insert", 1]]})],
    "mutate_immutable": [SETUP, T({"op": "mutate", "table": "Bridge", "where": [],
                                   "mutations": [["name", "+=", "x"]]})],
    "mutate_map_insert_delete": [SETUP, T(
        {"op": "mutate", "table": "Bridge", "where": [],
         "mutations": [["external_ids", "insert", ["map", [["a", "1"], ["b", "2"]]]]]},
        {"op": "mutate", "table": "Bridge", "where": [],
         "mutations": [["external_ids", "delete", ["set", ["a"]]]]},
        {"op": "mutate", "table": "Bridge", "where": [],
         "mutations": [["external_ids", "delete", ["map", [["b", "3"]]]]]}),
        T(sel("Bridge", columns=["external_ids"]))],
    "mutate_set_range": [SETUP, T({"op": "mutate", "table": "Bridge", "where": [],
                                   "mutations": [["flood_vlans", "insert", ["set", [5000]]]]})],
    "condition_functions": [SETUP, T(
        sel("Open_vSwitch", [["next_cfg", "<", 2]], ["next_cfg"]),
        sel("Open_vSwitch", [["next_cfg", ">=", 2]], ["next_cfg"]),
        sel("Bridge", [["name", "!=", "br0"]], ["name"]),
        sel("Bridge", [["ports", "includes", ["set", []]]], ["name"]),
        sel("Bridge", [["fail_mode", "excludes", "secure"]], ["name"]))],
    "condition_type_mismatch": [T(sel("Bridge", [["name", "<", "a"]]))],
    "condition_unknown_column": [T(sel("Bridge", [["namex", "==", "a"]]))],
    "condition_unknown_function": [T(sel("Bridge", [["name", "~", "a"]]))],
    "condition_malformed": [T(sel("Bridge", [["name", "=="]]))],
    "condition_boolean": [SETUP, T(sel("Bridge", [True], ["name"]),
                                   sel("Bridge", [False], ["name"]))],
    "wait_ok": [SETUP, T({"op": "wait", "table": "Bridge", "where": [], "columns": ["name"],
                          "until": "==", "rows": [{"name": "br0"}], "timeout": 0})],
    "wait_timeout_zero": [SETUP, T({"op": "wait", "table": "Bridge", "where": [],
                                    "columns": ["name"], "until": "==",
                                    "rows": [{"name": "zz"}], "timeout": 0})],
    "wait_not_equal": [SETUP, T({"op": "wait", "table": "Bridge", "where": [],
                                 "columns": ["name"], "until": "!=",
                                 "rows": [{"name": "zz"}], "timeout": 0})],
    "wait_bad_until": [T({"op": "wait", "table": "Bridge", "where": [], "columns": ["name"],
                          "until": "<", "rows": []})],
    "commit_abort": [T({"op": "commit", "durable": True}, {"op": "abort"})],
    "commit_missing_durable": [T({"op": "commit"})],
    "abort_rolls_back": [T(OVS_ROW, {"op": "abort"}), T(sel("Open_vSwitch", columns=["next_cfg"]))],
    "comment_assert": [T({"op": "comment", "comment": "hi"}, {"op": "assert", "lock": "foo"})],
    "comment_missing": [T({"op": "comment"})],
    "locks": [("lock", ["L"]), ("lock", ["L"]), ("unlock", ["M"]), ("steal", ["L"]),
              ("unlock", ["L"])],
    "assert_held_lock": [("lock", ["A"]), T({"op": "assert", "lock": "A"}), ("unlock", ["A"])],
    "monitor_v1": [SETUP, ("monitor", [DB, ["v1"], {"Bridge": {"columns": ["name", "fail_mode"]}}]),
                   T({"op": "update", "table": "Bridge", "where": [],
                      "row": {"fail_mode": "secure"}}),
                   ("monitor", [DB, ["v1"], {"Bridge": {"columns": ["name"]}}]),
                   ("monitor_cancel", [["v1"]]), ("monitor_cancel", [["v1"]])],
    "monitor_errors": [("monitor", [DB, ["x"], {"Bridgez": {"columns": ["name"]}}]),
                       ("monitor", [DB, ["y"], {"Bridge": {"columns": ["namez"]}}]),
                       ("monitor", [DB, ["z"], {"Bridge": [{"columns": ["name"]},
                                                           {"columns": ["name"]}]}])],
    "monitor_select": [SETUP, ("monitor", [DB, 7, {"Bridge": {
        "columns": ["name"], "select": {"initial": False, "modify": False}}}]),
        T({"op": "update", "table": "Bridge", "where": [], "row": {"stp_enable": True}}),
        T({"op": "update", "table": "Open_vSwitch", "where": [], "row": {"bridges": ["set", []]}})],
    "monitor_cond_update2": [SETUP, ("monitor_cond", [DB, ["c"], {
        "Bridge": [{"columns": ["name", "fail_mode", "external_ids", "flood_vlans"]}],
        "Open_vSwitch": [{"columns": ["next_cfg"]}]}]),
        T({"op": "update", "table": "Bridge", "where": [],
           "row": {"fail_mode": "standalone", "external_ids": ["map", [["a", "1"]]],
                   "flood_vlans": ["set", [1, 2]]}},
          {"op": "mutate", "table": "Open_vSwitch", "where": [],
           "mutations": [["next_cfg", "+=", 1]]}),
        T({"op": "update", "table": "Bridge", "where": [],
           "row": {"fail_mode": ["set", []], "external_ids": ["map", [["a", "2"], ["b", "1"]]],
                   "flood_vlans": ["set", [2, 3]]}})],
    "monitor_cond_where_change": [SETUP, ("monitor_cond", [DB, ["c"], {
        "Bridge": [{"columns": ["name"], "where": [["name", "==", "nothing"]]}]}]),
        ("monitor_cond_change", [["c"], ["d"], {"Bridge": [{"where": [["name", "==", "br0"]]}]}]),
        T({"op": "update", "table": "Bridge", "where": [], "row": {"stp_enable": True}}),
        ("monitor_cond_change", [["d"], ["e"], {"Bridge": [{"where": [False]}]}]),
        ("monitor_cancel", [["e"]])],
    "monitor_cond_since": [SETUP, ("monitor_cond_since", [DB, ["m"], {
        "Open_vSwitch": [{"columns": ["next_cfg"]}]}, "00000000-0000-0000-0000-000000000000"]),
        T({"op": "mutate", "table": "Open_vSwitch", "where": [],
           "mutations": [["next_cfg", "+=", 1]]})],
    "server_db": [("get_schema", ["_Server"]),
                  ("monitor_cond", ["_Server", ["s"], {"Database": [{"columns": [
                      "name", "model", "connected", "leader", "cid", "sid", "index"]}]}])],
    "write_server_db": [("transact", ["_Server", ins("Database", {"name": "x",
                                                                  "model": "standalone"})])],
    "transact_server_db": [("transact", ["_Server", sel("Database", columns=["name"])])],
    "weak_reference": [SETUP, T(ins("Port", {"name": "p"}, "p"),
                                ins("Interface", {"name": "p"}, "i"),
                                {"op": "update", "table": "Port", "where": [],
                                 "row": {"interfaces": ["named-uuid", "i"]}},
                                ins("Mirror", {"name": "m", "select_src_port": ["named-uuid", "p"]},
                                    "m"),
                                {"op": "update", "table": "Bridge", "where": [],
                                 "row": {"ports": ["named-uuid", "p"],
                                         "mirrors": ["named-uuid", "m"]}}),
                       T({"op": "update", "table": "Bridge", "where": [],
                          "row": {"ports": ["set", []]}}),
                       T(sel("Mirror", columns=["name", "select_src_port"]))],
    "pipelined_requests": [("raw", b'{"id":1,"method":"echo","params":[1]}'
                                   b'{"id":2,"method":"echo","params":[2]}')],
    "bad_json_drops": [("raw", b'{"id":1,"method":"echo","params":[1]}{"id":')],
    "params_not_array_drops": [("raw", b'{"id":1,"method":"transact","params":"x"}')],
}


INDEX_ROWS_RE = re.compile(r"First row, with UUID <uuid>, (.*?)\.  "
                           r"Second row, with UUID <uuid>, (.*?)\.$")


def _rows_unordered(m: re.Match) -> str:
    # Which duplicate ovsdb-server calls "first" depends on its hash order.
    return "rows: " + " / ".join(sorted(m.groups()))


def normalise(value):
    if isinstance(value, str):
        return INDEX_ROWS_RE.sub(_rows_unordered, UUID_RE.sub("<uuid>", value))
    if isinstance(value, list):
        items = [normalise(v) for v in value]
        if len(items) == 2 and items[0] in ("set", "map") and isinstance(items[1], list):
            return [items[0], sorted(items[1], key=json.dumps)]
        return items
    if isinstance(value, dict):
        if value and all(UUID_RE.fullmatch(k) for k in value):
            return sorted((normalise(v) for v in value.values()), key=json.dumps)
        out = {k: normalise(v) for k, v in value.items()}
        if "rows" in out and isinstance(out["rows"], list):
            out["rows"] = sorted(out["rows"], key=json.dumps)
        return out
    return value


def run_case(sock: str, steps: list) -> list:
    client = RpcClient(sock, timeout=3.0)
    try:
        client.transact(DB, *RESET)
        transcript = []
        for i, step in enumerate(steps):
            if step[0] == "raw":
                client.send_raw(step[1])
                client.sock.settimeout(0.5)
                got = []
                try:
                    while (msg := client.recv()) is not None:
                        got.append(msg)
                    got.append("<closed>")
                except TimeoutError:
                    got.append("<open>")
                client.sock.settimeout(3.0)
                transcript.append(got)
                continue
            method, params = step
            reply, notes = client.call(method, params, msg_id=i)
            transcript.append({"notes": notes, "reply": reply})
        return normalise(transcript)
    finally:
        client.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    ours_dir = tmp_path_factory.mktemp("ours")
    ref_dir = tmp_path_factory.mktemp("ref")
    with ovsbpfd_server(str(ours_dir)) as (ours, _p1), debian_server(str(ref_dir)) as (ref, _p2):
        yield ours, ref


@pytest.mark.parametrize("name", sorted(CASES))
def test_ovsdb_same_as_ovsdb_server(servers, name):
    ours, ref = servers
    expected = run_case(ref, CASES[name])
    actual = run_case(ours, CASES[name])
    assert actual == expected


def test_ovsdb_case_count():
    assert len(CASES) >= 40
