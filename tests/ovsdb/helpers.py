"""Test helpers: start ovsbpfd's OVSDB server or Debian's ovsdb-server on a temp
dir, and talk raw JSON-RPC to either."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(REPO, "schemas", "vswitch.ovsschema")
DEBIAN_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def wait_for_socket(path: str, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(path)


def idl_run_until(idl: Any, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run a python-ovs Idl until done() holds; TimeoutError after timeout."""
    import ovs.poller  # here: importing it warns about eventlet, callers filter that

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        idl.run()
        if done():
            return
        poller = ovs.poller.Poller()
        idl.wait(poller)
        poller.timer_wait(50)
        poller.block()
    raise TimeoutError("IDL did not reach the expected state")


def stop_process(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    return proc.returncode


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


@contextmanager
def ovsbpfd_server(tmpdir: str, extra: list[str] | None = None, dbfile: str | None = None,
                   schema: str = SCHEMA):
    """Run `python -m ovsbpfd.ovsdb` on tmpdir/db.sock; yields (sock path, process)."""
    sock = os.path.join(tmpdir, "db.sock")
    db = dbfile or os.path.join(tmpdir, "conf.db")
    args = [sys.executable, "-m", "ovsbpfd.ovsdb", "--remote", f"punix:{sock}",
            "--schema", schema, *(extra or []), db]
    proc = subprocess.Popen(args, cwd=REPO, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_socket(sock, proc)
        yield sock, proc
    finally:
        stop_process(proc)
        if proc.stdout:
            proc.stdout.close()


@contextmanager
def debian_server(tmpdir: str, schema: str = SCHEMA):
    """Run Debian's ovsdb-server by hand (not as a service) as a reference."""
    sock = os.path.join(tmpdir, "ref.sock")
    db = os.path.join(tmpdir, "ref.db")
    subprocess.run(["ovsdb-tool", "create", db, schema], check=True)
    proc = subprocess.Popen(
        ["ovsdb-server", f"--remote=punix:{sock}", f"--unixctl={tmpdir}/ref.ctl",
         "--no-chdir", f"--log-file={tmpdir}/ref.log", db],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_socket(sock, proc)
        yield sock, proc
    finally:
        stop_process(proc)


class RpcClient:
    """A blocking raw JSON-RPC client that records notifications."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.next_id = 1000

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, msg: dict) -> None:
        self.send_raw(json.dumps(msg).encode())

    def recv(self) -> Any:
        """The next message, or None at EOF."""
        while True:
            text = self.buf.lstrip()
            if text:
                try:
                    obj, end = self.decoder.raw_decode(text)
                    self.buf = text[end:]
                    return obj
                except ValueError:
                    pass
            data = self.sock.recv(1 << 20)
            if not data:
                return None
            self.buf += data.decode()

    def call(self, method: str, params: list, msg_id: Any = None) -> tuple[Any, list]:
        """Send a request; return (reply, notifications received before it)."""
        if msg_id is None:
            msg_id = self.next_id
            self.next_id += 1
        self.send({"id": msg_id, "method": method, "params": params})
        notes = []
        while True:
            msg = self.recv()
            if msg is None:
                return None, notes
            if msg.get("id") == msg_id and "method" not in msg:
                return msg, notes
            notes.append(msg)

    def transact(self, db: str, *ops: dict) -> list:
        reply, _ = self.call("transact", [db, *ops])
        return reply["result"]


@contextmanager
def debian_cluster_server(tmpdir: str, schema: str = SCHEMA):
    """Debian's ovsdb-server on a one-member cluster: the reference for
    transaction history (a standalone ovsdb-server keeps none)."""
    sock = os.path.join(tmpdir, "cluster.sock")
    db = os.path.join(tmpdir, "cluster.db")
    subprocess.run(["ovsdb-tool", "create-cluster", db, schema,
                    f"unix:{tmpdir}/raft.sock"], check=True, capture_output=True)
    proc = subprocess.Popen(
        ["ovsdb-server", f"--remote=punix:{sock}", f"--unixctl={tmpdir}/cluster.ctl",
         "--no-chdir", f"--log-file={tmpdir}/cluster.log", db],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_socket(sock, proc)
        client = RpcClient(sock)
        deadline = time.monotonic() + 10
        while True:  # until the single member has elected itself leader
            res = client.transact("Open_vSwitch", {"op": "select", "table": "Open_vSwitch",
                                                   "where": []})
            if "error" not in res[0] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        client.close()
        yield sock, proc
    finally:
        stop_process(proc)
