"""More differential conformance against Debian's ovsdb-server: every
operation's argument errors, every atom/datum check, references, indexes,
monitors of every form, locks and waits across two clients, JSON-RPC shapes,
and a small schema (data/constraints.ovsschema) with the constraints the
vswitch schema lacks (enum and range defaults, reals, string lengths, weak
references with a minimum, multi-column indexes, row limits).

A case is a list of steps, each run on client 1 or 2 of the same server:
  ("call", c, method, params)   request, wait for its reply
  ("send", c, method, params)   request, do not wait
  ("note", c, method, params)   JSON-RPC notification (id null)
  ("raw", c, bytes)             bytes as they are
  ("drain", c)                  everything that arrives within a short while
  ("close", c)                  disconnect
Replies and notifications are normalised as in test_ovsdb_differential.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from .helpers import RpcClient, debian_server, ovsbpfd_server
from .test_ovsdb_differential import normalise as base_normalise

pytestmark = pytest.mark.skipif(
    shutil.which("ovsdb-server") is None, reason="Debian ovsdb-server not installed"
)

DB = "Open_vSwitch"
CDB = "Constraints"
CSCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "constraints.ovsschema")
VS_ROOTS = ["Open_vSwitch", "QoS", "Queue", "Flow_Sample_Collector_Set", "Manager", "SSL"]


def call(method, params, c=1):
    return ("call", c, method, params)


def T(*ops, c=1, db=DB):
    return ("call", c, "transact", [db, *ops])


def CT(*ops, c=1):
    return T(*ops, c=c, db=CDB)


def ins(table, row, name=None, **extra):
    op = {"op": "insert", "table": table, "row": row, **extra}
    if name:
        op["uuid-name"] = name
    return op


def sel(table, where=(), columns=None):
    op = {"op": "select", "table": table, "where": list(where)}
    if columns is not None:
        op["columns"] = columns
    return op


def upd(table, row, where=()):
    return {"op": "update", "table": table, "where": list(where), "row": row}


def mut(table, mutations, where=()):
    return {"op": "mutate", "table": table, "where": list(where), "mutations": mutations}


def dele(table, where=()):
    return {"op": "delete", "table": table, "where": list(where)}


def wait(table, rows, until="==", columns=("name",), where=(), **extra):
    return {
        "op": "wait",
        "table": table,
        "where": list(where),
        "columns": list(columns),
        "until": until,
        "rows": rows,
        **extra,
    }


def ref(name):
    return ["named-uuid", name]


ROOT = ins("Open_vSwitch", {"next_cfg": 1}, "o")
BR = [ins("Bridge", {"name": "br0"}, "b"), mut("Open_vSwitch", [["bridges", "insert", ref("b")]])]
SETUP = T(ROOT, *BR)
PORT = [
    ins("Interface", {"name": "p1"}, "i"),
    ins("Port", {"name": "p1", "interfaces": ref("i")}, "p"),
    mut("Bridge", [["ports", "insert", ref("p")]]),
]
SETUP_PORT = T(ROOT, *BR, *PORT)

# --- the vswitch schema --------------------------------------------------------------
VS: dict[str, list] = {
    # JSON-RPC and methods
    "echo_empty": [call("echo", [])],
    "echo_nested": [call("echo", [[1, [2, {"a": [None, True]}]], "é"])],
    "list_dbs_with_param": [call("list_dbs", ["x"])],
    "get_schema_no_params": [call("get_schema", [])],
    "get_schema_number": [call("get_schema", [5])],
    "get_schema_extra_param": [call("get_schema", [DB, None])],
    "get_schema_vswitch": [call("get_schema", [DB])],
    "transact_db_number": [call("transact", [5])],
    "set_db_change_aware_false": [call("set_db_change_aware", [False])],
    "notification_is_not_answered": [("note", 1, "echo", [1]), ("drain", 1)],
    "client_reply_is_ignored": [
        ("raw", 1, b'{"id":7,"result":[],"error":null}'),
        call("echo", ["after"]),
    ],
    "extra_member_drops": [("raw", 1, b'{"id":1,"method":"echo","params":[],"x":1}')],
    "array_message_drops": [("raw", 1, b"[1,2]")],
    "method_number_drops": [("raw", 1, b'{"id":1,"method":5,"params":[]}')],
    "params_missing_drops": [("raw", 1, b'{"id":1,"method":"echo"}')],
    "id_missing_drops": [("raw", 1, b'{"method":"echo","params":[]}')],
    "whitespace_between": [
        (
            "raw",
            1,
            b' \n {"id":1,"method":"echo","params":[1]}\n\t{"id":2,"method":"echo","params":[2]} ',
        )
    ],
    "garbage_drops": [("raw", 1, b"hello ")],
    "good_then_garbage": [("raw", 1, b'{"id":1,"method":"echo","params":[]} ]')],
    "cancel_unknown_id": [("note", 1, "cancel", [12345]), call("echo", ["x"])],
    "cancel_as_request": [call("cancel", [1])],
    # locks
    "lock_no_params": [call("lock", [])],
    "lock_number": [call("lock", [5])],
    "lock_two_names": [call("lock", ["a", "b"])],
    "steal_then_steal": [call("steal", ["S"]), call("steal", ["S"]), call("unlock", ["S"])],
    "unlock_never_locked": [call("unlock", ["never"])],
    "lock_contended": [
        call("lock", ["L"]),
        call("lock", ["L"], c=2),
        call("unlock", ["L"]),
        ("drain", 2),
        call("unlock", ["L"], c=2),
    ],
    "lock_stolen": [
        call("lock", ["L"]),
        call("steal", ["L"], c=2),
        ("drain", 1),
        T({"op": "assert", "lock": "L"}),
        T({"op": "assert", "lock": "L"}, c=2),
        call("unlock", ["L"], c=2),
        ("drain", 1),
    ],
    "lock_freed_by_disconnect": [
        call("lock", ["D"], c=2),
        call("lock", ["D"]),
        ("close", 2),
        ("drain", 1),
        T({"op": "assert", "lock": "D"}),
    ],
    # insert
    "insert_given_uuid": [
        T(
            ROOT,
            ins("Bridge", {"name": "u"}, uuid="1bad0000-0000-4000-8000-000000000001"),
            mut(
                "Open_vSwitch",
                [["bridges", "insert", ["uuid", "1bad0000-0000-4000-8000-000000000001"]]],
            ),
        ),
        T(sel("Bridge", columns=["_uuid", "name"])),
    ],
    "insert_bad_uuid": [T(ins("Bridge", {"name": "u"}, uuid="nope"))],
    "insert_duplicate_uuid": [
        T(
            ins("Open_vSwitch", {}, uuid="1bad0000-0000-4000-8000-000000000002"),
            ins("QoS", {}, uuid="1bad0000-0000-4000-8000-000000000002"),
        )
    ],
    "insert_row_not_object": [T({"op": "insert", "table": "Bridge", "row": []})],
    "insert_uuid_column": [
        T(ins("Bridge", {"_uuid": ["uuid", "1bad0000-0000-4000-8000-000000000003"]}))
    ],
    "insert_version_column": [
        T(ins("QoS", {"_version": ["uuid", "1bad0000-0000-4000-8000-000000000003"]}))
    ],
    "insert_unknown_member": [T(ins("Bridge", {}, foo=1))],
    "insert_no_table": [T({"op": "insert", "row": {}})],
    "insert_table_number": [T({"op": "insert", "table": 5, "row": {}})],
    "insert_uuid_name_number": [T({"op": "insert", "table": "QoS", "row": {}, "uuid-name": 5})],
    "insert_no_row": [T({"op": "insert", "table": "QoS"}), T(sel("QoS", columns=["type"]))],
    "insert_wrong_set_elements": [T(ins("Bridge", {"name": "x", "flood_vlans": ["set", ["a"]]}))],
    "insert_map_wrong_key": [T(ins("Bridge", {"name": "x", "external_ids": ["map", [[1, "a"]]]}))],
    "insert_map_wrong_value": [
        T(ins("Interface", {"name": "x", "statistics": ["map", [["a", "b"]]]}))
    ],
    "insert_string_for_int": [T(ins("Open_vSwitch", {"next_cfg": "1"}))],
    "insert_real_for_int": [T(ins("Open_vSwitch", {"next_cfg": 1.5}))],
    "insert_int_for_bool": [T(ins("Bridge", {"name": "x", "stp_enable": 1}))],
    "insert_duplicate_set": [T(ins("Bridge", {"name": "x", "flood_vlans": ["set", [1, 1]]}))],
    "insert_duplicate_map_key": [
        T(ins("Bridge", {"name": "x", "external_ids": ["map", [["a", "1"], ["a", "2"]]]}))
    ],
    "insert_bad_uuid_atom": [T(ins("Bridge", {"name": "x", "ports": ["uuid", "zz"]}))],
    "insert_named_uuid_number": [T(ins("Bridge", {"name": "x", "ports": ["named-uuid", 5]}))],
    "insert_int_too_big": [T(ins("Open_vSwitch", {"next_cfg": 2**63}))],
    "insert_netflow_range": [T(ins("NetFlow", {"targets": "1.2.3.4:5", "active_timeout": -2}))],
    "insert_queue_dscp": [T(ins("Queue", {"dscp": 64}))],
    "insert_ofport_request": [T(ins("Interface", {"name": "x", "ofport_request": 0}))],
    "insert_protocols_enum": [
        T(ins("Bridge", {"name": "x", "protocols": ["set", ["OpenFlow13", "OpenFlow99"]]}))
    ],
    "insert_role_enum": [T(ins("Controller", {"target": "tcp:1.2.3.4", "role": "boss"}))],
    "insert_timeout_policy_key_enum": [
        T(ins("CT_Timeout_Policy", {"timeouts": ["map", [["tcp_nope", 5]]]}))
    ],
    "insert_ipfix_sampling_min": [T(ins("IPFIX", {"sampling": 0}))],
    "insert_other_config_number": [
        T(ins("Bridge", {"name": "x", "other_config": ["map", [["a", 1]]]}))
    ],
    "insert_scalar_as_set": [T(ins("Bridge", {"name": ["set", ["a"]]}))],
    "insert_empty_set_for_required": [T(ins("Bridge", {"name": ["set", []]}))],
    "insert_optional_two_values": [
        T(ins("Bridge", {"name": "x", "fail_mode": ["set", ["secure", "standalone"]]}))
    ],
    "insert_wrong_ref_table": [
        SETUP,
        T(
            ins("Bridge", {"name": "x"}, "n"),
            mut("Bridge", [["ports", "insert", ref("n")]], [["name", "==", "br0"]]),
        ),
    ],
    "insert_unknown_named_uuid_in_set": [
        T(ROOT, mut("Open_vSwitch", [["bridges", "insert", ["set", [ref("ghost")]]]]))
    ],
    # select
    "select_columns_not_array": [T(sel("Bridge", columns="name"))],
    "select_version_column": [SETUP, T(sel("Bridge", columns=["_version", "name"]))],
    "select_no_columns": [SETUP, T(sel("Bridge", columns=[]))],
    "select_duplicate_columns": [SETUP, T(sel("Bridge", columns=["name", "name"]))],
    "select_by_uuid": [
        SETUP,
        T(sel("Bridge", [["_uuid", "==", ["uuid", "1bad0000-0000-4000-8000-000000000009"]]])),
    ],
    "select_where_set": [SETUP, T(sel("Bridge", [["flood_vlans", "==", ["set", []]]], ["name"]))],
    "select_where_map_includes": [
        SETUP,
        T(
            upd("Bridge", {"external_ids": ["map", [["a", "1"], ["b", "2"]]]}),
            sel("Bridge", [["external_ids", "includes", ["map", [["a", "1"]]]]], ["name"]),
            sel("Bridge", [["external_ids", "includes", ["map", [["a", "2"]]]]], ["name"]),
            sel("Bridge", [["external_ids", "excludes", ["map", [["c", "1"]]]]], ["name"]),
        ),
    ],
    "select_where_named_uuid": [SETUP, T(sel("Bridge", [["_uuid", "==", ref("nobody")]]))],
    "select_where_not_list": [T(sel("Bridge", ["name"]))],
    "select_where_numbers": [
        SETUP,
        T(sel("Open_vSwitch", [["next_cfg", ">", 0], ["next_cfg", "<=", 1]], ["next_cfg"])),
    ],
    "select_where_scalar_includes": [
        SETUP,
        T(
            sel("Bridge", [["name", "includes", "br0"]], ["name"]),
            sel("Bridge", [["name", "excludes", "br0"]], ["name"]),
        ),
    ],
    "select_where_wrong_type": [T(sel("Bridge", [["name", "==", 1]]))],
    "select_where_uuid_ordering": [
        T(sel("Bridge", [["_uuid", "<", ["uuid", "1bad0000-0000-4000-8000-000000000009"]]]))
    ],
    # update
    "update_no_match": [T(upd("Bridge", {"stp_enable": True}, [["name", "==", "zz"]]))],
    "update_unknown_column": [SETUP, T(upd("Bridge", {"zz": 1}))],
    "update_row_not_object": [T({"op": "update", "table": "Bridge", "where": [], "row": 5})],
    "update_uuid_column": [
        SETUP,
        T(upd("Bridge", {"_uuid": ["uuid", "1bad0000-0000-4000-8000-000000000003"]})),
    ],
    "update_empty_row": [SETUP, T(upd("Bridge", {}))],
    "update_bad_value": [SETUP, T(upd("Bridge", {"fail_mode": "x"}))],
    "update_missing_where": [T({"op": "update", "table": "Bridge", "row": {}})],
    "update_manager_swap_targets": [
        T(
            ROOT,
            ins("Manager", {"target": "ptcp:1"}, "m1"),
            ins("Manager", {"target": "ptcp:2"}, "m2"),
            mut("Open_vSwitch", [["manager_options", "insert", ["set", [ref("m1"), ref("m2")]]]]),
        ),
        T(
            upd("Manager", {"target": "ptcp:2"}, [["target", "==", "ptcp:1"]]),
            upd("Manager", {"target": "ptcp:1"}, [["target", "==", "ptcp:2"]]),
        ),
        T(sel("Manager", columns=["target"])),
    ],
    "update_manager_duplicate_target": [
        T(
            ROOT,
            ins("Manager", {"target": "ptcp:1"}, "m1"),
            ins("Manager", {"target": "ptcp:2"}, "m2"),
            mut("Open_vSwitch", [["manager_options", "insert", ["set", [ref("m1"), ref("m2")]]]]),
        ),
        T(upd("Manager", {"target": "ptcp:1"}, [["target", "==", "ptcp:2"]])),
    ],
    "collector_set_two_column_index": [
        SETUP,
        T(
            ins("Flow_Sample_Collector_Set", {"id": 1, "bridge": ["named-uuid", "x"]}),
            {"op": "comment", "comment": "bad named uuid"},
        ),
    ],
    "interface_name_index": [
        SETUP_PORT,
        T(
            ins("Interface", {"name": "p1"}, "j"),
            ins("Port", {"name": "p2", "interfaces": ref("j")}, "q"),
            mut("Bridge", [["ports", "insert", ref("q")]]),
        ),
    ],
    # mutate
    "mutate_unknown_mutator": [T(mut("Open_vSwitch", [["next_cfg", "^=", 1]]))],
    "mutate_malformed": [T(mut("Open_vSwitch", [["next_cfg", "+="]]))],
    "mutate_not_list": [T(mut("Open_vSwitch", "x"))],
    "mutate_map_insert_existing": [
        SETUP,
        T(
            mut("Bridge", [["external_ids", "insert", ["map", [["a", "1"]]]]]),
            mut("Bridge", [["external_ids", "insert", ["map", [["a", "2"]]]]]),
        ),
        T(sel("Bridge", columns=["external_ids"])),
    ],
    "mutate_set_delete": [
        SETUP,
        T(
            mut("Bridge", [["flood_vlans", "insert", ["set", [1, 2, 3]]]]),
            mut("Bridge", [["flood_vlans", "delete", ["set", [2, 9]]]]),
        ),
        T(sel("Bridge", columns=["flood_vlans"])),
    ],
    "mutate_sub_mod": [
        T(ROOT),
        T(mut("Open_vSwitch", [["next_cfg", "-=", 10], ["next_cfg", "%=", 4]])),
        T(sel("Open_vSwitch", columns=["next_cfg"])),
    ],
    "mutate_mod_zero": [T(ROOT), T(mut("Open_vSwitch", [["next_cfg", "%=", 0]]))],
    "mutate_div": [
        T(ROOT),
        T(mut("Open_vSwitch", [["next_cfg", "*=", -7], ["next_cfg", "/=", 2]])),
        T(sel("Open_vSwitch", columns=["next_cfg"])),
    ],
    "mutate_string_add": [SETUP, T(mut("Bridge", [["datapath_type", "+=", "x"]]))],
    "mutate_range_result": [
        SETUP_PORT,
        T(upd("Port", {"tag": 4000}), mut("Port", [["tag", "+=", 500]])),
    ],
    "mutate_optional_scalar_insert": [
        SETUP,
        T(mut("Bridge", [["fail_mode", "insert", "secure"]])),
        T(mut("Bridge", [["fail_mode", "insert", "standalone"]])),
        T(sel("Bridge", columns=["fail_mode"])),
    ],
    "mutate_uuid_column": [SETUP, T(mut("Bridge", [["_uuid", "insert", ["set", []]]]))],
    "mutate_required_set_delete": [
        SETUP_PORT,
        T(mut("Port", [["interfaces", "delete", ["set", []]]])),
        T(upd("Port", {"interfaces": ["set", []]})),
    ],
    "mutate_empty_list": [T(ROOT), T(mut("Open_vSwitch", []))],
    "mutate_arith_on_set": [
        SETUP,
        T(
            mut("Bridge", [["flood_vlans", "insert", ["set", [1, 2]]]]),
            mut("Bridge", [["flood_vlans", "+=", 1]]),
        ),
        T(sel("Bridge", columns=["flood_vlans"])),
    ],
    "mutate_arith_set_collision": [
        SETUP,
        T(
            mut("Bridge", [["flood_vlans", "insert", ["set", [1, 2]]]]),
            mut("Bridge", [["flood_vlans", "*=", 0]]),
        ),
    ],
    "mutate_map_delete_by_keys_type": [
        SETUP,
        T(mut("Bridge", [["external_ids", "delete", ["set", [1]]]])),
    ],
    # delete, references, garbage
    "delete_no_match": [T(dele("Bridge", [["name", "==", "zz"]]))],
    "delete_bad_where": [T(dele("Bridge", [["zz", "==", 1]]))],
    "delete_and_unreference": [
        SETUP,
        T(upd("Open_vSwitch", {"bridges": ["set", []]}), dele("Bridge")),
        T(sel("Bridge", columns=["name"])),
    ],
    "delete_root_collects_all": [
        SETUP_PORT,
        T(dele("Open_vSwitch")),
        T(
            sel("Bridge", columns=["name"]),
            sel("Port", columns=["name"]),
            sel("Interface", columns=["name"]),
        ),
    ],
    "gc_new_row_referenced_later": [
        T(ROOT),
        T(
            ins("Bridge", {"name": "late"}, "l"),
            sel("Bridge", columns=["name"]),
            mut("Open_vSwitch", [["bridges", "insert", ref("l")]]),
        ),
        T(sel("Bridge", columns=["name"])),
    ],
    "weak_ref_to_nowhere": [
        SETUP_PORT,
        T(
            ins(
                "Mirror",
                {"name": "m", "select_src_port": ["uuid", "1bad0000-0000-4000-8000-00000000000a"]},
                "m",
            ),
            mut("Bridge", [["mirrors", "insert", ref("m")]]),
        ),
        T(sel("Mirror", columns=["name", "select_src_port"])),
    ],
    "strong_ref_to_nowhere": [
        T(ROOT, upd("Open_vSwitch", {"ssl": ["uuid", "1bad0000-0000-4000-8000-00000000000b"]}))
    ],
    # wait
    "wait_column_not_listed": [SETUP, T(wait("Bridge", [{"fail_mode": "secure"}], timeout=0))],
    "wait_missing_rows": [T({"op": "wait", "table": "Bridge", "where": [], "until": "=="})],
    "wait_rows_not_objects": [T(wait("Bridge", [5], timeout=0))],
    "wait_unknown_column": [T(wait("Bridge", [], columns=["zz"], timeout=0))],
    "wait_uuid_column": [SETUP, T(wait("Bridge", [], columns=["_uuid"], until="!=", timeout=0))],
    "wait_no_columns_member": [
        SETUP,
        T(
            {
                "op": "wait",
                "table": "Open_vSwitch",
                "where": [],
                "until": "!=",
                "rows": [],
                "timeout": 0,
            }
        ),
    ],
    "wait_timeout_string": [T(wait("Bridge", [], timeout="x"))],
    "wait_empty_equal": [T(wait("Bridge", [], timeout=0))],
    "wait_pending_then_satisfied": [
        SETUP,
        ("send", 1, "transact", [DB, wait("Bridge", [{"name": "br0"}], until="!=", timeout=5000)]),
        ("drain", 1),
        T(upd("Bridge", {"stp_enable": True}), c=2),
        T(
            ins("Bridge", {"name": "br1"}, "n"),
            mut("Open_vSwitch", [["bridges", "insert", ref("n")]]),
            c=2,
        ),
        ("drain", 1),
    ],
    "wait_pending_then_cancelled": [
        SETUP,
        ("send", 1, "transact", [DB, wait("Bridge", [{"name": "zz"}], timeout=5000)]),
        ("note", 1, "cancel", ["$sent"]),
        ("drain", 1),
        call("echo", ["after"]),
    ],
    "wait_pending_times_out": [
        SETUP,
        ("send", 1, "transact", [DB, wait("Bridge", [{"name": "zz"}], timeout=200)]),
        ("drain", 1),
    ],
    # commit, abort, comment, assert, op shapes
    "commit_durable_false": [T({"op": "commit", "durable": False})],
    "commit_durable_number": [T({"op": "commit", "durable": 1})],
    "abort_extra_member": [T({"op": "abort", "why": "x"})],
    "comment_number": [T({"op": "comment", "comment": 5})],
    "assert_missing_lock": [T({"op": "assert"})],
    "assert_lock_number": [T({"op": "assert", "lock": 5})],
    "op_empty_object": [T({})],
    "op_number_op": [T({"op": 5})],
    "error_stops_later_ops": [
        T(ROOT, {"op": "frob"}, ins("QoS", {})),
        T(sel("QoS", columns=["type"])),
    ],
    "ops_after_abort_skipped": [T(ROOT, {"op": "abort"}, ins("QoS", {}))],
    # _Server
    "server_mutate_not_allowed": [
        call("transact", ["_Server", mut("Database", [["index", "insert", ["set", [1]]]])])
    ],
    "server_delete_not_allowed": [call("transact", ["_Server", dele("Database")])],
    "server_select_where": [
        call(
            "transact",
            [
                "_Server",
                sel(
                    "Database",
                    [["name", "==", "_Server"]],
                    ["name", "model", "connected", "leader"],
                ),
            ],
        )
    ],
    "server_monitor_v1": [
        call("monitor", ["_Server", None, {"Database": {"columns": ["name", "model"]}}])
    ],
    "server_empty_transact": [call("transact", ["_Server"])],
    # monitors
    "monitor_duplicate_id": [
        call("monitor", [DB, "m", {"Bridge": {}}]),
        call("monitor", [DB, "m", {"Bridge": {}}]),
    ],
    "monitor_null_id_all_columns": [SETUP, call("monitor", [DB, None, {"Open_vSwitch": {}}])],
    "monitor_cond_all_columns": [
        SETUP,
        call("monitor_cond", [DB, 1, {"Bridge": [{}]}]),
        T(upd("Bridge", {"stp_enable": True})),
    ],
    "monitor_cond_where_in_select": [
        call("monitor_cond", [DB, 1, {"Bridge": [{"select": {"where": True}}]}])
    ],
    "monitor_select_unknown_member": [
        call("monitor", [DB, 1, {"Bridge": {"select": {"initial": True, "nope": False}}}])
    ],
    "monitor_duplicate_columns": [
        call("monitor", [DB, 1, {"Bridge": [{"columns": ["name"]}, {"columns": ["name"]}]}])
    ],
    "monitor_request_not_object": [call("monitor", [DB, 1, {"Bridge": 5}])],
    "monitor_requests_not_object": [call("monitor", [DB, 1, []])],
    "monitor_select_not_bool": [call("monitor", [DB, 1, {"Bridge": {"select": {"initial": 1}}}])],
    "monitor_select_not_object": [call("monitor", [DB, 1, {"Bridge": {"select": []}}])],
    "monitor_columns_not_array": [call("monitor", [DB, 1, {"Bridge": {"columns": "name"}}])],
    "monitor_empty_request": [call("monitor", [DB, 1, {}]), T(ROOT)],
    "monitor_uuid_column": [
        SETUP,
        call("monitor", [DB, 1, {"Bridge": {"columns": ["_uuid", "name"]}}]),
    ],
    "monitor_v1_where_ignored": [
        SETUP,
        call(
            "monitor", [DB, 1, {"Bridge": {"columns": ["name"], "where": [["name", "==", "zz"]]}}]
        ),
    ],
    "monitor_v1_lifecycle": [
        call(
            "monitor",
            [
                DB,
                1,
                {
                    "Bridge": {"columns": ["name", "stp_enable"]},
                    "Open_vSwitch": {"columns": ["bridges"]},
                },
            ],
        ),
        SETUP,
        T(upd("Bridge", {"stp_enable": True})),
        T(upd("Open_vSwitch", {"bridges": ["set", []]})),
    ],
    "monitor_v1_no_initial": [
        SETUP,
        call(
            "monitor",
            [
                DB,
                1,
                {"Bridge": {"columns": ["name"], "select": {"initial": False, "delete": False}}},
            ],
        ),
        T(
            ins("Bridge", {"name": "b2"}, "n"),
            mut("Open_vSwitch", [["bridges", "insert", ref("n")]]),
        ),
        T(dele("Open_vSwitch")),
    ],
    "monitor_cancel_stops_updates": [
        call("monitor", [DB, 1, {"Open_vSwitch": {}}]),
        call("monitor_cancel", [1]),
        T(ROOT),
        ("drain", 1),
    ],
    "monitor_cond_unknown_table": [call("monitor_cond", [DB, 1, {"Nope": [{}]}])],
    "monitor_cond_where_unknown_column": [
        call("monitor_cond", [DB, 1, {"Bridge": [{"where": [["zz", "==", 1]]}]}])
    ],
    "monitor_cond_where_includes": [
        SETUP,
        call(
            "monitor_cond",
            [
                DB,
                1,
                {
                    "Bridge": [
                        {
                            "columns": ["name", "flood_vlans"],
                            "where": [["flood_vlans", "includes", 5]],
                        }
                    ]
                },
            ],
        ),
        T(mut("Bridge", [["flood_vlans", "insert", ["set", [5, 6]]]])),
        T(mut("Bridge", [["flood_vlans", "delete", ["set", [5]]]])),
    ],
    "monitor_cond_true_false": [
        SETUP,
        call(
            "monitor_cond",
            [
                DB,
                1,
                {
                    "Bridge": [{"columns": ["name"], "where": [True]}],
                    "Open_vSwitch": [{"columns": ["next_cfg"], "where": [False]}],
                },
            ],
        ),
        T(mut("Open_vSwitch", [["next_cfg", "+=", 1]])),
    ],
    "monitor_cond_two_requests": [
        SETUP,
        call(
            "monitor_cond",
            [
                DB,
                1,
                {
                    "Bridge": [
                        {"columns": ["name"]},
                        {"columns": ["stp_enable"], "select": {"initial": False}},
                    ]
                },
            ],
        ),
        T(upd("Bridge", {"stp_enable": True})),
    ],
    "monitor_cond_change_columns": [
        call("monitor_cond", [DB, 1, {"Bridge": [{"columns": ["name"]}]}]),
        call("monitor_cond_change", [1, 1, {"Bridge": [{"columns": ["stp_enable"]}]}]),
    ],
    "monitor_cond_change_unmonitored_table": [
        call("monitor_cond", [DB, 1, {"Bridge": [{}]}]),
        call("monitor_cond_change", [1, 1, {"Port": [{"where": []}]}]),
    ],
    "monitor_cond_change_bad_where": [
        call("monitor_cond", [DB, 1, {"Bridge": [{}]}]),
        call("monitor_cond_change", [1, 1, {"Bridge": [{"where": [["zz", "==", 1]]}]}]),
    ],
    "monitor_cond_change_same_id": [
        SETUP,
        call("monitor_cond", [DB, 1, {"Bridge": [{"columns": ["name"], "where": [False]}]}]),
        call("monitor_cond_change", [1, 1, {"Bridge": [{"where": [True]}]}]),
    ],
    "monitor_cond_change_to_existing_id": [
        call("monitor_cond", [DB, 1, {"Bridge": [{}]}]),
        call("monitor_cond", [DB, 2, {"Bridge": [{}]}]),
        call("monitor_cond_change", [1, 2, {}]),
    ],
    "monitor_cond_change_wrong_count": [call("monitor_cond_change", [1, 2])],
    "monitor_cond_change_unknown": [call("monitor_cond_change", ["nope", "x", {}])],
    "monitor_cond_wrong_count": [call("monitor_cond", [DB, 1])],
    "monitor_cond_since_number_id": [call("monitor_cond_since", [DB, 1, {"Bridge": [{}]}, 5])],
    "monitor_cond_since_bad_uuid": [call("monitor_cond_since", [DB, 1, {"Bridge": [{}]}, "abc"])],
    "monitor_cond_since_missing_id": [call("monitor_cond_since", [DB, 1, {"Bridge": [{}]}])],
    "monitor_cond_since_update3": [
        SETUP,
        call(
            "monitor_cond_since",
            [
                DB,
                1,
                {"Bridge": [{"columns": ["name", "external_ids"]}]},
                "00000000-0000-0000-0000-000000000000",
            ],
        ),
        T(upd("Bridge", {"external_ids": ["map", [["k", "v"]]]})),
        T(dele("Open_vSwitch")),
    ],
    "monitor_cancel_wrong_count": [call("monitor_cancel", [])],
    "wait_without_columns_compares_uuid_and_version": [
        SETUP,
        T({"op": "wait", "table": "Bridge", "where": [], "until": "!=", "rows": [{}],
           "timeout": 0}),
        T({"op": "wait", "table": "Bridge", "where": [], "until": "==",
           "rows": [{"name": "br0"}], "timeout": 0}),
    ],
    "wait_on_uuid_column": [
        T(
            ROOT,
            ins("Bridge", {"name": "u"}, uuid="1bad0000-0000-4000-8000-000000000017"),
            mut("Open_vSwitch",
                [["bridges", "insert", ["uuid", "1bad0000-0000-4000-8000-000000000017"]]]),
        ),
        T(wait("Bridge", [{"_uuid": ["uuid", "1bad0000-0000-4000-8000-000000000017"]}],
               columns=["_uuid"], timeout=0)),
        T(wait("Bridge", [{"_uuid": ["uuid", "1bad0000-0000-4000-8000-000000000017"]}],
               columns=["_uuid"], until="!=", timeout=0)),
    ],
    "mutate_constraints_checked_after_every_element": [
        SETUP,
        T(upd("Bridge", {"flood_vlans": ["set", [4000, 3000]]}),
          mut("Bridge", [["flood_vlans", "*=", 2]])),
    ],
    "where_ordering_on_optional_integer": [
        SETUP_PORT,
        T(
            upd("Port", {"tag": 5}),
            sel("Port", [["tag", "<", 10]], ["name"]),
            sel("Port", [["tag", ">", 10]], ["name"]),
            sel("Interface", [["ofport", ">=", 0]], ["name"]),
            sel("Port", [["tag", "<", ["set", []]]], ["name"]),
        ),
    ],
    "monitor_two_clients": [
        call("monitor", [DB, 1, {"Open_vSwitch": {"columns": ["next_cfg"]}}], c=2),
        SETUP,
        ("drain", 2),
        T(mut("Open_vSwitch", [["next_cfg", "+=", 5]])),
        ("drain", 2),
    ],
}

# --- the constraints schema ----------------------------------------------------------
KID = {"color": "red", "size": 1}
CROOT = ins("Root", {"name": "r", "hero": ["named-uuid", "h"]}, "r")
HERO = ins("Kid", {**KID, "a": 1}, "h")
CSETUP = CT(HERO, CROOT, mut("Root", [["kids", "insert", ref("h")]]))

CS: dict[str, list] = {
    "default_enum_violation": [CT(ins("Kid", {"size": 1}))],
    "default_range_violation": [CT(ins("Kid", {"color": "red"}))],
    "defaults_given_ok": [
        CT(ins("Kid", KID, "k"), ins("Root", {"name": "x", "kids": ref("k"), "hero": ref("k")}))
    ],
    "string_too_short": [CT(ins("Kid", {**KID, "tag": "a"}))],
    "string_too_long": [CT(ins("Kid", {**KID, "tag": "abcde"}))],
    "real_range": [CT(ins("Root", {"name": "x", "ratio": 3.0}))],
    "real_from_int": [
        CT(HERO, ins("Root", {"name": "x", "score": 2, "hero": ref("h"), "kids": ref("h")})),
        CT(sel("Root", columns=["score"])),
    ],
    "weak_forward_ref_collected": [CT(ins("Root", {"name": "x", "hero": ref("h")}), HERO)],
    "real_mutate": [
        CSETUP,
        CT(mut("Root", [["score", "+=", 1.25], ["score", "*=", 4]])),
        CT(sel("Root", columns=["score"])),
    ],
    "real_mutate_mod": [CSETUP, CT(mut("Root", [["score", "%=", 2]]))],
    "real_mutate_overflow": [
        CSETUP,
        CT(upd("Root", {"score": 1e308}), mut("Root", [["score", "*=", 10]])),
    ],
    "real_div_zero": [CSETUP, CT(mut("Root", [["score", "/=", 0]]))],
    "real_compare": [
        CSETUP,
        CT(
            upd("Root", {"score": 1.5}),
            sel("Root", [["score", ">", 1.25]], ["name"]),
            sel("Root", [["score", "<", 1]], ["name"]),
        ),
    ],
    "mutate_enum_map_value": [CSETUP, CT(mut("Kid", [["pairs", "insert", ["map", [[1, "z"]]]]]))],
    "mutate_map_too_many": [
        CSETUP,
        CT(mut("Kid", [["pairs", "insert", ["map", [[1, "x"], [2, "y"], [3, "x"]]]]])),
    ],
    "mutate_bool_set_size": [
        CSETUP,
        CT(mut("Kid", [["flags", "insert", ["set", [True, False]]]])),
        CT(sel("Kid", columns=["flags"])),
    ],
    "mutate_range_result_int": [CSETUP, CT(mut("Kid", [["size", "+=", 10]]))],
    "two_column_index": [
        CSETUP,
        CT(ins("Kid", {**KID, "a": 1}, "k"), mut("Root", [["kids", "insert", ref("k")]])),
    ],
    "two_column_index_differs": [
        CSETUP,
        CT(ins("Kid", {**KID, "a": 1, "b": "x"}, "k"), mut("Root", [["kids", "insert", ref("k")]])),
        CT(sel("Kid", columns=["a", "b"])),
    ],
    "index_both_new": [
        CT(
            HERO,
            ins("Kid", {**KID, "a": 1}, "k"),
            ins("Root", {"name": "x", "kids": ["set", [ref("h"), ref("k")]], "hero": ref("h")}),
        )
    ],
    "root_index": [
        CSETUP,
        CT(HERO, ins("Root", {"name": "r", "hero": ref("h"), "kids": ref("h")})),
    ],
    "max_rows_two": [
        CSETUP,
        CT(
            ins("Kid", {**KID, "a": 5}, "h"),
            ins("Root", {"name": "s", "hero": ref("h"), "kids": ref("h")}),
        ),
        CT(
            ins("Kid", {**KID, "a": 6}, "h"),
            ins("Root", {"name": "t", "hero": ref("h"), "kids": ref("h")}),
        ),
    ],
    "weak_min_one_violation": [CSETUP, CT(upd("Root", {"kids": ["set", []]}))],
    "weak_ref_dropped_from_set": [
        CSETUP,
        CT(
            ins("Kid", {**KID, "a": 2}, "k"),
            mut("Root", [["kids", "insert", ref("k")], ["fans", "insert", ref("k")]]),
        ),
        CT(mut("Root", [["kids", "delete", ["set", []]]])),
        CT(sel("Root", columns=["fans"])),
    ],
    "weak_ref_to_nonexistent_set": [
        CSETUP,
        CT(upd("Root", {"fans": ["uuid", "1bad0000-0000-4000-8000-00000000000c"]})),
        CT(sel("Root", columns=["fans"])),
    ],
    # found by the differential fuzzer (test_ovsdb_differential_fuzz)
    "where_eq_empty_on_required": [CSETUP, CT(sel("Root", [["hero", "==", ["set", []]]]))],
    "where_includes_keeps_max": [
        CT(sel("Kid", [["pairs", "includes", ["map", [[1, "x"], [2, "y"], [3, "x"]]]]]))
    ],
    "where_scalar_includes_empty": [CT(sel("Kid", [["size", "includes", ["set", []]]]))],
    "where_scalar_excludes_two": [CT(sel("Kid", [["size", "excludes", ["set", [1, 2]]]]))],
    "monitor_duplicate_column_before_where": [
        call("monitor_cond", [CDB, 1, {"Root": [
            {"columns": ["name"]}, {"columns": ["name"], "where": [["zz", "==", 1]]}]}])
    ],
    "named_uuid_not_an_id": [
        CT(ins("Root", {"name": "x", "kids": ["named-uuid", "1bad"]})),
        CT(ins("Root", {"name": "x", "kids": ["set", [ref("a"), ["named-uuid", "b-c"]]]})),
    ],
    "weak_default_zero_uuid": [CT(ins("Root", {"name": "z"}))],
    "null_atom_is_syntax_error": [CSETUP, CT(upd("Kid", {"flags": None}))],
    "monitor_since_id_checked_last": [
        call("monitor_cond_since", [CDB, 1, {"Nope": [{}]}, "bad"])
    ],
    "monitor_requests_shape_before_id": [
        call("monitor_cond", [CDB, 1, {}]),
        call("monitor_cond", [CDB, 1, []]),
    ],
    "mutate_map_delete_bad_key_reported_as_keys": [
        CSETUP,
        CT(mut("Kid", [["pairs", "delete", ["map", [[1, "x"], ["1", "x"]]]]])),
    ],
    "mutate_map_delete_more_than_max": [
        CSETUP,
        CT(mut("Kid", [["pairs", "delete", ["map", [[1, "x"], [2, "y"], [3, "x"]]]]])),
    ],
    "duplicate_uuid_name_with_given_uuids": [
        CT(ins("Kid", {**KID, "a": 7}, "k", uuid="1bad0000-0000-4000-8000-000000000011"),
           ins("Kid", {**KID, "a": 8}, "k", uuid="1bad0000-0000-4000-8000-000000000012"))
    ],
    "select_distinct_without_uuid": [
        CSETUP,
        CT(
            ins("Kid", {**KID, "a": 2}, "k"),
            mut("Root", [["kids", "insert", ref("k")]]),
            sel("Kid", columns=["color"]),
            sel("Kid", columns=[]),
            sel("Kid", columns=["_uuid", "color"]),
        ),
    ],
    "monitor_cond_clauses_any": [
        CSETUP,
        CT(ins("Kid", {**KID, "a": 2}, "k"), mut("Root", [["kids", "insert", ref("k")]])),
        call("monitor_cond", [CDB, 1, {"Kid": [{"columns": ["a"],
                                                "where": [["a", "==", 1], ["a", "==", 2]]}]}]),
        call("monitor_cond", [CDB, 2, {"Kid": [{"columns": ["a"], "where": [False, True]}]}]),
        call("monitor_cond", [CDB, 3, {"Kid": [{"columns": ["a"], "where": [False]}]}]),
    ],
    "monitor_cond_first_request_decides": [
        CSETUP,
        CT(ins("Kid", {**KID, "a": 2}, "k"), mut("Root", [["kids", "insert", ref("k")]])),
        call("monitor_cond", [CDB, 1, {"Kid": [{"columns": ["a"], "where": [["a", "==", 1]]},
                                               {"columns": ["b"], "where": [["a", "==", 2]]}]}]),
        call("monitor_cond", [CDB, 2, {"Kid": [{"columns": ["a"]},
                                               {"columns": ["b"], "where": [["a", "==", 2]]}]}]),
    ],
    "monitor_cond_change_last_request_decides": [
        CSETUP,
        CT(ins("Kid", {**KID, "a": 2}, "k"), mut("Root", [["kids", "insert", ref("k")]])),
        call("monitor_cond", [CDB, 1, {"Kid": [{"columns": ["a"], "where": [False]}]}]),
        call("monitor_cond_change", [1, 1, {"Kid": [{"where": [["a", "==", 1]]},
                                                    {"where": [["a", "==", 2]]}]}]),
    ],
    "monitor_cond_change_on_monitor_v1": [
        CSETUP,
        call("monitor", [CDB, 1, {"Kid": {"columns": ["a"]}}]),
        call("monitor_cond_change", [1, 1, {"Kid": [{"where": [["zz", "==", 1]]}]}]),
        call("monitor_cond_change", [1, 1, {"Kid": [{"where": [], "x": 1}]}]),
    ],
    "monitor_cond_change_errors": [
        call("monitor_cond", [CDB, 1, {"Kid": [{"columns": ["a"]}]}]),
        call("monitor_cond_change", [1, 1, {"Nope": [{"where": []}]}]),
        call("monitor_cond_change", [1, 1, {"Root": [{"where": []}]}]),
        call("monitor_cond_change", [1, 1, {"Kid": {"where": []}}]),
        call("monitor_cond_change", [1, 1, 5]),
        call("monitor_cond_change", [1, 1, {"Kid": [5]}]),
        # ovsdb-server names the first in its hash order: here the first written
        call("monitor_cond_change", [1, 1, {"Kid": [{"where": [], "y": 2, "x": 1}]}]),
    ],
    "monitor_select_per_column": [
        CSETUP,
        call("monitor_cond", [CDB, 1, {"Kid": [
            {"columns": ["a"], "select": {"insert": False, "modify": False}},
            {"columns": ["b", "tag"], "select": {"initial": False, "delete": False}}]}]),
        call("monitor", [CDB, 2, {"Kid": [
            {"columns": ["a"], "select": {"delete": False}},
            {"columns": ["b"], "select": {"modify": False, "initial": False}}]}]),
        CT(ins("Kid", {**KID, "a": 2, "b": "x"}, "k"), mut("Root", [["kids", "insert", ref("k")]])),
        CT(mut("Kid", [["a", "+=", 10]])),
        CT(upd("Kid", {"b": "y"})),
        CT(upd("Kid", {"tag": "tt", "a": 5})),
        CT(dele("Root")),
    ],
    "insert_members_in_order": [
        CT({"op": "insert", "table": "Kid", "row": 5, "uuid-name": "1bad"}),
        CT({"op": "insert", "table": "Kid", "row": 5, "uuid": 5}),
    ],
    "op_name_not_an_id": [CT({"op": "1x"})],
    "server_commit_not_allowed": [
        call("transact", ["_Server", {"op": "commit", "durable": False}]),
        call("transact", ["_Server", ins("Database", {"nope": 1})]),
    ],
    "two_members_not_allowed": [
        # ovsdb-server names the first in its hash order: here the first written
        CT({"op": "comment", "comment": "x", "b": 2, "a": 1}),
        CT({"op": "abort", "a": 1, "b": 2, "c": 3}),
    ],
    "select_where_before_columns": [CT(sel("Kid", [["zz", "==", 1]], ["nope"]))],
    "update_immutable_after_values": [
        CSETUP,
        CT(upd("Kid", {"_uuid": ["uuid", "1bad0000-0000-4000-8000-000000000013"], "a": "x"})),
    ],
    "set_duplicate_after_bad_element": [
        CSETUP,
        CT(upd("Root", {"kids": ["set", [ref("h"), ["uuid", "1bad0000-0000-4000-8000-000000000014"],
                                         ["uuid", "1bad0000-0000-4000-8000-000000000014"],
                                         ["uuid", "zz"]]]})),
    ],
    "size_before_boolean": [
        CT(sel("Kid", [["pairs", "includes", ["map", [[True, "x"], [1, "x"], [2, "y"]]]]]))
    ],
    "uuid_reused_after_insert_and_delete": [
        CT(
            ins("Kid", {**KID, "a": 3}, uuid="1bad0000-0000-4000-8000-000000000015"),
            dele("Kid", [["_uuid", "==", ["uuid", "1bad0000-0000-4000-8000-000000000015"]]]),
            ins("Kid", {**KID, "a": 4}, uuid="1bad0000-0000-4000-8000-000000000015"),
            sel("Kid", [["_uuid", "==", ["uuid", "1bad0000-0000-4000-8000-000000000015"]]],
                ["a"]),
        )
    ],
    "wait_answered_after_the_commit_it_waited_for": [
        CSETUP,
        ("send", 1, "transact", [CDB, wait("Root", [{"name": "r"}], until="!=", timeout=5000)]),
        CT(upd("Root", {"name": "q"})),
        ("drain", 1),
    ],
    "index_provenance_other_columns_modified": [
        CSETUP,
        CT(
            upd("Kid", {"tag": "tt"}, [["a", "==", 1]]),
            ins("Kid", {**KID, "a": 1}, "k"),
            mut("Root", [["kids", "insert", ref("k")]]),
        ),
    ],
    "index_provenance_change_undone_by_weak_cleanup": [
        CSETUP,
        CT(
            ins("Kid", {**KID, "a": 5}, "k"),
            mut("Root", [["fans", "insert", ["uuid", "1bad0000-0000-4000-8000-000000000016"]]]),
            ins("Root", {"name": "r", "hero": ref("k"), "kids": ref("k")}),
        ),
    ],
    "boolean_number_after_earlier_bad_element": [
        CT(sel("Kid", [["pairs", "includes", ["map", [[1, "zz"], [True, "x"]]]]])),
        CT(sel("Root", [["ratio", "includes", ["set", [9.5, False]]]])),
    ],
    "range_error_names_a_big_value": [
        CSETUP,
        CT(upd("Kid", {"size": 4611686018427387904})),
        CT(upd("Kid", {"size": 9223372036854775807})),
    ],
    "steal_from_a_stealer": [
        call("steal", ["S"], c=2),
        call("steal", ["S"]),
        ("drain", 2),
        call("unlock", ["S"]),
        ("drain", 2),
        call("lock", ["S"], c=2),
        call("unlock", ["S"], c=2),
        call("lock", ["S"], c=2),
    ],
    "steal_from_a_stealer_then_disconnect": [
        call("steal", ["S"], c=2),
        call("steal", ["S"]),
        ("close", 1),
        ("drain", 2),
        call("steal", ["S"], c=2),
    ],
    "version_changes_when_weak_cleanup_undoes_the_change": [
        CSETUP,
        call("monitor_cond", [CDB, 1, {"Root": [{"columns": ["name", "_version"]}]}]),
        call("monitor_cond", [CDB, 2, {"Root": [{"columns": ["name"]}]}]),
        CT(upd("Root", {"fans": ["uuid", "1bad0000-0000-4000-8000-000000000019"]})),
    ],
    "mutate_multiply_overflow_test": [
        CSETUP,
        CT(upd("Kid", {"size": 1}), mut("Kid", [["size", "*=", 4611686018427387904]])),
        CT(upd("Kid", {"size": 2}), mut("Kid", [["size", "*=", 4611686018427387903]])),
        CT(upd("Kid", {"a": -2}), mut("Kid", [["a", "*=", 4611686018427387904]])),
        CT(upd("Kid", {"a": 3}), mut("Kid", [["a", "*=", -3074457345618258603]])),
    ],
    "null_key_after_duplicate": [
        CT(sel("Kid", [["pairs", "excludes", ["map", [[1, "x"], [1, "y"], [None, "x"]]]]]))
    ],
    "monitor_cond_real_where": [
        CSETUP,
        call(
            "monitor_cond",
            [CDB, 1, {"Root": [{"columns": ["name", "score"], "where": [["score", ">=", 1]]}]}],
        ),
        CT(upd("Root", {"score": 2})),
        CT(upd("Root", {"score": 0.5})),
    ],
}


ELAPSED_MS = re.compile(r"timed out after \d+ ms")


def normalise(value):
    """As the main suite, and elapsed times in wait errors vary by a few ms."""
    value = base_normalise(value)
    if isinstance(value, str):
        return ELAPSED_MS.sub("timed out after N ms", value)
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    return value


def run_case(sock: str, steps: list, db: str, roots: list[str]) -> list:
    clients = {1: RpcClient(sock, timeout=3.0), 2: RpcClient(sock, timeout=3.0)}
    try:
        clients[1].transact(db, *[dele(t) for t in roots])
        transcript: list = []
        sent_id = None
        for i, step in enumerate(steps):
            kind, c = step[0], step[1]
            client = clients[c]
            if kind == "call":
                try:
                    reply, notes = client.call(step[2], step[3], msg_id=i)
                except OSError:
                    reply, notes = "<broken>", []
                transcript.append({"c": c, "notes": notes, "reply": reply})
            elif kind == "send":
                sent_id = i
                client.send({"id": i, "method": step[2], "params": step[3]})
            elif kind == "note":
                params = [sent_id if p == "$sent" else p for p in step[3]]
                client.send({"id": None, "method": step[2], "params": params})
            elif kind == "raw":
                client.send_raw(step[2])
                transcript.append({"c": c, "raw": _drain(client, closed_ok=True)})
            elif kind == "drain":
                transcript.append({"c": c, "drain": _drain(client)})
            elif kind == "close":
                client.close()
        return normalise(transcript)
    finally:
        for client in clients.values():
            client.close()


def _drain(client: RpcClient, closed_ok: bool = False) -> list:
    client.sock.settimeout(0.4)
    got: list = []
    try:
        while (msg := client.recv()) is not None:
            got.append(msg)
        got.append("<closed>")
    except TimeoutError:
        pass
    finally:
        client.sock.settimeout(3.0)
    return got


@pytest.fixture(scope="module")
def vswitch_servers(tmp_path_factory):
    ours_dir, ref_dir = tmp_path_factory.mktemp("ours"), tmp_path_factory.mktemp("ref")
    with ovsbpfd_server(str(ours_dir)) as (ours, _p1), debian_server(str(ref_dir)) as (ref, _p2):
        yield ours, ref


@pytest.fixture(scope="module")
def constraint_servers(tmp_path_factory):
    ours_dir, ref_dir = tmp_path_factory.mktemp("cours"), tmp_path_factory.mktemp("cref")
    with (
        ovsbpfd_server(str(ours_dir), schema=CSCHEMA) as (ours, _p1),
        debian_server(str(ref_dir), schema=CSCHEMA) as (ref, _p2),
    ):
        yield ours, ref


@pytest.mark.parametrize("name", sorted(VS))
def test_ovsdb_vswitch_same_as_ovsdb_server(vswitch_servers, name):
    ours, ref = vswitch_servers
    expected = run_case(ref, VS[name], DB, VS_ROOTS)
    assert run_case(ours, VS[name], DB, VS_ROOTS) == expected


@pytest.mark.parametrize("name", sorted(CS))
def test_ovsdb_constraints_same_as_ovsdb_server(constraint_servers, name):
    ours, ref = constraint_servers
    expected = run_case(ref, CS[name], CDB, ["Root"])
    assert run_case(ours, CS[name], CDB, ["Root"]) == expected


def test_ovsdb_differential_case_count():
    from .test_ovsdb_differential import CASES
    from .test_ovsdb_differential_history import CASES as HISTORY

    assert len(CASES) + len(HISTORY) + len(VS) + len(CS) >= 150
