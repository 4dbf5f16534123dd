"""ssl: and pssl: OpenFlow targets: CA-verified in both directions (loopback)."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from pathlib import Path

import pytest

from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow.tls import SslSettings, TlsConfigError, make_context
from tests.ofproto.openflow.of_client import RawClient, running_manager
from tests.ofproto.openflow.of_pki import KeyPair, Pki, make_pki
from tests.ofproto.openflow.of_stub_core import StubCore


def async_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))
    return wrapper


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def settings(pair: KeyPair) -> SslSettings:
    return SslSettings(pair.key, pair.cert, pair.ca)


def peer_context(pair: KeyPair, server_side: bool) -> ssl.SSLContext:
    """A controller's or ovs-ofctl's TLS context: its certificate, the CA it trusts."""
    return make_context(settings(pair), server_side)


async def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def test_incomplete_settings_are_refused_with_a_reason(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(TlsConfigError, match="not configured"):
        make_context(None, server_side=False)
    with pytest.raises(TlsConfigError, match="private key must be configured"):
        make_context(SslSettings("", pki.switch.cert, pki.switch.ca), server_side=False)
    with pytest.raises(TlsConfigError, match="No such file"):
        make_context(SslSettings(pki.switch.key, pki.switch.cert, str(tmp_path / "none")),
                     server_side=True)
    with pytest.raises(TlsConfigError, match="cannot load"):  # key of another cert
        make_context(SslSettings(pki.controller.key, pki.switch.cert, pki.switch.ca), True)


async def _controller(pair: KeyPair, accepted: list) -> asyncio.AbstractServer:
    async def serve(reader, writer):
        client = RawClient(reader, writer)
        assert isinstance(await client.recv(), m.Hello)
        await client.send(m.Hello())
        await client.send(m.FeaturesRequest(xid=7))
        accepted.append(await client.recv())

    return await asyncio.start_server(serve, "127.0.0.1", 0,
                                      ssl=peer_context(pair, server_side=True))


@async_test
async def test_ssl_controller_is_verified_against_the_ca(pki: Pki) -> None:
    good: list = []
    rogue: list = []
    server = await _controller(pki.controller, good)
    bad_server = await _controller(pki.rogue, rogue)
    target = f"ssl:127.0.0.1:{server.sockets[0].getsockname()[1]}"
    bad_target = f"ssl:127.0.0.1:{bad_server.sockets[0].getsockname()[1]}"
    try:
        async with running_manager(StubCore()) as mgr:
            mgr.set_controllers([target, bad_target])  # no SSL settings yet
            await wait_for(lambda: mgr.controller_status()[target]["status"]["state"]
                           == "BACKOFF")
            assert mgr.controller_status()[target]["status"]["last_error"] == "Protocol error"
            mgr.set_ssl(settings(pki.switch))
            await wait_for(lambda: good, timeout=15)
            assert isinstance(good[0], m.FeaturesReply) and good[0].xid == 7
            await wait_for(lambda: mgr.controller_status()[target]["is_connected"])
            status = mgr.controller_status()
            assert status[target]["status"]["state"] == "ACTIVE"
            assert status[target]["role"] == "other"
            assert not status[bad_target]["is_connected"] and not rogue
            assert status[bad_target]["status"]["last_error"] == "Protocol error"
    finally:
        server.close()
        bad_server.close()


@async_test
async def test_pssl_listener_requires_a_client_certificate_from_the_ca(pki: Pki) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = f"pssl:{port}:127.0.0.1"
    async with running_manager(StubCore()) as mgr:
        mgr.set_controllers([target])
        await wait_for(lambda: mgr._links[target].state == "VOID")  # no SSL settings
        mgr.set_ssl(settings(pki.switch))
        await wait_for(lambda: mgr._links[target].state == "LISTENING")
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=peer_context(pki.controller, server_side=False),
            server_hostname="")
        client = RawClient(reader, writer)
        try:
            assert isinstance(await client.recv(), m.Hello)
            await client.send(m.Hello())
            await client.send(m.EchoRequest(b"tls", xid=3))
            assert await client.recv() == m.EchoReply(b"tls", xid=3)
        finally:
            client.close()
        for pair in (pki.rogue, None):  # another CA's certificate, or none at all
            ctx = peer_context(pair, False) if pair else ssl.create_default_context()
            if pair is None:
                ctx.load_verify_locations(pki.switch.ca)
                ctx.check_hostname = False
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="")
                # TLS 1.3 reports a refused client certificate on the first read.
                data = await asyncio.wait_for(reader.read(100), 5)
                writer.close()
                assert data == b""
            except (ssl.SSLError, ConnectionError):
                pass
        assert mgr.all_connections() == []
