"""Online schema conversion ("convert", `ovsdb-client convert`), compared with
Debian's ovsdb-server doing the same conversion with the same clients
connected; and what only ovsbpfd can be checked for (a conversion that fails
on a value, which crashes Debian's ovsdb-server 3.1; restarting; the file)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from ovsbpfd.ovsdb.convert import convert_database, parse_new_schema
from ovsbpfd.ovsdb.errors import OvsdbError
from ovsbpfd.ovsdb.storage import Storage, create_db
from tests.ovsdb.helpers import SCHEMA, RpcClient, debian_server, ovsbpfd_server
from tests.ovsdb.test_ovsdb_differential import normalise

DB = "Open_vSwitch"


def _schema(**changes: Any) -> dict:
    """The vswitch schema with a new version, a new Bridge column "note", no
    Port "mac" column, and any of: tag_max (Port.tag's new maximum),
    name (the schema's name)."""
    with open(SCHEMA) as f:
        schema = json.load(f)
    schema = copy.deepcopy(schema)
    schema["version"] = "99.0.0"
    schema.pop("cksum", None)
    schema["tables"]["Bridge"]["columns"]["note"] = {"type": {"key": "string", "min": 0,
                                                              "max": 1}}
    del schema["tables"]["Port"]["columns"]["mac"]
    if "tag_max" in changes:
        schema["tables"]["Port"]["columns"]["tag"]["type"]["key"]["maxInteger"] = \
            changes["tag_max"]
    if "name" in changes:
        schema["name"] = changes["name"]
    return schema


def vsctl(sock: str, *args: str) -> str:
    return subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait", *args],
                          check=True, capture_output=True, text=True, timeout=30).stdout


def _populate(sock: str) -> None:
    vsctl(sock, "init", "--", "add-br", "br0", "--", "add-port", "br0", "p1", "--",
          "set", "Port", "p1", "tag=100", "mac=\"00:00:00:00:00:01\"", "--",
          "add-port", "br0", "p2")


@contextmanager
def servers() -> Iterator[dict[str, tuple[str, Any]]]:
    with ExitStack() as stack:
        out = {}
        for name, start in (("ovsbpfd", ovsbpfd_server), ("ovsdb-server", debian_server)):
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"convert-{name}-"))
            sock, proc = stack.enter_context(start(tmp))
            _populate(sock)
            out[name] = (sock, proc)
        yield out


def _drain(client: RpcClient, seconds: float = 0.5) -> list:
    """Every message that arrives within seconds; "<closed>" at EOF."""
    client.sock.settimeout(seconds)
    got: list = []
    try:
        while True:
            msg = client.recv()
            if msg is None:
                got.append("<closed>")
                break
            got.append(msg)
    except TimeoutError:
        pass
    client.sock.settimeout(5.0)
    return got


def _scenario(sock: str) -> dict[str, Any]:
    """What each kind of client sees when another converts the database."""
    aware = RpcClient(sock)
    unaware = RpcClient(sock)
    waiter = RpcClient(sock)
    converter = RpcClient(sock)
    try:
        assert aware.call("set_db_change_aware", [True])[0]["result"] == {}
        aware.call("monitor_cond", [DB, "ports", {"Port": [{"columns": ["name", "tag"]}]}])
        aware.call("monitor_cond", ["_Server", "dbs",
                                    {"Database": [{"columns": ["name", "schema"]}]}])
        unaware.call("monitor_cond", [DB, "ports", {"Port": [{"columns": ["name"]}]}])
        never = {"op": "wait", "table": "Bridge", "where": [], "columns": ["name"],
                 "until": "==", "rows": [{"name": "never"}], "timeout": 30000}
        waiter.send({"id": "w", "method": "transact", "params": [DB, never]})
        aware.send({"id": "aw", "method": "transact", "params": [DB, never]})
        time.sleep(0.2)
        converter.call("set_db_change_aware", [True])
        reply, _ = converter.call("convert", [DB, _schema()])
        result = {
            "reply": reply,
            "aware": _drain(aware),
            "unaware": _drain(unaware),
            "waiter": _drain(waiter),
            "schema_version": converter.call("get_schema", [DB])[0]["result"]["version"],
            "ports": converter.transact(DB, {"op": "select", "table": "Port", "where": [],
                                             "columns": ["name", "tag"]}),
            "write_new_column": converter.transact(DB, {
                "op": "update", "table": "Bridge", "where": [], "row": {"note": "hi"}}),
            "use_dropped_column": converter.transact(DB, {
                "op": "select", "table": "Port", "where": [], "columns": ["mac"]}),
        }
    finally:
        for c in (aware, unaware, waiter, converter):
            c.close()
    return normalise(result)


def _server_schema_updates(seen: dict[str, Any]) -> list[str]:
    """The schema versions in the _Server updates a change-aware client got
    (removed from seen): see test_convert_as_ovsdb_server_does."""
    versions = []
    for msg in list(seen["aware"]):
        if isinstance(msg, dict) and msg.get("method") == "update2":
            seen["aware"].remove(msg)
            for (row,) in [msg["params"][1]["Database"]]:
                versions.append(json.loads(row["modify"]["schema"])["version"])
    return versions


def test_convert_as_ovsdb_server_does() -> None:
    """Everything as ovsdb-server, but for one thing: ovsbpfd also rewrites
    the _Server row's schema, which Debian's ovsdb-server 3.1 leaves stale
    for a standalone database (it refreshes that column only when the row
    is new), so that clients reading the schema from _Server, as ovs-vsctl
    and the C IDL do, would still see the old one."""
    with servers() as both:
        seen = {name: _scenario(sock) for name, (sock, _proc) in both.items()}
    ours, ref = seen["ovsbpfd"], seen["ovsdb-server"]
    assert _server_schema_updates(ours) == ["99.0.0"]
    assert _server_schema_updates(ref) == []
    assert ours == ref
    assert ours["reply"]["result"] == {}
    assert ours["schema_version"] == "99.0.0"
    assert ours["unaware"] == ["<closed>"]
    assert ours["waiter"] == ["<closed>"]
    assert ours["aware"] == [
        {"id": None, "method": "monitor_canceled", "params": ["ports"]},
        {"id": "aw", "error": "canceled"}]


@pytest.mark.parametrize("params, error", [
    ([DB], "syntax error"),
    ([DB, _schema(), 1], "syntax error"),
    (["Nope", _schema()], "unknown database"),
    ([DB, "not a schema"], "syntax error"),
    ([DB, _schema(name="Other")], "invalid parameters"),
    ([DB, {"name": DB, "version": "1.0.0"}], "syntax error"),
    ([DB, {"name": DB, "version": "x", "tables": {}}], "syntax error"),
    ([DB, {"name": DB, "version": "1.0.0", "tables": {"T": {"columns": {
        "c": {"type": "nope"}}}}}], "syntax error"),
    ([DB, {"name": DB, "version": "1.0.0", "tables": {"T": {"columns": {
        "r": {"type": {"key": {"type": "uuid", "refTable": "Nope"}}}}}}}], "syntax error"),
])
def test_bad_convert_requests_answer_as_ovsdb_server_does(params: list, error: str) -> None:
    with servers() as both:
        answers = {}
        for name, (sock, _proc) in both.items():
            client = RpcClient(sock)
            try:
                reply, _ = client.call("convert", params)
                version = client.call("get_schema", [DB])[0]["result"]["version"]
            finally:
                client.close()
            answers[name] = (normalise(reply), version)
    assert answers["ovsbpfd"] == answers["ovsdb-server"]
    assert answers["ovsbpfd"][0]["error"]["error"] == error
    assert answers["ovsbpfd"][1] != "99.0.0"


def test_failed_conversion_changes_nothing() -> None:
    """A value the new schema refuses (Port.tag 100 over a new maximum of 50)
    fails the conversion with the error a transaction would get; the
    database, its file and its clients stay as they were.  (Debian's
    ovsdb-server 3.1 crashes here, so this is not compared with it.)"""
    with tempfile.TemporaryDirectory() as tmp, ovsbpfd_server(tmp) as (sock, proc):
        _populate(sock)
        with open(os.path.join(tmp, "conf.db"), "rb") as f:
            before = f.read()
        watcher = RpcClient(sock)
        client = RpcClient(sock)
        try:
            watcher.call("monitor_cond", [DB, "m", {"Port": [{"columns": ["tag"]}]}])
            reply, _ = client.call("convert", [DB, _schema(tag_max=50)])
            assert reply["error"] == {
                "error": "constraint violation",
                "details": "100 is not in the valid range 0 to 50 (inclusive)"}
            assert client.call("get_schema", [DB])[0]["result"]["version"] != "99.0.0"
            assert _drain(watcher, 0.3) == []  # still connected, told nothing
            assert watcher.call("echo", ["still here"])[0]["result"] == ["still here"]
        finally:
            watcher.close()
            client.close()
        with open(os.path.join(tmp, "conf.db"), "rb") as f:
            assert f.read() == before


def test_converted_database_survives_a_restart_and_ovsdb_tool_reads_it() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with ovsbpfd_server(tmp) as (sock, _proc):
            _populate(sock)
            client = RpcClient(sock)
            try:
                client.call("set_db_change_aware", [True])  # or be disconnected
                assert client.call("convert", [DB, _schema()])[0]["result"] == {}
                client.transact(DB, {"op": "update", "table": "Bridge", "where": [],
                                     "row": {"note": "after"}})
            finally:
                client.close()
        path = os.path.join(tmp, "conf.db")
        tool = subprocess.run(["ovsdb-tool", "db-version", path], capture_output=True,
                              text=True, check=True)
        assert tool.stdout.strip() == "99.0.0"
        query = subprocess.run(
            ["ovsdb-tool", "query", path, json.dumps([DB, {
                "op": "select", "table": "Bridge", "where": [], "columns": ["name", "note"]}])],
            capture_output=True, text=True, check=True)
        assert json.loads(query.stdout) == [{"rows": [{"name": "br0", "note": "after"}]}]
        new_schema = os.path.join(tmp, "new.ovsschema")
        with open(new_schema, "w") as f:
            json.dump(_schema(), f)
        # (Started with any other --schema, the file would be converted to that.)
        with ovsbpfd_server(tmp, dbfile=path, schema=new_schema) as (sock, _proc):
            client = RpcClient(sock)
            try:
                assert client.call("get_schema", [DB])[0]["result"]["version"] == "99.0.0"
                rows = client.transact(DB, {"op": "select", "table": "Port", "where": [],
                                            "columns": ["name", "tag"]})[0]["rows"]
                assert sorted((r["name"], r["tag"]) for r in rows) == [
                    ("br0", ["set", []]), ("p1", 100), ("p2", ["set", []])]
            finally:
                client.close()


def test_conversion_drops_rows_no_longer_referenced_and_keeps_uuids() -> None:
    """Unit level: uuids are kept, and the new schema's commit checks run
    (a table that stops being a root loses its unreferenced rows)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "db")
        create_db(path, SCHEMA)
        storage = Storage(path)
        db = storage.load()
        storage.close()
    from ovsbpfd.ovsdb.execution import Executor

    outcome = Executor(db, set()).run([
        {"op": "insert", "table": "Open_vSwitch", "row": {}},
        {"op": "insert", "table": "QoS", "row": {"type": "linux-htb"}}])
    db.apply(outcome.changes)
    qos_uuid = next(iter(db.tables["QoS"]))
    root_uuid = next(iter(db.tables["Open_vSwitch"]))
    schema = _schema()
    kept = convert_database(db, parse_new_schema(schema, DB))
    assert set(kept.tables["QoS"]) == {qos_uuid}
    assert set(kept.tables["Open_vSwitch"]) == {root_uuid}
    schema["tables"]["QoS"]["isRoot"] = False
    dropped = convert_database(db, parse_new_schema(schema, DB))
    assert dropped.tables["QoS"] == {}
    assert set(db.tables["QoS"]) == {qos_uuid}  # the source is left alone
    with pytest.raises(OvsdbError):
        parse_new_schema(_schema(name="Other"), DB)


def test_conversion_during_a_compaction_wins() -> None:
    """A compaction that began before a conversion must not install its
    (old-schema) snapshot over the converted file afterwards."""
    async def scenario(tmp: str) -> str:
        path = os.path.join(tmp, "db")
        create_db(path, SCHEMA)
        storage = Storage(path)
        db = storage.load()
        slow_write = storage._write_snapshot

        def write_slowly(*args: Any) -> str:
            time.sleep(0.3)
            return slow_write(*args)

        storage._write_snapshot = write_slowly  # type: ignore[method-assign]
        compaction = asyncio.ensure_future(storage.compact_async(db))
        await asyncio.sleep(0.05)
        storage._write_snapshot = slow_write  # type: ignore[method-assign]
        storage.replace(convert_database(db, parse_new_schema(_schema(), DB)), "converted")
        await compaction
        storage.close()
        with open(path, "rb") as f:
            f.readline()
            return json.loads(f.readline())["version"]

    with tempfile.TemporaryDirectory() as tmp:
        assert asyncio.run(scenario(tmp)) == "99.0.0"


def test_set_db_change_aware_checks_its_parameter_as_ovsdb_server_does() -> None:
    with servers() as both:
        answers = {}
        for name, (sock, _proc) in both.items():
            client = RpcClient(sock)
            try:
                answers[name] = [normalise(client.call("set_db_change_aware", params)[0])
                                 for params in ([], [1], [True, False], ["x"], [None], [False])]
            finally:
                client.close()
    assert answers["ovsbpfd"] == answers["ovsdb-server"]
    assert answers["ovsbpfd"][0]["error"]["details"] == \
        "set_db_change_aware: true or false parameter expected"


def _old_schema_file(tmp: str, tag_max: int = 4095) -> str:
    """The vswitch schema as an older release had it: version 8.2.0, no
    Bridge "rstp_enable", and Port.tag up to tag_max."""
    with open(SCHEMA) as f:
        schema = json.load(f)
    schema["version"] = "8.2.0"
    schema["cksum"] = "123 456"
    del schema["tables"]["Bridge"]["columns"]["rstp_enable"]
    schema["tables"]["Port"]["columns"]["tag"]["type"]["key"]["maxInteger"] = tag_max
    path = os.path.join(tmp, "old.ovsschema")
    with open(path, "w") as f:
        json.dump(schema, f)
    return path


def _file_with_old_schema(tmp: str, tag: int, tag_max: int = 4095) -> str:
    path = os.path.join(tmp, "conf.db")
    subprocess.run(["ovsdb-tool", "create", path, _old_schema_file(tmp, tag_max)], check=True)
    subprocess.run(["ovsdb-tool", "transact", path, json.dumps([DB, {
        "op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"]}}, {
        "op": "insert", "table": "Bridge", "uuid-name": "b",
        "row": {"name": "br0", "ports": ["named-uuid", "p"]}}, {
        "op": "insert", "table": "Port", "uuid-name": "p",
        "row": {"name": "p1", "tag": tag, "interfaces": ["named-uuid", "i"]}}, {
        "op": "insert", "table": "Interface", "uuid-name": "i", "row": {"name": "p1"}}])],
        check=True, capture_output=True)
    return path


def test_server_started_with_a_newer_schema_converts_the_file_after_a_backup() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _file_with_old_schema(tmp, tag=7)
        with ovsbpfd_server(tmp, dbfile=path) as (sock, _proc):  # --schema: the packaged one
            client = RpcClient(sock)
            try:
                assert client.call("get_schema", [DB])[0]["result"]["version"] == "8.3.1"
                rows = client.transact(DB, {"op": "select", "table": "Port", "where": [],
                                            "columns": ["name", "tag"]})[0]["rows"]
                assert rows == [{"name": "p1", "tag": 7}]
                bridge = client.transact(DB, {"op": "select", "table": "Bridge", "where": [],
                                              "columns": ["rstp_enable"]})[0]["rows"]
                assert bridge == [{"rstp_enable": False}]  # the new column's default
            finally:
                client.close()
        backup = os.path.join(tmp, "conf.db.backup8.2.0-123")
        version = subprocess.run(["ovsdb-tool", "db-version", backup], capture_output=True,
                                 text=True, check=True).stdout.strip()
        assert version == "8.2.0"
        # Started again: nothing more to convert, no second backup.
        with ovsbpfd_server(tmp, dbfile=path):
            pass
        assert sorted(f for f in os.listdir(tmp) if ".backup" in f) == ["conf.db.backup8.2.0-123"]


def test_server_refuses_to_start_on_a_file_its_schema_cannot_hold() -> None:
    """Port.tag 4500 was allowed by the old schema, not by the new one: the
    server says why and exits, and the file is left as it was."""
    with tempfile.TemporaryDirectory() as tmp:
        path = _file_with_old_schema(tmp, tag=4500, tag_max=5000)
        with open(path, "rb") as f:
            before = f.read()
        with pytest.raises(RuntimeError, match="exited"), ovsbpfd_server(tmp, dbfile=path):
            pass
        with open(path, "rb") as f:
            assert f.read() == before
        assert not [f for f in os.listdir(tmp) if ".backup" in f]


def test_conversion_that_drops_the_manager_table_stops_its_remotes() -> None:
    """The server's db:Open_vSwitch,Open_vSwitch,manager_options remote
    names rows of a table the new schema no longer has: the listener they
    asked for closes, and the server keeps serving."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--remote", "db:Open_vSwitch,Open_vSwitch,manager_options"]
        with ovsbpfd_server(tmp, extra=extra) as (sock, _proc):
            managed = os.path.join(tmp, "managed.sock")
            vsctl(sock, "init", "--", "set-manager", f"punix:{managed}")
            for _ in range(100):
                if os.path.exists(managed):
                    break
                time.sleep(0.05)
            assert os.path.exists(managed)
            schema = _schema()
            del schema["tables"]["Manager"]
            del schema["tables"]["Open_vSwitch"]["columns"]["manager_options"]
            client = RpcClient(sock)
            try:
                client.call("set_db_change_aware", [True])
                assert client.call("convert", [DB, schema])[0]["result"] == {}
                for _ in range(100):
                    if not os.path.exists(managed):
                        break
                    time.sleep(0.05)
                assert not os.path.exists(managed)
                time.sleep(3)  # past a status refresh (every 2.5 s)
                assert client.call("echo", ["ok"])[0]["result"] == ["ok"]
            finally:
                client.close()
