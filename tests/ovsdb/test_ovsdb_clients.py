"""System tests: `python -m ovsbpfd.ovsdb` with the real ovs-vsctl, ovsdb-client,
ovsdb-tool and the python-ovs Idl as clients."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import time

import ovs.db.idl
import ovs.poller
import pytest

from .helpers import SCHEMA, RpcClient, idl_run_until, ovsbpfd_server

pytestmark = pytest.mark.skipif(shutil.which("ovs-vsctl") is None,
                                reason="Open vSwitch clients not installed")


def vsctl(sock: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait", "--timeout=10", *args],
                          capture_output=True, text=True, check=check)


def test_ovsdb_vsctl_builds_and_edits_bridges(tmp_path):
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        vsctl(sock, "init")
        vsctl(sock, "add-br", "br0", "--", "add-port", "br0", "p1", "--",
              "set", "interface", "p1", "type=internal")
        assert vsctl(sock, "list-br").stdout.split() == ["br0"]
        assert vsctl(sock, "list-ports", "br0").stdout.split() == ["p1"]
        vsctl(sock, "set", "bridge", "br0", "other_config:k=v", "fail_mode=secure")
        assert vsctl(sock, "get", "bridge", "br0", "other_config:k").stdout.strip() == "v"
        vsctl(sock, "add", "bridge", "br0", "flood_vlans", "3", "4")
        vsctl(sock, "remove", "bridge", "br0", "flood_vlans", "3")
        assert vsctl(sock, "get", "bridge", "br0", "flood_vlans").stdout.strip() == "[4]"
        vsctl(sock, "clear", "bridge", "br0", "other_config")
        assert vsctl(sock, "get", "bridge", "br0", "other_config").stdout.strip() == "{}"
        found = vsctl(sock, "--bare", "--columns=name", "find", "interface", "type=internal")
        assert sorted(found.stdout.split()) == ["br0", "p1"]
        assert "Port p1" in vsctl(sock, "show").stdout
        dup = vsctl(sock, "add-br", "br0", check=False)
        assert dup.returncode != 0 and "already exists" in dup.stderr
        bad = vsctl(sock, "get", "bridge", "br0", "nosuchcolumn", check=False)
        assert bad.returncode != 0
        vsctl(sock, "del-br", "br0")
        assert vsctl(sock, "list-br").stdout.strip() == ""
        out = vsctl(sock, "--columns=name", "list", "interface").stdout
        assert out.strip() == ""  # garbage-collected with their ports


def test_ovsdb_data_survives_restart_and_tools_read_the_log(tmp_path):
    db = str(tmp_path / "conf.db")
    with ovsbpfd_server(str(tmp_path)) as (sock, proc):
        vsctl(sock, "init")
        vsctl(sock, "add-br", "br9")
        assert proc.send_signal(signal.SIGTERM) is None
        assert proc.wait(timeout=10) == 0
        assert not os.path.exists(sock)
    log = subprocess.run(["ovsdb-tool", "show-log", db], capture_output=True, text=True,
                         check=True).stdout
    assert "add-br br9" in log
    q = subprocess.run(["ovsdb-tool", "query", db,
                        '["Open_vSwitch",{"op":"select","table":"Bridge","where":[],'
                        '"columns":["name"]}]'], capture_output=True, text=True, check=True)
    assert '"br9"' in q.stdout
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        assert vsctl(sock, "list-br").stdout.split() == ["br9"]


def test_ovsdb_opens_file_made_by_ovsdb_tool(tmp_path):
    db = str(tmp_path / "conf.db")
    subprocess.run(["ovsdb-tool", "create", db, SCHEMA], check=True)
    with ovsbpfd_server(str(tmp_path), dbfile=db) as (sock, _proc):
        vsctl(sock, "init")
        assert vsctl(sock, "br-exists", "x", check=False).returncode == 2


def test_ovsdb_socket_mode_and_stale_socket(tmp_path):
    stale = tmp_path / "db.sock"
    stale.write_text("stale")
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o750
        assert stat.S_ISSOCK(os.stat(sock).st_mode)


def test_ovsdb_client_tools(tmp_path):
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        remote = f"unix:{sock}"
        dbs = subprocess.run(["ovsdb-client", "list-dbs", remote], capture_output=True,
                             text=True, check=True).stdout.split()
        assert dbs == ["Open_vSwitch", "_Server"]
        schema = subprocess.run(["ovsdb-client", "get-schema", remote, "Open_vSwitch"],
                                capture_output=True, text=True, check=True).stdout
        assert '"Bridge"' in schema
        mon = subprocess.Popen(["ovsdb-client", "--format=csv", "monitor", remote,
                                "Open_vSwitch", "Bridge", "name"],
                               stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            vsctl(sock, "init")
            vsctl(sock, "add-br", "brm")
            subprocess.run(["ovsdb-client", "transact", remote,
                            '["Open_vSwitch",{"op":"comment","comment":"x"}]'],
                           check=True, capture_output=True)
            dump = subprocess.run(["ovsdb-client", "dump", remote, "Open_vSwitch", "Bridge"],
                                  capture_output=True, text=True, check=True).stdout
            assert "brm" in dump
            time.sleep(0.5)
        finally:
            mon.terminate()
            out, _ = mon.communicate(timeout=10)
        assert "brm" in out and "insert" in out


def test_ovsdb_python_idl_reads_and_writes(tmp_path):
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        vsctl(sock, "init")
        helper = ovs.db.idl.SchemaHelper(SCHEMA)
        helper.register_all()
        idl = ovs.db.idl.Idl(f"unix:{sock}", helper)
        try:
            idl_run_until(idl, lambda: idl.tables["Open_vSwitch"].rows)
            txn = ovs.db.idl.Transaction(idl)
            br = txn.insert(idl.tables["Bridge"])
            br.name = "idlbr"
            (root,) = idl.tables["Open_vSwitch"].rows.values()
            root.addvalue("bridges", br.uuid)
            status = txn.commit_block()
            assert status == ovs.db.idl.Transaction.SUCCESS
            assert vsctl(sock, "list-br").stdout.split() == ["idlbr"]
            vsctl(sock, "set", "bridge", "idlbr", "external_ids:seen=yes")
            idl_run_until(idl, lambda: any(r.external_ids.get("seen") == "yes"
                                       for r in idl.tables["Bridge"].rows.values()))
        finally:
            idl.close()


def test_ovsdb_bad_client_does_not_disturb_others(tmp_path):
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        good = RpcClient(sock)
        bad = RpcClient(sock)
        bad.send_raw(b'{"id":1,"method":"transact","params":["Open_vSwitch", {"op":')
        bad.close()
        junk = RpcClient(sock)
        junk.send_raw(b"\xff\xfe not json")
        assert junk.recv() is None  # dropped
        junk.close()
        reply, _ = good.call("echo", ["still", "here"])
        assert reply["result"] == ["still", "here"]
        assert good.transact("Open_vSwitch", {"op": "select", "table": "Bridge", "where": []}) \
            == [{"rows": []}]
        good.close()


def test_ovsdb_ptcp_remote_on_loopback(tmp_path):
    with ovsbpfd_server(str(tmp_path), extra=["--remote", "ptcp:0:127.0.0.1"]) as (sock, proc):
        # The port is ephemeral; find it from the process's listening sockets.
        out = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
        ports = [line.split()[3].rsplit(":", 1)[1] for line in out.splitlines()
                 if f"pid={proc.pid}," in line]
        assert ports
        res = subprocess.run(["ovsdb-client", "list-dbs", f"tcp:127.0.0.1:{ports[0]}"],
                             capture_output=True, text=True, check=True)
        assert "Open_vSwitch" in res.stdout

