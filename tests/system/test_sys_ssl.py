"""SSL OpenFlow through the real daemon: ``ovs-vsctl set-ssl`` certificates,
an ``ssl:`` controller verified against the CA, a ``pssl:`` listener that
``ovs-ofctl -p/-c/-C`` uses, and Controller rows written as ovs-vswitchd
writes them.  Everything stays on loopback; certificates are made here."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow.tls import SslSettings, make_context
from tests.ofproto.openflow.of_pki import KeyPair, Pki, make_pki
from tests.system.daemon_proc import Daemon, free_port
from tests.system.netns import unique_name

pytestmark = pytest.mark.system

DPID = "00000000000000cd"


class TlsController:
    """A minimal TLS OpenFlow controller: HELLO, then FEATURES_REQUEST per switch."""

    def __init__(self, pair: KeyPair) -> None:
        self.port = free_port()
        ctx = make_context(SslSettings(pair.key, pair.cert, pair.ca), server_side=True)
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        self.tls = ctx
        self.datapath_ids: list[int] = []
        self.handshake_failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def target(self) -> str:
        return f"ssl:127.0.0.1:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                continue
            try:
                with self.tls.wrap_socket(raw, server_side=True) as conn:
                    conn.settimeout(5)
                    self._talk(conn)
                    while not self._stop.is_set():  # stay connected, answer echoes
                        self._answer_echo(conn)
            except ssl.SSLError:
                self.handshake_failures += 1
            except OSError:
                pass

    def _talk(self, conn: ssl.SSLSocket) -> None:
        conn.sendall(m.encode_message(m.Hello()))
        assert isinstance(m.decode_message(_recv_msg(conn)), m.Hello)
        conn.sendall(m.encode_message(m.FeaturesRequest(xid=11)))
        while True:
            reply = m.decode_message(_recv_msg(conn))
            if isinstance(reply, m.FeaturesReply):
                self.datapath_ids.append(reply.datapath_id)
                return

    def _answer_echo(self, conn: ssl.SSLSocket) -> None:
        conn.settimeout(0.5)
        try:
            msg = m.decode_message(_recv_msg(conn))
        except TimeoutError:
            return
        if isinstance(msg, m.EchoRequest):
            conn.sendall(m.encode_message(m.EchoReply(msg.data, xid=msg.xid)))

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(timeout=10)


def _recv_msg(conn: ssl.SSLSocket) -> bytes:
    data = b""
    while len(data) < 8 or len(data) < struct.unpack_from("!H", data, 2)[0]:
        chunk = conn.recv(65536 if len(data) < 8 else
                          struct.unpack_from("!H", data, 2)[0] - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("syspki"))


@pytest.fixture
def switch(tmp_path: Path, pki: Pki) -> Iterator[tuple[Daemon, str]]:
    daemon = Daemon(tmp_path / "ovsbpfd", datapath="dummy")
    bridge = unique_name("obsbr", 0)
    try:
        daemon.start()
        daemon.vsctl("add-br", bridge, "--", "set", "Bridge", bridge,
                     f"other-config:datapath-id={DPID}")
        daemon.vsctl("set-ssl", pki.switch.key, pki.switch.cert, pki.switch.ca)
        yield daemon, bridge
    finally:
        daemon.stop(cleanup=True)


def controller_column(daemon: Daemon, column: str) -> str:
    return daemon.vsctl("--bare", f"--columns={column}", "list", "Controller").stdout.strip()


def wait_until(condition, timeout: float, what: str, daemon: Daemon) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}\n{daemon.log_text()}"
        time.sleep(0.2)


def test_ssl_controller_with_certificates_from_the_ssl_row(switch, pki: Pki) -> None:
    daemon, bridge = switch
    good = TlsController(pki.controller)
    try:
        daemon.vsctl("set-controller", bridge, good.target)
        wait_until(lambda: good.datapath_ids, 20, "no FEATURES_REPLY over TLS", daemon)
        assert good.datapath_ids[0] == int(DPID, 16)
        wait_until(lambda: controller_column(daemon, "is_connected") == "true", 15,
                   "Controller.is_connected never became true", daemon)
        assert controller_column(daemon, "role") == "other"
        status = controller_column(daemon, "status")
        assert "state=ACTIVE" in status and "sec_since_connect=" in status, status
    finally:
        good.stop()


def test_ssl_controller_with_another_ca_is_refused(switch, pki: Pki) -> None:
    daemon, bridge = switch
    rogue = TlsController(pki.rogue)
    try:
        daemon.vsctl("set-controller", bridge, rogue.target)
        wait_until(lambda: "last_error=Protocol error" in controller_column(
            daemon, "status"), 10, "no Protocol error in Controller.status", daemon)
        assert controller_column(daemon, "is_connected") == "false"
        assert controller_column(daemon, "role") == ""
        assert rogue.datapath_ids == []
    finally:
        rogue.stop()


def test_pssl_listener_serves_ovs_ofctl_with_certificates(switch, pki: Pki) -> None:
    daemon, bridge = switch
    port = free_port()
    daemon.vsctl("set-controller", bridge, f"pssl:{port}:127.0.0.1")
    remote = f"ssl:127.0.0.1:{port}"
    ctl = pki.controller

    def show(pair: KeyPair):
        return daemon.ofctl("-p", pair.key, "-c", pair.cert, "-C", pair.ca, "show", remote,
                            check=False, timeout=20)

    wait_until(lambda: show(ctl).returncode == 0, 20, "ovs-ofctl over pssl failed", daemon)
    out = show(ctl).stdout
    assert f"dpid:{DPID}" in out and f"LOCAL({bridge})" in out
    daemon.ofctl("-p", ctl.key, "-c", ctl.cert, "-C", ctl.ca, "add-flow", remote,
                 "priority=5,actions=drop")
    assert "priority=5 actions=drop" in daemon.ofctl("dump-flows", bridge).stdout
    refused = show(pki.rogue)  # a client certificate from another CA
    assert refused.returncode != 0
    # A listening target's row says nothing, as ovs-vswitchd leaves it.
    assert controller_column(daemon, "is_connected") == "false"
    assert controller_column(daemon, "status") == ""  # an empty map
