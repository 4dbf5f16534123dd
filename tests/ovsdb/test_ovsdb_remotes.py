"""Remotes: Manager rows (db: remotes) with status written back, inactivity
probes, pssl with certificates, active connections, and the per-client
backlog and message-size bounds."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest

from .helpers import RpcClient, ovsbpfd_server

pytestmark = pytest.mark.skipif(shutil.which("ovs-vsctl") is None,
                                reason="Open vSwitch clients not installed")

MANAGERS = "db:Open_vSwitch,Open_vSwitch,manager_options"


def vsctl(sock: str, *args: str) -> str:
    return subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait", "--timeout=10", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def wait_until(predicate, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError("condition not reached")


def manager_status(sock: str, target: str) -> tuple[bool, dict]:
    out = json.loads(vsctl(sock, "--format=json", "--columns=is_connected,status",
                           "list", "manager", target))
    (is_connected, status), = out["data"]
    return is_connected, dict(status[1])


def bound_port(sock: str, target: str) -> int:
    return int(wait_until(lambda: manager_status(sock, target)[1].get("bound_port")))


class TcpRpc(RpcClient):
    """RpcClient over TCP or an already-connected socket."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.next_id = 1


def test_ovsdb_manager_ptcp_status_and_probe(tmp_path):
    with ovsbpfd_server(str(tmp_path), extra=["--remote", MANAGERS]) as (sock, _proc):
        vsctl(sock, "init")
        target = "ptcp:0:127.0.0.1"
        vsctl(sock, "set-manager", target)
        port = bound_port(sock, target)
        assert manager_status(sock, target)[0] is False
        silent = socket.create_connection(("127.0.0.1", port))
        try:
            wait_until(lambda: manager_status(sock, target)[0] is True)
            reply = TcpRpc(socket.create_connection(("127.0.0.1", port)))
            assert reply.call("list_dbs", [])[0]["result"] == ["Open_vSwitch", "_Server"]
            reply.close()
        finally:
            silent.close()
        wait_until(lambda: manager_status(sock, target)[0] is False)

        # A 1 s inactivity probe: a silent client gets an echo, then is dropped;
        # a client that answers the echo stays.
        vsctl(sock, "set", "manager", target, "inactivity_probe=1000")
        time.sleep(0.3)
        port = bound_port(sock, target)
        mute = TcpRpc(socket.create_connection(("127.0.0.1", port)), timeout=5)
        polite = TcpRpc(socket.create_connection(("127.0.0.1", port)), timeout=5)
        start = time.monotonic()
        assert mute.recv() == {"id": "echo", "method": "echo", "params": []}
        probe = polite.recv()
        assert probe["method"] == "echo"
        polite.send({"id": probe["id"], "result": probe["params"], "error": None})
        assert mute.recv() is None  # dropped
        assert 1.5 < time.monotonic() - start < 4.0
        time.sleep(0.5)
        assert polite.call("echo", ["alive"])[0]["result"] == ["alive"]
        mute.close()
        polite.close()

        vsctl(sock, "del-manager")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_ovsdb_default_probe_on_ptcp_only(tmp_path):
    with ovsbpfd_server(str(tmp_path), extra=["--remote", MANAGERS]) as (sock, _proc):
        vsctl(sock, "init")
        vsctl(sock, "set-manager", "ptcp:0:127.0.0.1")
        port = bound_port(sock, "ptcp:0:127.0.0.1")
        tcp = TcpRpc(socket.create_connection(("127.0.0.1", port)), timeout=8)
        unix = RpcClient(sock, timeout=1)
        start = time.monotonic()
        assert tcp.recv()["method"] == "echo"
        assert 4.5 < time.monotonic() - start < 7
        with pytest.raises(TimeoutError):
            unix.recv()  # unix sockets are never probed
        tcp.close()
        unix.close()


def test_ovsdb_manager_active_tcp(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    target = f"tcp:127.0.0.1:{port}"
    try:
        with ovsbpfd_server(str(tmp_path), extra=["--remote", MANAGERS]) as (sock, _proc):
            vsctl(sock, "init")
            vsctl(sock, "set-manager", target)
            conn, _ = listener.accept()  # the server connects to us
            peer = TcpRpc(conn)
            assert peer.call("list_dbs", [])[0]["result"] == ["Open_vSwitch", "_Server"]
            connected, status = wait_until(
                lambda: (s := manager_status(sock, target))[0] and s)
            assert status["state"] == "ACTIVE"
            peer.close()
            _, status = wait_until(lambda: (s := manager_status(sock, target))[1].get(
                "state") != "ACTIVE" and s)
            assert status["state"] in ("BACKOFF", "CONNECTING")
            conn2, _ = listener.accept()  # and reconnects after a backoff
            conn2.close()
    finally:
        listener.close()


def _make_pki(d) -> dict[str, str]:
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=testca",
        "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
        run("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey",
            f"{d}/ca.key", "-CAcreateserial", "-days", "2", "-out", f"{d}/{name}.pem")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=rogue",
        "-keyout", f"{d}/rogue.key", "-out", f"{d}/rogue.pem")
    return {n: f"{d}/{n}" for n in ("ca.pem", "server.key", "server.pem", "client.key",
                                      "client.pem", "rogue.key", "rogue.pem")}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")
def test_ovsdb_pssl_with_certificates(tmp_path):
    pki = _make_pki(tmp_path)
    extra = ["--remote", "pssl:0:127.0.0.1", "--private-key", pki["server.key"],
             "--certificate", pki["server.pem"], "--ca-cert", pki["ca.pem"]]
    with ovsbpfd_server(str(tmp_path), extra=extra) as (sock, proc):
        out = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
        (port,) = [line.split()[3].rsplit(":", 1)[1] for line in out.splitlines()
                   if f"pid={proc.pid}," in line]

        def client(key: str, cert: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["ovsdb-client", "--timeout=5", "-p", key, "-c", cert, "-C", pki["ca.pem"],
                 "list-dbs", f"ssl:127.0.0.1:{port}"], capture_output=True, text=True)

        good = client(pki["client.key"], pki["client.pem"])
        assert good.returncode == 0, good.stderr
        assert good.stdout.split() == ["Open_vSwitch", "_Server"]
        rogue = client(pki["rogue.key"], pki["rogue.pem"])
        assert rogue.returncode != 0
        plain = socket.create_connection(("127.0.0.1", int(port)), timeout=3)
        plain.sendall(b'{"id":1,"method":"list_dbs","params":[]}')
        try:
            answer = plain.recv(100)
        except OSError:
            answer = b""
        assert not answer.startswith(b"{")  # no JSON-RPC without TLS
        plain.close()
        assert client(pki["client.key"], pki["client.pem"]).returncode == 0
        assert RpcClient(sock).call("echo", [1])[0]["result"] == [1]


def test_ovsdb_client_that_stops_reading_is_dropped(tmp_path):
    extra = ["--max-backlog", "300000"]
    with ovsbpfd_server(str(tmp_path), extra=extra) as (sock, _proc):
        writer = RpcClient(sock)
        writer.transact("Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}})
        lazy = socket.socket(socket.AF_UNIX)
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.connect(sock)
        lazy.sendall(json.dumps({"id": 1, "method": "monitor", "params": [
            "Open_vSwitch", None, {"Open_vSwitch": {"columns": ["external_ids"]}}]}).encode())
        time.sleep(0.2)
        big = "x" * 4000
        for i in range(200):
            writer.transact("Open_vSwitch", {
                "op": "update", "table": "Open_vSwitch", "where": [],
                "row": {"external_ids": ["map", [["k", f"{big}{i}"]]]}})
        # Everyone else is still served and the lazy client has been cut off.
        assert writer.call("echo", ["ok"])[0]["result"] == ["ok"]
        lazy.settimeout(5)
        received, closed = 0, False
        try:
            while not closed:
                chunk = lazy.recv(1 << 16)
                received += len(chunk)
                closed = not chunk
        except ConnectionResetError:
            closed = True
        assert closed and received < 200 * 4000
        lazy.close()
        writer.close()


def test_ovsdb_huge_message_is_dropped(tmp_path):
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        good = RpcClient(sock)
        huge = socket.socket(socket.AF_UNIX)
        huge.connect(sock)
        huge.settimeout(10)
        head = b'{"id":1,"method":"echo","params":["'
        chunk = b"a" * (1 << 20)
        try:
            huge.sendall(head)
            for _ in range(70):
                huge.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server hung up before we finished: that is the point
        try:
            assert huge.recv(100) == b""
        except ConnectionResetError:
            pass
        huge.close()
        assert good.call("echo", ["fine"])[0]["result"] == ["fine"]
        assert good.transact("Open_vSwitch", {"op": "select", "table": "Open_vSwitch",
                                              "where": []}) == [{"rows": []}]
        good.close()
