"""The <bridge>.snoop socket: which channel a snoop client watches, what it gets,
and that a client that stops reading costs the switch nothing (loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import struct
from collections.abc import AsyncIterator
from typing import Any

from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow import snoop
from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec
from tests.ofproto.openflow.of_client import RawClient, raw_client, running_manager
from tests.ofproto.openflow.of_stub_core import StubCore
from tests.ofproto.openflow.test_of_controller_settings import Controller, async_test, wait_for


def snoop_path(mgr) -> str:
    return mgr.snoop.path


async def snooped(client: RawClient, seconds: float = 0.5) -> list[m.OfpMessage]:
    """Every copy that reaches ``client`` within ``seconds``."""
    out = []
    try:
        while True:
            out.append(await client.recv(timeout=seconds))
    except TimeoutError:
        pass
    return out


@contextlib.asynccontextmanager
async def connected_manager() -> AsyncIterator[tuple[Any, Controller, str]]:
    """A connection manager with one controller, connected: (mgr, controller, target)."""
    controller = Controller()
    try:
        async with running_manager(StubCore()) as mgr:
            target = await controller.start()
            mgr.set_controllers([target])
            await wait_for(lambda: controller.clients and mgr.has_controllers_connected())
            yield mgr, controller, target
    finally:
        controller.close()


@async_test
async def test_socket_lives_with_the_bridge() -> None:
    async with running_manager(StubCore()) as mgr:
        path = snoop_path(mgr)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o750
    assert not os.path.exists(path)


@async_test
async def test_without_a_controller_the_client_is_closed() -> None:
    async with running_manager(StubCore()) as mgr:
        async with raw_client(snoop_path(mgr), hello=False) as client:
            assert await client.closed()


@async_test
async def test_copies_the_controller_channel_both_ways_and_not_service_channels() -> None:
    async with connected_manager() as (mgr, controller, target):
        async with raw_client(snoop_path(mgr)) as watcher:
            await asyncio.sleep(0.1)
            async with raw_client(mgr.mgmt_path) as service:
                await service.send(m.EchoRequest(xid=77))
                assert await service.recv() == m.EchoReply(xid=77)
            ctl = controller.clients[-1]
            await ctl.send(m.EchoRequest(b"hi", xid=5))
            assert await ctl.recv() == m.EchoReply(b"hi", xid=5)
            await ctl.send(m.FeaturesRequest(xid=6))
            features = await ctl.recv_raw()
            copies = await snooped(watcher)
            assert copies[:3] == [m.EchoRequest(b"hi", xid=5), m.EchoReply(b"hi", xid=5),
                                  m.FeaturesRequest(xid=6)]
            assert m.encode_message(copies[3]) == features
            assert len(copies) == 4


@async_test
async def test_an_active_controllers_snoopers_stay_across_reconnections() -> None:
    async with connected_manager() as (mgr, controller, target):
        async with raw_client(snoop_path(mgr)) as watcher:
            await asyncio.sleep(0.1)
            controller.clients[-1].close()  # the switch reconnects after its backoff
            await wait_for(lambda: len(controller.clients) == 2
                           and mgr.has_controllers_connected())
            again = controller.clients[-1]
            await again.send(m.EchoRequest(xid=4))
            assert await again.recv() == m.EchoReply(xid=4)
            assert await snooped(watcher) == [m.EchoRequest(xid=4), m.EchoReply(xid=4)]
        mgr.set_controllers([])  # the target is gone: so are its snoopers
        async with raw_client(snoop_path(mgr), hello=False) as late:
            assert await late.closed()


@async_test
async def test_the_master_channel_is_watched() -> None:
    first, second = Controller(), Controller()
    try:
        async with running_manager(StubCore()) as mgr:
            mgr.set_controllers([await first.start(), await second.start()])
            await wait_for(lambda: first.clients and second.clients
                           and len(mgr.all_connections()) == 2)
            master = second.clients[-1]
            await master.send(m.RoleRequest(c.OFPCR_ROLE_MASTER, 1, xid=9))
            assert isinstance(await master.recv(), m.RoleReply)
            async with raw_client(snoop_path(mgr)) as watcher:
                await asyncio.sleep(0.1)
                await first.clients[-1].send(m.EchoRequest(xid=1))
                await master.send(m.EchoRequest(xid=2))
                assert await first.clients[-1].recv() == m.EchoReply(xid=1)
                assert await master.recv() == m.EchoReply(xid=2)
                assert await snooped(watcher) == [m.EchoRequest(xid=2), m.EchoReply(xid=2)]
    finally:
        first.close()
        second.close()


@async_test
async def test_a_passive_controllers_connection_takes_its_snoopers_along() -> None:
    async with running_manager(StubCore()) as mgr:
        listen = os.path.join(mgr.rundir, "ctl.listen")
        mgr.set_controllers([ControllerSpec.from_db(f"punix:{listen}", type_="primary")])
        await wait_for(lambda: os.path.exists(listen))
        async with raw_client(listen) as ctl:
            await wait_for(lambda: mgr.all_connections())
            async with raw_client(snoop_path(mgr)) as watcher:
                await asyncio.sleep(0.1)
                await ctl.send(m.BarrierRequest(xid=3))
                assert await ctl.recv() == m.BarrierReply(xid=3)
                assert await snooped(watcher) == [m.BarrierRequest(xid=3),
                                                  m.BarrierReply(xid=3)]
                ctl.close()
                assert await watcher.closed()


@async_test
async def test_a_client_that_stops_reading_never_slows_the_switch() -> None:
    async with connected_manager() as (mgr, controller, target):
        reader, writer = await asyncio.open_unix_connection(snoop_path(mgr))
        writer.write(m.encode_message(m.Hello()))  # ... and never reads again
        await writer.drain()
        tap = mgr._links[target].tap
        await wait_for(lambda: tap.clients and tap.clients[0].negotiated)
        ctl = controller.clients[-1]
        payload = bytes(60000)
        rounds = 200  # 24 MB of copies: far beyond the buffer limit
        for xid in range(rounds):
            await ctl.send(m.EchoRequest(payload, xid=xid))
        for xid in range(rounds):
            assert await ctl.recv(timeout=10) == m.EchoReply(payload, xid=xid)
        client = tap.clients[0]
        assert client.dropped > 0 and client.copied > 0
        assert client._transport.get_write_buffer_size() <= snoop.BUFFER_LIMIT
        writer.close()


@async_test
async def test_at_most_eight_clients_per_channel() -> None:
    async with connected_manager() as (mgr, controller, target):
        streams = [await asyncio.open_unix_connection(snoop_path(mgr))
                   for _ in range(snoop.MAX_CLIENTS + 1)]
        hellos = [await RawClient(r, w).recv_raw(timeout=3)
                  for r, w in streams[:snoop.MAX_CLIENTS]]
        assert all(struct.unpack_from("!B", h, 1)[0] == c.OFPT_HELLO for h in hellos)
        assert await RawClient(*streams[-1]).closed()
        for _, writer in streams:
            writer.close()
