"""SSL managers through the real daemon, as with ovs-ctl's ovsdb-server:
``ovs-vsctl set-ssl`` names the files, ``set-manager pssl:``/``ssl:`` opens
the remote, in either order, and ``ovsdb-client`` with its own certificate
gets in.  Everything stays on loopback; certificates are made here."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ofproto.openflow.of_pki import KeyPair, Pki, make_pki
from tests.system.daemon_proc import Daemon, dummy_daemon, free_port

pytestmark = pytest.mark.system


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with dummy_daemon(tmp_path) as d:
        yield d


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            assert value, f"timed out waiting for {what or predicate}"
            return value
        time.sleep(0.1)


def list_dbs(port: int, pair: KeyPair) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ovsdb-client", "--timeout=3", f"--private-key={pair.key}",
         f"--certificate={pair.cert}", f"--ca-cert={pair.ca}",
         "list-dbs", f"ssl:127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=10)


def manager(daemon: Daemon) -> tuple[bool, dict[str, str]]:
    """(is_connected, status) of the only Manager row."""
    out = json.loads(daemon.vsctl("--format=json", "--columns=is_connected,status",
                                  "list", "Manager").stdout)
    ((is_connected, status),) = out["data"]
    return is_connected, dict(status[1])


def set_ssl(daemon: Daemon, pair: KeyPair) -> None:
    daemon.vsctl("set-ssl", pair.key, pair.cert, pair.ca)


@contextlib.contextmanager
def monitoring_client(port: int, pair: KeyPair) -> Iterator[subprocess.Popen]:
    """An ovsdb-client that stays connected (monitoring Bridge) until the end."""
    proc = subprocess.Popen(
        ["ovsdb-client", f"--private-key={pair.key}", f"--certificate={pair.cert}",
         f"--ca-cert={pair.ca}", "monitor", f"ssl:127.0.0.1:{port}", "Open_vSwitch",
         "Bridge"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class TlsManager:
    """The far end of active ssl: managers: accepts TLS connections (checking
    the switch's certificate against the CA), each on its own thread, and
    answers the OVSDB echo probes, so a connection stays up."""

    def __init__(self, pair: KeyPair) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pair.cert, pair.key)
        self.ctx.load_verify_locations(pair.ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.peers: list[str] = []  # common names of the switches that got in
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(10)
            with self.ctx.wrap_socket(raw, server_side=True) as conn:
                subject = dict(p[0] for p in conn.getpeercert()["subject"])
                self.peers.append(subject["commonName"])
                self._answer_echoes(conn)
        except OSError:
            pass

    def _answer_echoes(self, conn: ssl.SSLSocket) -> None:
        conn.settimeout(0.2)
        decoder, buf = json.JSONDecoder(), ""
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            buf += data.decode()
            while buf.strip():
                try:
                    msg, end = decoder.raw_decode(buf.lstrip())
                except ValueError:
                    break
                buf = buf.lstrip()[end:]
                if msg.get("method") == "echo":
                    reply = {"id": msg["id"], "result": msg["params"], "error": None}
                    conn.sendall(json.dumps(reply).encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def tls_manager(pki: Pki) -> Iterator[TlsManager]:
    far_end = TlsManager(pki.controller)
    try:
        yield far_end
    finally:
        far_end.close()


# --- pssl: the switch listens -----------------------------------------------------
def test_set_ssl_then_pssl_manager_serves_ovsdb_client(daemon: Daemon, pki: Pki) -> None:
    port = free_port()
    set_ssl(daemon, pki.switch)
    daemon.vsctl("set-manager", f"pssl:{port}:127.0.0.1")
    result = wait_for(lambda: list_dbs(port, pki.controller).returncode == 0
                      and list_dbs(port, pki.controller), what="list-dbs over ssl")
    assert result.stdout.split() == ["Open_vSwitch", "_Server"]
    assert list_dbs(port, pki.rogue).returncode != 0, "a client of another CA must be refused"

    wait_for(lambda: not manager(daemon)[0], what="the clients gone")
    assert manager(daemon)[1] == {"bound_port": str(port), "sec_since_connect": "0",
                                  "sec_since_disconnect": "0"}
    with monitoring_client(port, pki.controller):
        wait_for(lambda: manager(daemon)[0], what="Manager.is_connected")
    wait_for(lambda: not manager(daemon)[0], what="is_connected back to false")


def test_pssl_manager_before_set_ssl(daemon: Daemon, pki: Pki) -> None:
    """As ovsdb-server: the listener opens at once and refuses every
    connection until the SSL row names the files."""
    port = free_port()
    daemon.vsctl("set-manager", f"pssl:{port}:127.0.0.1")
    status = wait_for(lambda: manager(daemon)[1].get("bound_port") and manager(daemon)[1],
                      what="the listener")
    assert status == {"bound_port": str(port), "sec_since_connect": "0",
                      "sec_since_disconnect": "0"}
    refused = list_dbs(port, pki.controller)
    assert refused.returncode != 0 and "Open_vSwitch" not in refused.stdout

    set_ssl(daemon, pki.switch)
    result = list_dbs(port, pki.controller)
    assert result.returncode == 0, result.stderr
    assert "Open_vSwitch" in result.stdout.split()
    with monitoring_client(port, pki.controller):
        wait_for(lambda: manager(daemon)[0], what="Manager.is_connected")


def test_certificate_rotated_in_place_serves_new_connections(daemon: Daemon, pki: Pki,
                                                             tmp_path: Path) -> None:
    """set-ssl names the same files; new contents on disk take over."""
    names = {part: str(tmp_path / f"switch-{part}.pem") for part in ("key", "cert", "ca")}

    def install(pair: KeyPair) -> None:
        for part, src in (("key", pair.key), ("cert", pair.cert), ("ca", pair.ca)):
            shutil.copy(src, names[part] + ".tmp")
            Path(names[part] + ".tmp").replace(names[part])

    install(pki.switch)
    daemon.vsctl("set-ssl", names["key"], names["cert"], names["ca"])
    port = free_port()
    daemon.vsctl("set-manager", f"pssl:{port}:127.0.0.1")
    wait_for(lambda: list_dbs(port, pki.controller).returncode == 0, what="list-dbs")

    install(pki.rogue)  # a new CA and a certificate it signed
    assert list_dbs(port, pki.rogue).returncode == 0
    assert list_dbs(port, pki.controller).returncode != 0


# --- ssl: the switch connects out ---------------------------------------------------
def test_ssl_manager_before_set_ssl_connects_once_configured(
        daemon: Daemon, pki: Pki, tls_manager: TlsManager) -> None:
    daemon.vsctl("set-manager", f"ssl:127.0.0.1:{tls_manager.port}")
    status = wait_for(lambda: manager(daemon)[1].get("state") == "BACKOFF"
                      and manager(daemon), what="BACKOFF")
    assert status == (False, {"state": "BACKOFF"})
    assert tls_manager.peers == []

    set_ssl(daemon, pki.switch)
    # Retries back off up to 8 s, as ovsdb-server's do.
    connected, status = wait_for(lambda: manager(daemon)[0] and manager(daemon),
                                 timeout=15, what="Manager.is_connected")
    assert status["state"] == "ACTIVE"
    assert tls_manager.peers == ["switch"]
    # The status is refreshed every 2.5 s, not only on changes.
    wait_for(lambda: int(manager(daemon)[1].get("sec_since_connect", "0")) >= 2,
             timeout=8, what="sec_since_connect counting")
    assert manager(daemon)[0]
