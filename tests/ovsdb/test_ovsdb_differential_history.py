"""monitor_cond_since with transaction history, compared with Debian's
ovsdb-server running a one-member cluster (the only ovsdb-server mode that
keeps history; a standalone one always answers found=false)."""

from __future__ import annotations

import json
import shutil

import pytest

from ovsbpfd.ovsdb.history import TxnHistory, merge_changes

from .helpers import RpcClient, debian_cluster_server, ovsbpfd_server
from .test_ovsdb_differential import DB, RESET, ins, normalise

pytestmark = pytest.mark.skipif(shutil.which("ovsdb-server") is None,
                                reason="Debian ovsdb-server not installed")

ZERO = "00000000-0000-0000-0000-000000000000"
# A QoS row with many atoms that no case touches again, so that the small later
# transactions fit in the history with a wide margin (ovsdb-server keeps no
# more atoms of history than the database has, and trims it lazily, so cases
# near that limit would be timing-dependent).
BIG = [ins("Open_vSwitch", {"next_cfg": 1}, "o"),
       ins("QoS", {"other_config": ["map", [[f"k{i}", "v"] for i in range(200)]]}),
       ins("Bridge", {"name": "br0"}, "b"),
       {"op": "mutate", "table": "Open_vSwitch", "where": [],
        "mutations": [["bridges", "insert", ["set", [["named-uuid", "b"]]]]]}]
BUMP = ("transact", [DB, {"op": "mutate", "table": "Open_vSwitch", "where": [],
                          "mutations": [["next_cfg", "+=", 1]]}])
OVS_MON = {"Open_vSwitch": [{"columns": ["next_cfg", "bridges"]}]}
BR_MON = {"Bridge": [{"columns": ["name", "fail_mode"]}]}


def resume_point(tables):
    """Set up the big rows, then one small transaction whose id is the mark:
    later small transactions keep history well under the database's size."""
    return [("transact", [DB, *BIG]), BUMP, mcs("a", tables, ZERO), ("mark",)]


def mcs(mon_id, tables, since="$mark"):
    return ("monitor_cond_since", [DB, mon_id, tables, since])


CASES = {
    "zero_id_is_not_found": [("transact", [DB, *BIG]), mcs("a", OVS_MON, ZERO)],
    "unknown_id_is_not_found": [("transact", [DB, *BIG]),
                                mcs("a", OVS_MON, "11111111-2222-3333-4444-555555555555")],
    "latest_id_is_found_with_nothing": [("transact", [DB, *BIG]), mcs("a", OVS_MON, ZERO),
                                        ("mark",), mcs("b", OVS_MON)],
    "found_replays_modify": [*resume_point(OVS_MON), BUMP, BUMP, mcs("b", OVS_MON)],
    "found_replays_insert_and_delete": [
        *resume_point(BR_MON),
        ("transact", [DB, ins("Bridge", {"name": "br1"}, "n"),
                      {"op": "mutate", "table": "Open_vSwitch", "where": [],
                       "mutations": [["bridges", "insert", ["named-uuid", "n"]]]}]),
        ("transact", [DB, {"op": "update", "table": "Bridge", "where": [["name", "==", "br0"]],
                           "row": {"fail_mode": "secure"}}]),
        mcs("b", BR_MON)],
    "found_with_condition": [
        *resume_point(BR_MON),
        ("transact", [DB, {"op": "update", "table": "Bridge", "where": [],
                           "row": {"fail_mode": "standalone"}}]),
        mcs("b", {"Bridge": [{"columns": ["name", "fail_mode"],
                              "where": [["name", "==", "nope"]]}]}),
        mcs("c", {"Bridge": [{"columns": ["fail_mode"], "where": [["name", "==", "br0"]]}]})],
    "update3_after_resume": [*resume_point(OVS_MON), BUMP, mcs("b", OVS_MON), BUMP],
    "delete_still_referenced": [
        ("transact", [DB, *BIG]),
        ("transact", [DB, {"op": "delete", "table": "Bridge", "where": []}])],
    "insert_then_delete_between": [
        *resume_point(BR_MON),
        ("transact", [DB, ins("Bridge", {"name": "tmp"}, "n"),
                      {"op": "mutate", "table": "Open_vSwitch", "where": [],
                       "mutations": [["bridges", "insert", ["named-uuid", "n"]]]}]),
        ("transact", [DB, {"op": "delete", "table": "Bridge", "where": [["name", "==", "tmp"]]},
                      {"op": "mutate", "table": "Open_vSwitch", "where": [],
                       "mutations": [["next_cfg", "+=", 1]]}]),
        mcs("b", BR_MON)],
}


def run_case(sock: str, steps: list) -> list:
    client = RpcClient(sock, timeout=5.0)
    try:
        client.transact(DB, *RESET)
        last = mark = None
        transcript = []
        for i, step in enumerate(steps):
            if step[0] == "mark":
                mark = last
                continue
            method, params = step
            params = json.loads(json.dumps(params).replace('"$mark"', json.dumps(mark)))
            reply, notes = client.call(method, params, msg_id=i)
            for note in notes:
                if note.get("method") == "update3":
                    last = note["params"][1]
            if method == "monitor_cond_since" and reply.get("result"):
                last = reply["result"][1]
                # The id answered must be the newest one the server has.
                reply = dict(reply, result=[reply["result"][0],
                                            reply["result"][1] == (mark or last),
                                            reply["result"][2]])
            transcript.append({"notes": notes, "reply": reply})
        return normalise(transcript)
    finally:
        client.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    ours_dir = tmp_path_factory.mktemp("ours")
    ref_dir = tmp_path_factory.mktemp("cluster")
    with ovsbpfd_server(str(ours_dir)) as (ours, _p1), \
            debian_cluster_server(str(ref_dir)) as (ref, _p2):
        yield ours, ref


@pytest.mark.parametrize("name", sorted(CASES))
def test_ovsdb_history_same_as_clustered_ovsdb_server(servers, name):
    ours, ref = servers
    assert run_case(ours, CASES[name]) == run_case(ref, CASES[name])


def test_ovsdb_history_is_bounded():
    history = TxnHistory()
    first = history.record({}, db_atoms=10)
    assert history.changes_since(first) == []
    ids = [history.record({}, db_atoms=10) for _ in range(TxnHistory.MAX_TXNS + 5)]
    assert len(history) == TxnHistory.MAX_TXNS
    assert history.changes_since(first) is None
    assert history.changes_since(ids[-1]) == []
    assert len(history.changes_since(ids[-3])) == 2
    assert history.latest == ids[-1]


def test_ovsdb_history_merge_keeps_first_old_and_last_new():
    a, b, c = object(), object(), object()
    merged = merge_changes([{"T": {1: (None, a), 2: (b, c)}}, {"T": {1: (a, None), 2: (c, a)}}])
    assert merged == {"T": {2: (b, a)}}
