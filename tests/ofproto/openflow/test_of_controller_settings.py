"""Controller row settings and Bridge.protocols on live connections (loopback)."""

from __future__ import annotations

import asyncio
import functools
import struct
import time

from ovsbpfd.ofproto import ofp_errors as e
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec
from ovsbpfd.ofproto.types import OFPR_ACTION, PacketIn
from tests.ofproto.openflow.of_client import RawClient, raw_client, running_manager
from tests.ofproto.openflow.of_stub_core import StubCore


def async_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))
    return wrapper


async def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


class Controller:
    """A loopback controller that accepts the switch and keeps its messages."""

    def __init__(self) -> None:
        self.clients: list[RawClient] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        async def serve(reader, writer):
            client = RawClient(reader, writer)
            assert isinstance(await client.recv(), m.Hello)
            await client.send(m.Hello())
            self.clients.append(client)

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return f"tcp:127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def received(self, seconds: float) -> list[m.OfpMessage]:
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(await self.clients[-1].recv(timeout=left))
            except TimeoutError:
                break
        return out

    def close(self) -> None:
        for client in self.clients:
            client.close()
        if self.server is not None:
            self.server.close()


@async_test
async def test_protocol_change_drops_old_connections_and_is_honoured() -> None:
    async with running_manager(StubCore()) as mgr:
        async with raw_client(mgr.mgmt_path) as old:
            mgr.set_protocols([])  # the same set: nothing happens
            await old.send(m.EchoRequest(xid=1))
            assert await old.recv() == m.EchoReply(xid=1)
            mgr.set_protocols(["OpenFlow10"])
            assert await old.closed()  # made under the old set: dropped, as in OVS
        async with raw_client(mgr.mgmt_path, hello=False) as client:
            assert (await client.recv()).bitmap == 1 << 1  # as OVS: the versions configured
            await client.send(m.Hello())
            raw = await client.recv_raw()
            assert struct.unpack_from("!HH", raw, 8) == (e.OFPET_HELLO_FAILED,
                                                         e.OFPHFC_INCOMPATIBLE)
            assert b"We support version 0x01, you support version 0x04" in raw
        async with raw_client(mgr.mgmt_path, hello=False) as client:
            await client.recv()
            await client.send(m.Hello(1 << 1))  # agreeing on 1.0: still nothing to speak
            raw = await client.recv_raw()
            assert struct.unpack_from("!HH", raw, 8) == (e.OFPET_HELLO_FAILED,
                                                         e.OFPHFC_INCOMPATIBLE)
            assert b"protocols exclude it" in raw
        mgr.set_protocols([])  # the default includes OpenFlow 1.3
        async with raw_client(mgr.mgmt_path) as client:
            await client.send(m.EchoRequest(xid=2))
            assert await client.recv() == m.EchoReply(xid=2)


@async_test
async def test_controller_reconnects_when_protocols_change() -> None:
    ctl = Controller()
    target = await ctl.start()
    try:
        async with running_manager(StubCore()) as mgr:
            mgr.set_controllers([target])
            await wait_for(lambda: len(ctl.clients) == 1 and mgr.has_controllers_connected())
            mgr.set_protocols(["OpenFlow13"])
            await wait_for(lambda: len(ctl.clients) == 2)
            assert await ctl.clients[0].closed()
    finally:
        ctl.close()


@async_test
async def test_async_messages_disabled_and_packet_ins_rate_limited() -> None:
    core = StubCore()
    quiet, limited = Controller(), Controller()
    try:
        quiet_spec = ControllerSpec.from_db(await quiet.start(), enable_async_messages=False)
        limited_spec = ControllerSpec.from_db(await limited.start(), rate_limit=100,
                                              burst_limit=25)
        async with running_manager(core) as mgr:
            mgr.set_controllers([quiet_spec, limited_spec])
            await wait_for(lambda: quiet.clients and limited.clients
                           and len(mgr.all_connections()) == 2)
            for _ in range(60):
                core.listeners[0].packet_in(
                    PacketIn(OFPR_ACTION, 0, 0, Match(in_port=1), b"\x01" * 14, 14))
            got = [msg for msg in await limited.received(0.5)
                   if isinstance(msg, m.PacketInMessage)]
            # the burst at once, as many again queued and sent at the rate, the rest dropped
            assert len(got) == 50
            assert await quiet.received(0.3) == []
            # SET_ASYNC turns async messages on for the quiet controller
            await quiet.clients[0].send(m.SetAsync((0b11, 0), (0b111, 0b111), (0b1111, 0)))
            await quiet.clients[0].send(m.BarrierRequest(xid=9))
            assert await quiet.clients[0].recv() == m.BarrierReply(xid=9)
            core.listeners[0].packet_in(
                PacketIn(OFPR_ACTION, 0, 0, Match(in_port=1), b"\x01" * 14, 14))
            assert isinstance(await quiet.clients[0].recv(), m.PacketInMessage)
            await limited.received(0.3)  # that one went to the limited controller too
            # The row's setting now changes nothing for it; for others it applies at once.
            mgr.set_controllers([quiet_spec, ControllerSpec.from_db(
                limited_spec.target, enable_async_messages=False)])
            core.listeners[0].packet_in(
                PacketIn(OFPR_ACTION, 0, 0, Match(in_port=1), b"\x01" * 14, 14))
            assert isinstance(await quiet.clients[0].recv(), m.PacketInMessage)
            assert await limited.received(0.3) == []
    finally:
        quiet.close()
        limited.close()


@async_test
async def test_settings_change_in_place_and_status_reports_connect_times() -> None:
    ctl = Controller()
    target = await ctl.start()
    changes: list[int] = []
    try:
        async with running_manager(StubCore()) as mgr:
            mgr.set_status_listener(lambda: changes.append(1))
            mgr.set_controllers([target])
            await wait_for(mgr.has_controllers_connected)
            assert changes  # the vswitch is told, to write the row soon
            status = mgr.controller_db_status()[target]
            assert status["status"]["sec_since_connect"] == "0"
            assert "sec_since_disconnect" not in status["status"]
            mgr.set_controllers([ControllerSpec.from_db(target, inactivity_probe_ms=0)])
            (conn,) = mgr.all_connections()
            assert conn.probe_interval is None and len(ctl.clients) == 1  # no reconnect
            ctl.clients[0].close()
            await wait_for(lambda: not mgr.has_controllers_connected())
            status = mgr.controller_db_status()[target]["status"]
            assert status["last_error"] == "End of file"
            assert status["sec_since_disconnect"] == "0"
    finally:
        ctl.close()
