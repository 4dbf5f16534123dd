"""Differential cases aimed at the server's fast paths, against Debian's
ovsdb-server: the waits ovs-vsctl and IDLs send (decided without parsing when
they echo the row), sets of references (parsed without python-ovs when well
formed, counted by their difference at commit), and monitors that share
encoded rows and updates.  Each case is written so that a fast path that
accepts too much, or words an error differently, shows up as a difference.

Rows get fixed UUIDs (the "uuid" member of insert) so that waits can name
them the way ovs-vsctl does: [["_uuid", "==", ["uuid", U]]].
"""

from __future__ import annotations

import shutil

import pytest

from .test_ovsdb_differential_more import (
    CDB,
    DB,
    VS_ROOTS,
    T,
    call,
    constraint_servers,  # noqa: F401 - a fixture
    dele,
    ins,
    mut,
    run_case,
    sel,
    upd,
    vswitch_servers,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.skipif(
    shutil.which("ovsdb-server") is None, reason="Debian ovsdb-server not installed"
)

OVS_U = "0f000000-0000-4000-8000-000000000001"
BR_U = "0b000000-0000-4000-8000-000000000001"
P1_U, P2_U, P3_U = (f"0a000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))
I1_U, I2_U, I3_U = (f"0c000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))
MISSING_U = "0d000000-0000-4000-8000-000000000009"


def u(text: str) -> list:
    return ["uuid", text]


def by_uuid(text: str) -> list:
    return [["_uuid", "==", u(text)]]


def vwait(table: str, row_uuid: str, rows: list, columns: list, until: str = "==",
          **extra) -> dict:
    """A wait shaped like ovs-vsctl's verify()."""
    return {"where": by_uuid(row_uuid), "rows": rows, "until": until, "table": table,
            "op": "wait", "timeout": 0, "columns": columns, **extra}


def CT(*ops, c=1):
    return T(*ops, c=c, db=CDB)


# A bridge with two ports, every row with a known uuid, as ovs-vsctl would see it.
SETUP = T(
    ins("Open_vSwitch", {"next_cfg": 7, "bridges": u(BR_U)}, uuid=OVS_U),
    ins("Bridge", {"name": "br0", "ports": ["set", [u(P1_U), u(P2_U)]],
                   "external_ids": ["map", [["a", "1"], ["b", "2"]]]}, uuid=BR_U),
    ins("Port", {"name": "p1", "interfaces": u(I1_U), "tag": 10}, uuid=P1_U),
    ins("Port", {"name": "p2", "interfaces": u(I2_U)}, uuid=P2_U),
    ins("Interface", {"name": "p1"}, uuid=I1_U),
    ins("Interface", {"name": "p2"}, uuid=I2_U),
)
PORTS_SET = ["set", [u(P1_U), u(P2_U)]]

VS: dict[str, list] = {
    # --- waits that echo the row -------------------------------------------------
    "wait_echo_holds": [SETUP, T(
        vwait("Port", P1_U, [{"interfaces": u(I1_U)}], ["interfaces"]),
        vwait("Open_vSwitch", OVS_U, [{"bridges": u(BR_U)}], ["bridges"]),
        vwait("Bridge", BR_U, [{"ports": PORTS_SET}], ["ports"]),
        vwait("Bridge", BR_U, [{"name": "br0",
                                "external_ids": ["map", [["a", "1"], ["b", "2"]]]}],
              ["name", "external_ids"]))],
    "wait_echo_integer": [SETUP, T(
        vwait("Port", P1_U, [{"tag": 10}], ["tag"]),
        vwait("Open_vSwitch", OVS_U, [{"next_cfg": 7}], ["next_cfg"]))],
    "wait_integer_as_real_times_out": [SETUP, T(
        vwait("Open_vSwitch", OVS_U, [{"next_cfg": 7.0}], ["next_cfg"]))],
    "wait_integer_as_boolean": [SETUP, T(
        vwait("Port", P1_U, [{"tag": True}], ["tag"]))],
    "wait_integer_as_string": [SETUP, T(
        vwait("Port", P1_U, [{"tag": "10"}], ["tag"]))],
    "wait_set_other_order": [SETUP, T(
        vwait("Bridge", BR_U, [{"ports": ["set", [u(P2_U), u(P1_U)]]}], ["ports"]))],
    "wait_map_other_order": [SETUP, T(
        vwait("Bridge", BR_U, [{"external_ids": ["map", [["b", "2"], ["a", "1"]]]}],
              ["external_ids"]))],
    "wait_one_element_as_set": [SETUP, T(
        vwait("Port", P1_U, [{"interfaces": ["set", [u(I1_U)]]}], ["interfaces"]))],
    "wait_default_left_out": [SETUP, T(
        vwait("Port", P2_U, [{}], ["tag"]))],
    "wait_default_spelled": [SETUP, T(
        vwait("Port", P2_U, [{"tag": ["set", []]}], ["tag"]))],
    "wait_stale_value_fails": [SETUP, T(
        vwait("Bridge", BR_U, [{"ports": u(P1_U)}], ["ports"]))],
    "wait_stale_then_pending": [SETUP, T(
        {**vwait("Bridge", BR_U, [{"name": "br1"}], ["name"]), "timeout": 100})],
    "wait_extra_member_in_row": [SETUP, T(
        vwait("Port", P1_U, [{"tag": 10, "name": "p1"}], ["tag"]))],
    "wait_extra_member_bad_value": [SETUP, T(
        vwait("Port", P1_U, [{"tag": 10, "name": 5}], ["tag"]))],
    "wait_unknown_member_in_row": [SETUP, T(
        vwait("Port", P1_U, [{"tag": 10, "zz": 1}], ["tag"]))],
    "wait_row_missing_member": [SETUP, T(
        vwait("Port", P1_U, [{"name": "p1"}], ["name", "tag"]))],
    "wait_duplicate_columns": [SETUP, T(
        vwait("Port", P1_U, [{"tag": 10}], ["tag", "tag"]))],
    "wait_unknown_column": [SETUP, T(
        vwait("Port", P1_U, [{"zz": 10}], ["zz"]))],
    "wait_column_not_string": [SETUP, T(
        vwait("Port", P1_U, [{"tag": 10}], [5]))],
    "wait_uuid_column_echo": [SETUP, T(
        vwait("Port", P1_U, [{"_uuid": u(P1_U)}], ["_uuid"]))],
    "wait_timeout_boolean": [SETUP, T(
        {**vwait("Port", P1_U, [{"tag": 10}], ["tag"]), "timeout": True})],
    "wait_timeout_string": [SETUP, T(
        {**vwait("Port", P1_U, [{"tag": 10}], ["tag"]), "timeout": "0"})],
    "wait_timeout_real": [SETUP, T(
        {**vwait("Port", P1_U, [{"tag": 10}], ["tag"]), "timeout": 0.5})],
    "wait_timeout_negative": [SETUP, T(
        {**vwait("Port", P1_U, [{"tag": 10}], ["tag"]), "timeout": -1})],
    "wait_two_matching_rows_one_sent": [SETUP, T(
        {**vwait("Port", P1_U, [{"interfaces": ["set", []]}], ["fake_bridge"]),
         "where": [], "rows": [{"fake_bridge": False}]})],
    "wait_timeout_missing": [SETUP, T(
        {k: v for k, v in vwait("Port", P1_U, [{"tag": 10}], ["tag"]).items()
         if k != "timeout"})],
    "wait_extra_op_member": [SETUP, T(
        {**vwait("Port", P1_U, [{"tag": 10}], ["tag"]), "x": 1})],
    "wait_table_not_string": [SETUP, T(
        {**vwait("Port", P1_U, [{"tag": 10}], ["tag"]), "table": ["Port"]})],
    "wait_table_unknown": [SETUP, T(
        {**vwait("Port", P1_U, [{"tag": 10}], ["tag"]), "table": "Portz"})],
    "wait_until_not_equal_holds": [SETUP, T(
        vwait("Port", P1_U, [{"tag": 11}], ["tag"], until="!="))],
    "wait_until_not_equal_fails": [SETUP, T(
        vwait("Port", P1_U, [{"tag": 10}], ["tag"], until="!="))],
    "wait_until_bad": [SETUP, T(
        vwait("Port", P1_U, [{"tag": 10}], ["tag"], until="<"))],
    "wait_missing_row_no_rows": [SETUP, T(
        vwait("Port", MISSING_U, [], ["tag"]))],
    "wait_missing_row_with_row": [SETUP, T(
        vwait("Port", MISSING_U, [{"tag": 10}], ["tag"]))],
    "wait_two_rows_sent": [SETUP, T(
        vwait("Port", P1_U, [{"tag": 10}, {"tag": 10}], ["tag"]))],
    "wait_rows_not_list": [SETUP, T(
        vwait("Port", P1_U, {"tag": 10}, ["tag"]))],
    "wait_bad_uuid_text": [SETUP, T(
        {**vwait("Port", P1_U, [{"tag": 10}], ["tag"]),
         "where": [["_uuid", "==", ["uuid", "not-a-uuid"]]]})],
    "wait_upper_case_uuid": [SETUP, T(
        {**vwait("Port", P1_U, [{"tag": 10}], ["tag"]),
         "where": [["_uuid", "==", ["uuid", P1_U.upper()]]]})],
    "wait_sees_earlier_op": [SETUP, T(
        upd("Port", {"tag": 20}, by_uuid(P1_U)),
        vwait("Port", P1_U, [{"tag": 20}], ["tag"]))],
    "wait_after_delete_in_txn": [SETUP, T(
        mut("Bridge", [["ports", "delete", u(P2_U)]], by_uuid(BR_U)),
        dele("Port", by_uuid(P2_U)),
        vwait("Port", P2_U, [], ["name"]))],
    "wait_in_server_db": [call("transact", ["_Server", {
        "op": "wait", "table": "Database", "where": [], "columns": ["name"],
        "until": "==", "rows": [], "timeout": 0}])],
    # --- sets of references ------------------------------------------------------
    "ports_add_like_vsctl": [SETUP, T(
        vwait("Bridge", BR_U, [{"ports": PORTS_SET}], ["ports"]),
        ins("Interface", {"name": "p3"}, "ri"),
        upd("Bridge", {"ports": ["set", [u(P1_U), ["named-uuid", "rp"], u(P2_U)]]},
            by_uuid(BR_U)),
        ins("Port", {"name": "p3", "interfaces": ["named-uuid", "ri"]}, "rp"),
        {"op": "comment", "comment": "add-port"}),
        T(sel("Bridge", columns=["name"]), sel("Port", columns=["name"]))],
    "ports_remove_collects_garbage": [SETUP, T(
        upd("Bridge", {"ports": u(P2_U)}, by_uuid(BR_U))),
        T(sel("Port", columns=["name"]), sel("Interface", columns=["name"]))],
    "ports_replace_all": [SETUP, T(
        ins("Interface", {"name": "p3"}, "ri"),
        ins("Port", {"name": "p3", "interfaces": ["named-uuid", "ri"]}, "rp"),
        upd("Bridge", {"ports": ["named-uuid", "rp"]}, by_uuid(BR_U))),
        T(sel("Port", columns=["name"]))],
    "ports_same_set_again": [SETUP, T(
        upd("Bridge", {"ports": ["set", [u(P2_U), u(P1_U)]]}, by_uuid(BR_U))),
        T(sel("Port", columns=["name"]))],
    "ports_empty_set": [SETUP, T(upd("Bridge", {"ports": ["set", []]}, by_uuid(BR_U))),
                        T(sel("Port", columns=["name"]))],
    "ports_duplicate": [SETUP, T(
        upd("Bridge", {"ports": ["set", [u(P1_U), u(P1_U)]]}, by_uuid(BR_U)))],
    "ports_dangling_two": [SETUP, T(
        upd("Bridge", {"ports": ["set", [u(P1_U), u(MISSING_U), u(P3_U)]]},
            by_uuid(BR_U)))],
    "ports_bad_uuid_in_set": [SETUP, T(
        upd("Bridge", {"ports": ["set", [u(P1_U), ["uuid", "zz"]]]}, by_uuid(BR_U)))],
    "ports_number_in_set": [SETUP, T(
        upd("Bridge", {"ports": ["set", [u(P1_U), 5]]}, by_uuid(BR_U)))],
    "ports_named_uuid_undefined": [SETUP, T(
        upd("Bridge", {"ports": ["set", [u(P1_U), ["named-uuid", "nope"]]]},
            by_uuid(BR_U)))],
    "ports_named_uuid_bad_type": [SETUP, T(
        upd("Bridge", {"ports": ["named-uuid", 7]}, by_uuid(BR_U)))],
    "ports_set_of_three_members": [SETUP, T(
        upd("Bridge", {"ports": ["set", [u(P1_U)], 1]}, by_uuid(BR_U)))],
    "ports_uuid_three_members": [SETUP, T(
        upd("Bridge", {"ports": ["uuid", P1_U, 1]}, by_uuid(BR_U)))],
    "ports_set_not_list": [SETUP, T(
        upd("Bridge", {"ports": ["set", u(P1_U)]}, by_uuid(BR_U)))],
    "scalar_ref_as_set_of_two": [SETUP, T(
        upd("Open_vSwitch", {"ssl": ["set", [u(P1_U), u(P2_U)]]}, by_uuid(OVS_U)))],
    "delete_port_still_referenced": [SETUP, T(dele("Port", by_uuid(P1_U)))],
    "move_port_between_bridges": [SETUP, T(
        ins("Bridge", {"name": "br1", "ports": u(P2_U)}, "b1"),
        mut("Open_vSwitch", [["bridges", "insert", ["named-uuid", "b1"]]]),
        upd("Bridge", {"ports": u(P1_U)}, by_uuid(BR_U))),
        T(sel("Port", columns=["name"]), sel("Bridge", columns=["name"]))],
    "insert_with_ref_set_named_forward": [T(
        ins("Open_vSwitch", {"bridges": ["set", [["named-uuid", "x"], ["named-uuid", "y"]]]}),
        ins("Bridge", {"name": "x"}, "x"),
        ins("Bridge", {"name": "y"}, "y")),
        T(sel("Bridge", columns=["name"]))],
    # --- monitors ---------------------------------------------------------------
    "monitors_same_shape_two_clients": [
        SETUP,
        call("monitor_cond", [DB, "m", {"Port": [{"columns": ["name", "tag"]}]}]),
        call("monitor_cond", [DB, "m", {"Port": [{"columns": ["name", "tag"]}]}], c=2),
        T(upd("Port", {"tag": 5}, by_uuid(P2_U))),
        ("drain", 2),
        T(dele("Port", by_uuid(P1_U)), mut("Bridge", [["ports", "delete", u(P1_U)]])),
        ("drain", 2),
    ],
    "monitors_other_ids_same_shape": [
        SETUP,
        call("monitor_cond", [DB, ["a", 1], {"Port": [{"columns": ["name"]}]}]),
        call("monitor_cond", [DB, {"b": None}, {"Port": [{"columns": ["name"]}]}], c=2),
        call("monitor", [DB, "old", {"Port": {"columns": ["name"]}}], c=2),
        T(upd("Port", {"name": "p1x"}, by_uuid(P1_U))),
        ("drain", 2),
    ],
    # (one monitor per client: ovsdb-server orders one client's monitors by hash)
    "monitors_initial_then_insert_reuse_rows": [
        SETUP,
        call("monitor_cond", [DB, 1, {"Port": [{"columns": ["name", "interfaces"]}],
                                      "Bridge": [{"columns": ["ports"]}]}]),
        call("monitor_cond", [DB, 2, {"Port": [{"columns": ["interfaces", "name"]}]}], c=2),
        T(ins("Interface", {"name": "p3"}, "ri"),
          ins("Port", {"name": "p3", "interfaces": ["named-uuid", "ri"], "tag": 10}, "rp"),
          mut("Bridge", [["ports", "insert", ["named-uuid", "rp"]]])),
        ("drain", 2),
        call("monitor_cond", [DB, 5, {"Port": [{"columns": ["name", "interfaces"]}]}], c=2),
    ],
    "monitors_where_and_since": [
        SETUP,
        call("monitor_cond", [DB, 3, {"Port": [{"columns": ["name"],
                                                "where": [["tag", "==", 10]]}]}]),
        call("monitor_cond_since", [DB, 4, {"Port": [{"columns": ["name"]}]},
                                    "00000000-0000-0000-0000-000000000000"], c=2),
        T(ins("Interface", {"name": "p3"}, "ri"),
          ins("Port", {"name": "p3", "interfaces": ["named-uuid", "ri"], "tag": 10}, "rp"),
          mut("Bridge", [["ports", "insert", ["named-uuid", "rp"]]])),
        ("drain", 2),
        T(upd("Port", {"name": "p1x"}, by_uuid(P1_U))),
        ("drain", 2),
    ],
    "monitor_all_columns_twice": [
        SETUP,
        call("monitor_cond", [DB, 1, {"Interface": [{}]}]),
        call("monitor_cond", [DB, 1, {"Interface": [{}]}], c=2),
        call("monitor", [DB, 2, {"Interface": {}}], c=2),
    ],
    "server_db_monitor_like_vsctl": [
        call("get_schema", ["_Server"]),
        call("monitor_cond", ["_Server", ["monid", "_Server"], {"Database": [
            {"columns": ["name", "model", "connected", "leader", "schema", "cid",
                         "index"]}]}]),
        call("monitor_cond", ["_Server", ["monid", "_Server"], {"Database": [
            {"columns": ["name", "model", "connected", "leader", "schema", "cid",
                         "index"]}]}], c=2),
    ],
}

CKID = {"color": "red", "size": 1}
CS: dict[str, list] = {
    "wait_real_echo": [
        CT(ins("Root", {"name": "r", "score": 1.5, "ratio": 2.0, "hero": ["named-uuid", "k"]},
               uuid=BR_U),
           ins("Kid", CKID, "k")),
        CT(vwait("Root", BR_U, [{"score": 1.5}], ["score"]),
           vwait("Root", BR_U, [{"ratio": 2.0}], ["ratio"]),
           vwait("Root", BR_U, [{"ratio": 2}], ["ratio"])),
    ],
    "wait_real_as_integer": [
        CT(ins("Root", {"name": "r", "score": 3.0, "hero": ["named-uuid", "k"]}, uuid=BR_U),
           ins("Kid", CKID, "k")),
        CT(vwait("Root", BR_U, [{"score": 3}], ["score"])),
    ],
    "wait_boolean_set_echo": [
        CT(ins("Root", {"name": "r", "hero": ["named-uuid", "k"], "kids": ["named-uuid", "k"]},
               uuid=BR_U),
           ins("Kid", {**CKID, "flags": ["set", [True, False]]}, "k", uuid=I1_U)),
        CT(vwait("Kid", I1_U, [{"flags": ["set", [False, True]]}], ["flags"]),
           vwait("Kid", I1_U, [{"flags": ["set", [0, 1]]}], ["flags"])),
    ],
    "wait_integer_map_echo": [
        CT(ins("Root", {"name": "r", "hero": ["named-uuid", "k"], "kids": ["named-uuid", "k"]},
               uuid=BR_U),
           ins("Kid", {**CKID, "pairs": ["map", [[1, "x"], [2, "y"]]]}, "k", uuid=I1_U)),
        CT(vwait("Kid", I1_U, [{"pairs": ["map", [[1, "x"], [2, "y"]]]}], ["pairs"]),
           vwait("Kid", I1_U, [{"pairs": ["map", [[1.0, "x"], [2, "y"]]]}], ["pairs"])),
    ],
    "weak_ref_set_fast_parse": [
        CT(ins("Root", {"name": "r", "hero": ["named-uuid", "k"],
                        "fans": ["set", [["named-uuid", "k"], ["named-uuid", "k2"]]]},
               uuid=BR_U),
           ins("Kid", CKID, "k"), ins("Kid", {**CKID, "a": 2}, "k2")),
        CT(sel("Root", columns=["fans"])),
    ],
}


@pytest.mark.parametrize("name", sorted(VS))
def test_ovsdb_fastpath_vswitch_same_as_ovsdb_server(vswitch_servers, name):  # noqa: F811
    ours, ref_sock = vswitch_servers
    expected = run_case(ref_sock, VS[name], DB, VS_ROOTS)
    assert run_case(ours, VS[name], DB, VS_ROOTS) == expected


@pytest.mark.parametrize("name", sorted(CS))
def test_ovsdb_fastpath_constraints_same_as_ovsdb_server(constraint_servers, name):  # noqa: F811
    ours, ref_sock = constraint_servers
    expected = run_case(ref_sock, CS[name], CDB, ["Root"])
    assert run_case(ours, CS[name], CDB, ["Root"]) == expected
