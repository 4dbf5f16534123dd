"""ovs-appctl -t ovsdb-server: the embedded server's run-time commands,
compared with Debian's ovsdb-server answering the same commands."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from tests.ovsdb.helpers import RpcClient, debian_server, ovsbpfd_server


@contextmanager
def both_servers() -> Iterator[dict[str, tuple[str, str, str]]]:
    """name -> (db socket, unixctl socket, temp dir) for both servers."""
    with ExitStack() as stack:
        out = {}
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="appctl-ours-"))
        ctl = os.path.join(tmp, "ours.ctl")
        sock, _proc = stack.enter_context(ovsbpfd_server(tmp, extra=["--unixctl", ctl]))
        out["ovsbpfd"] = (sock, ctl, tmp)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="appctl-ref-"))
        sock, _proc = stack.enter_context(debian_server(tmp))
        out["ovsdb-server"] = (sock, os.path.join(tmp, "ref.ctl"), tmp)
        yield out


def appctl(ctl: str, *args: str) -> tuple[int, str, str]:
    r = subprocess.run(["ovs-appctl", "-t", ctl, *args], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout, r.stderr


def vsctl(sock: str, *args: str) -> str:
    return subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait", *args],
                          check=True, capture_output=True, text=True, timeout=30).stdout


def _normalised(text: str, sock: str, ctl: str, tmp: str) -> str:
    return text.replace(ctl, "CTL").replace(sock, "SOCK").replace(tmp, "TMP")


def _answers(servers: dict[str, tuple[str, str, str]], *args: str) -> dict[str, tuple]:
    out = {}
    for name, (sock, ctl, tmp) in servers.items():
        rc, stdout, stderr = appctl(ctl, *[a.replace("TMP", tmp) for a in args])
        out[name] = (rc, _normalised(stdout, sock, ctl, tmp), _normalised(stderr, sock, ctl, tmp))
    return out


COMMANDS = [
    ("ovsdb-server/list-remotes",),
    ("ovsdb-server/list-dbs",),
    ("ovsdb-server/add-remote", "punix:TMP/z-extra.sock"),
    ("ovsdb-server/add-remote", "punix:TMP/z-extra.sock"),  # again: no duplicate
    ("ovsdb-server/add-remote", "ptcp:0:127.0.0.1"),
    ("ovsdb-server/add-remote", "bogus:1"),  # accepted, as ovsdb-server does
    ("ovsdb-server/add-remote", "db:x"),
    ("ovsdb-server/add-remote", "db:Open_vSwitch,Open_vSwitch"),
    ("ovsdb-server/add-remote", "db:Nope,Open_vSwitch,manager_options"),
    ("ovsdb-server/add-remote", "db:Open_vSwitch,Nope,target"),
    ("ovsdb-server/add-remote", "db:Open_vSwitch,Open_vSwitch,nope"),
    ("ovsdb-server/add-remote", "db:Open_vSwitch,Open_vSwitch,manager_options"),
    ("ovsdb-server/add-remote",),
    ("ovsdb-server/add-remote", "a", "b"),
    ("ovsdb-server/list-remotes",),
    ("ovsdb-server/remove-remote", "nope"),
    ("ovsdb-server/remove-remote", "bogus:1"),
    ("ovsdb-server/remove-remote", "db:Open_vSwitch,Open_vSwitch,manager_options"),
    ("ovsdb-server/remove-remote", "ptcp:0:127.0.0.1"),
    ("ovsdb-server/list-remotes",),
    ("ovsdb-server/compact", "nope"),
    ("ovsdb-server/compact", "_Server"),
    ("ovsdb-server/compact", "Open_vSwitch"),
    ("ovsdb-server/compact",),
    ("ovsdb-server/reconnect", "x"),
    ("ovsdb-server/reconnect",),
    ("memory/show",),
]


def test_appctl_commands_answer_as_ovsdb_server_does() -> None:
    with both_servers() as servers:
        for command in COMMANDS:
            answers = _answers(servers, *command)
            assert answers["ovsbpfd"] == answers["ovsdb-server"], command


def test_memory_show_counts_as_ovsdb_server_does() -> None:
    """cells, atoms, weak references (a mirror's selected ports), monitors and
    sessions, over the same contents and the same connected clients."""
    with both_servers() as servers, ExitStack() as clients:
        for sock, _ctl, _tmp in servers.values():
            vsctl(sock, "init")
            vsctl(sock, "add-br", "br0", "--", "add-port", "br0", "p1", "--",
                  "add-port", "br0", "p2")
            vsctl(sock, "--", "--id=@p1", "get", "Port", "p1", "--", "--id=@p2", "get", "Port",
                  "p2", "--", "--id=@m", "create", "Mirror", "name=m0",
                  "select_src_port=@p1,@p2", "select_dst_port=@p1", "--", "set", "Bridge",
                  "br0", "mirrors=@m")
            client = RpcClient(sock)
            clients.callback(client.close)
            reply, _ = client.call("monitor_cond", ["Open_vSwitch", "m1",
                                                    {"Port": [{"columns": ["name"]}]}])
            assert "result" in reply
        answers = _answers(servers, "memory/show")
        assert answers["ovsbpfd"] == answers["ovsdb-server"]
        assert "n-weak-refs:3 " in answers["ovsbpfd"][1]
        assert "sessions:1" in answers["ovsbpfd"][1]


@pytest.mark.parametrize("name", ["ovsbpfd", "ovsdb-server"])
def test_added_remote_serves_and_removing_it_drops_its_clients(name: str) -> None:
    with both_servers() as servers:
        sock, ctl, tmp = servers[name]
        extra = os.path.join(tmp, "extra.sock")
        assert appctl(ctl, "ovsdb-server/add-remote", f"punix:{extra}")[0] == 0
        client = RpcClient(extra)
        try:
            reply, _ = client.call("list_dbs", [])
            assert reply["result"] == ["Open_vSwitch", "_Server"]
            assert appctl(ctl, "ovsdb-server/remove-remote", f"punix:{extra}")[0] == 0
            assert client.recv() is None  # the server closed the connection
        finally:
            client.close()
        assert not os.path.exists(extra)
        assert RpcClient(sock).call("list_dbs", [])[0]["result"] == ["Open_vSwitch", "_Server"]


@pytest.mark.parametrize("name", ["ovsbpfd", "ovsdb-server"])
def test_added_db_remote_follows_the_manager_table(name: str) -> None:
    """add-remote db:Open_vSwitch,Open_vSwitch,manager_options at run time,
    then `ovs-vsctl set-manager` opens the listener it names."""
    with both_servers() as servers:
        sock, ctl, tmp = servers[name]
        vsctl(sock, "init")
        spec = "db:Open_vSwitch,Open_vSwitch,manager_options"
        assert appctl(ctl, "ovsdb-server/add-remote", spec)[0] == 0
        managed = os.path.join(tmp, "managed.sock")
        vsctl(sock, "set-manager", f"punix:{managed}")
        client = None
        for _ in range(100):
            try:
                client = RpcClient(managed)
                break
            except OSError:
                subprocess.run(["sleep", "0.05"], check=True)
        assert client is not None, "the Manager row's remote never came up"
        try:
            assert client.call("list_dbs", [])[0]["result"] == ["Open_vSwitch", "_Server"]
        finally:
            client.close()


def test_reconnect_drops_every_client() -> None:
    with both_servers() as servers:
        sock, ctl, _tmp = servers["ovsbpfd"]
        client = RpcClient(sock)
        try:
            assert client.call("echo", ["x"])[0]["result"] == ["x"]
            assert appctl(ctl, "ovsdb-server/reconnect")[0] == 0
            assert client.recv() is None
        finally:
            client.close()
