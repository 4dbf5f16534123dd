"""Durability: the log format, torn records, compaction, and the unixctl commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from ovsbpfd.ovsdb.execution import Executor
from ovsbpfd.ovsdb.storage import Storage, changes_to_record, create_db, read_records

from .helpers import SCHEMA, ovsbpfd_server


def _commit(storage: Storage, db, *ops) -> list:
    outcome = Executor(db, set()).run(list(ops))
    assert outcome.changes is not None, outcome.results
    record = changes_to_record(db, outcome.changes, ["test"])
    storage.append(record)
    db.apply(outcome.changes)
    return outcome.results


def _root_with_cfg(storage, db, n):
    return _commit(storage, db, {"op": "insert", "table": "Open_vSwitch",
                                 "row": {"next_cfg": n, "external_ids": ["map", [["a", "b"]]]}})


def test_ovsdb_create_and_reload(tmp_path):
    path = str(tmp_path / "db")
    create_db(path, SCHEMA)
    with pytest.raises(FileExistsError):
        create_db(path, SCHEMA)
    st = Storage(path)
    db = st.load()
    res = _root_with_cfg(st, db, 7)
    _commit(st, db, {"op": "mutate", "table": "Open_vSwitch", "where": [],
                     "mutations": [["external_ids", "delete", ["set", ["a"]]],
                                   ["next_cfg", "+=", 1]]})
    st.close()
    db2 = Storage(path).load()
    (row,) = db2.tables["Open_vSwitch"].values()
    assert str(row.uuid) == res[0]["uuid"][1]
    assert row.data["next_cfg"].to_json() == 8
    assert row.data["external_ids"].to_json() == ["map", []]


def test_ovsdb_torn_record_is_ignored(tmp_path):
    path = str(tmp_path / "db")
    create_db(path, SCHEMA)
    st = Storage(path)
    db = st.load()
    _root_with_cfg(st, db, 1)
    st.close()
    good_size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(b'OVSDB JSON 500 0000000000000000000000000000000000000000\n{"Open_vSw')
    st2 = Storage(path)
    db2 = st2.load()
    assert len(db2.tables["Open_vSwitch"]) == 1
    assert os.path.getsize(path) == good_size  # the torn tail was cut off
    st2.close()


def test_ovsdb_compaction_keeps_data(tmp_path):
    path = str(tmp_path / "db")
    create_db(path, SCHEMA)
    st = Storage(path)
    db = st.load()
    _root_with_cfg(st, db, 0)
    for _ in range(50):
        _commit(st, db, {"op": "mutate", "table": "Open_vSwitch", "where": [],
                         "mutations": [["next_cfg", "+=", 1]]})
    before = os.path.getsize(path)
    st.compact(db)
    assert os.path.getsize(path) < before
    records, _ = read_records(path)
    assert len(records) == 2
    st.close()
    (row,) = Storage(path).load().tables["Open_vSwitch"].values()
    assert row.data["next_cfg"].to_json() == 50


@pytest.mark.skipif(shutil.which("ovs-appctl") is None, reason="ovs-appctl missing")
def test_ovsdb_appctl_compact_and_exit(tmp_path):
    ctl = str(tmp_path / "ovsdb.ctl")
    with ovsbpfd_server(str(tmp_path), extra=["--unixctl", ctl]) as (sock, proc):
        for i in range(5):
            subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait",
                            "add-br" if i else "init", *([f"b{i}"] if i else [])], check=True)
        subprocess.run(["ovs-appctl", "-t", ctl, "ovsdb-server/compact"], check=True)
        log = subprocess.run(["ovsdb-tool", "show-log", str(tmp_path / "conf.db")],
                             capture_output=True, text=True, check=True).stdout
        assert log.count("record ") == 2
        subprocess.run(["ovs-appctl", "-t", ctl, "exit"], check=True)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.returncode == 0
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        out = subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait", "list-br"],
                             capture_output=True, text=True, check=True).stdout
        assert out.split() == ["b1", "b2", "b3", "b4"]


def test_ovsdb_reloaded_uuid_sets_share_the_parsers_atoms(tmp_path):
    """A set read back from the log holds the same uuid Atoms a client's later
    resend of it parses to, so the first update after a restart already gets
    the fast reference delta (and the same result as the slow one)."""
    from ovsbpfd.ovsdb.datum_json import datum_from_json

    path = str(tmp_path / "db")
    create_db(path, SCHEMA)
    st = Storage(path)
    db = st.load()
    _root_with_cfg(st, db, 1)
    ports = [{"op": "insert", "table": "Port", "uuid-name": f"p{i}",
              "row": {"name": f"p{i}", "interfaces": ["named-uuid", f"i{i}"]}} for i in range(3)]
    ifaces = [{"op": "insert", "table": "Interface", "uuid-name": f"i{i}",
               "row": {"name": f"p{i}"}} for i in range(3)]
    bridge = {"op": "insert", "table": "Bridge", "uuid-name": "b",
              "row": {"name": "br", "ports": ["set", [["named-uuid", f"p{i}"] for i in range(3)]]}}
    root = {"op": "mutate", "table": "Open_vSwitch", "where": [],
            "mutations": [["bridges", "insert", ["set", [["named-uuid", "b"]]]]]}
    _commit(st, db, *ports, *ifaces, bridge, root)
    st.close()

    st = Storage(path)
    db = st.load()
    try:
        (row,) = db.tables["Bridge"].values()
        loaded = row.data["ports"]
        column = db.schema.parsed.tables["Bridge"].columns["ports"]
        resent = datum_from_json(column.type, loaded.to_json())
        assert resent == loaded
        assert all(any(a is b for b in loaded.values) for a in resent.values)
    finally:
        st.close()
