"""Requests handled in the read callback keep the channel's guarantees: input
that arrives while a handler is suspended waits for it, errors of suspended
handlers quote their request, and a peer that keeps talking is not probed."""

from __future__ import annotations

import asyncio
import functools
import socket
import time

from ovsbpfd.ofproto import ofp_errors as e
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod, OfpError
from tests.ofproto.openflow.of_client import RawClient, raw_client, running_manager
from tests.ofproto.openflow.of_stub_core import StubCore


def async_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))
    return wrapper


def flow_mod(xid: int) -> bytes:
    return m.encode_message(m.FlowModMessage(FlowMod(OFPFC_ADD, Match(in_port=xid)), xid=xid))


class RecordingCore(StubCore):
    """A stub whose slow barrier notes how many rules existed when it ended."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier_delay = 0.3
        self.rules_at_barrier: list[int] = []
        self.fail_barrier = False

    async def barrier(self) -> None:
        await asyncio.sleep(self.barrier_delay)
        self.rules_at_barrier.append(len(self.rules))
        if self.fail_barrier:
            raise OfpError(e.OFPET_BAD_REQUEST, e.OFPBRC_EPERM, "refused after a wait")


@async_test
async def test_input_arriving_during_a_suspended_handler_waits_for_it() -> None:
    core = RecordingCore()
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as client:
        await client.send(flow_mod(1) + m.encode_message(m.BarrierRequest(xid=10)))
        await asyncio.sleep(0.1)  # the barrier is now suspended
        await client.send(flow_mod(2) + m.encode_message(m.EchoRequest(xid=11)))
        await asyncio.sleep(0.05)
        assert len(core.rules) == 1  # the FLOW_MOD after the barrier still waits
        assert await client.recv() == m.BarrierReply(xid=10)
        assert await client.recv() == m.EchoReply(xid=11)
        assert core.rules_at_barrier == [1] and len(core.rules) == 2
        # ... and afterwards requests are handled at once again
        await client.send(flow_mod(3) + m.encode_message(m.EchoRequest(xid=12)))
        assert await client.recv() == m.EchoReply(xid=12)
        assert len(core.rules) == 3


@async_test
async def test_a_suspended_handler_that_fails_quotes_its_request() -> None:
    core = RecordingCore()
    core.barrier_delay = 0.05
    core.fail_barrier = True
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as client:
        barrier = m.encode_message(m.BarrierRequest(xid=20))
        await client.send(barrier + m.encode_message(m.EchoRequest(xid=21)))
        reply = await client.recv()
        assert isinstance(reply, m.Error)
        assert (reply.type, reply.code, reply.xid) == (e.OFPET_BAD_REQUEST, e.OFPBRC_EPERM, 20)
        assert reply.data == barrier
        assert await client.recv() == m.EchoReply(xid=21)


@async_test
async def test_many_pipelined_requests_are_all_answered_in_order() -> None:
    core = StubCore()
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as client:
        batch = b"".join(m.encode_message(m.EchoRequest(bytes([i % 256]), xid=i))
                         for i in range(3000))
        await client.send(batch)
        for i in range(3000):
            assert await client.recv() == m.EchoReply(bytes([i % 256]), xid=i)


@async_test
async def test_a_talking_peer_is_not_probed_and_a_silent_one_is() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = ControllerSpec(f"ptcp:{port}:127.0.0.1", probe_interval=0.3)
    async with running_manager(StubCore()) as mgr:
        mgr.set_controllers([spec])
        deadline = time.monotonic() + 5
        client = None
        while client is None and time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                client = RawClient(reader, writer)
            except OSError:
                await asyncio.sleep(0.05)
        assert client is not None
        try:
            assert isinstance(await client.recv(), m.Hello)
            await client.send(m.Hello())
            for i in range(10):  # 1 s of requests, 0.1 s apart: never quiet for 0.3 s
                await client.send(m.EchoRequest(xid=100 + i))
                assert await client.recv() == m.EchoReply(xid=100 + i)
                last_reply = time.monotonic()
                await asyncio.sleep(0.1)
            probe_msg = await client.recv(timeout=2)  # now silent: probed
            assert isinstance(probe_msg, m.EchoRequest)
            assert 0.25 <= time.monotonic() - last_reply < 1.0
            assert await client.closed(timeout=2)
        finally:
            client.close()


class _Transport(asyncio.Transport):
    """Collects what the connection writes."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closing = False
        self.paused = 0

    def write(self, data) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        pass


def _replies(data: bytes) -> list[m.OfpMessage]:
    out, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        out.append(m.decode_message(bytes(data[pos:pos + length])))
        pos += length
    return out


@async_test
async def test_input_split_anywhere_and_read_into_the_buffer_is_framed_in_order() -> None:
    import random

    from ovsbpfd.ofproto.openflow.connection import OfConnection

    rng = random.Random(5)
    payloads = [rng.randbytes(rng.choice([0, 1, 100, 3000, 60000])) for _ in range(400)]
    stream = m.encode_message(m.Hello()) + b"".join(
        m.encode_message(m.EchoRequest(data, xid=i)) for i, data in enumerate(payloads))
    core = RecordingCore()
    async with running_manager(core) as mgr:
        for direct in (False, True):
            conn = OfConnection(mgr.dispatcher, "service", "test", None)
            transport = _Transport()
            conn.connection_made(transport)
            task = asyncio.ensure_future(conn.run())
            await asyncio.sleep(0)
            pos = 0
            while pos < len(stream):
                size = rng.choice([1, 7, 8, 9, 500, 70000, 300000])
                chunk = stream[pos:pos + size]
                if direct:
                    conn.data_received(chunk)
                else:  # as asyncio reads: into the buffer the protocol offers
                    view = conn.get_buffer(-1)
                    chunk = chunk[:len(view)]
                    view[:len(chunk)] = chunk
                    del view
                    conn.buffer_updated(len(chunk))
                pos += len(chunk)
                if rng.random() < 0.3:
                    await asyncio.sleep(0)
            for _ in range(50):
                await asyncio.sleep(0)
            replies = _replies(transport.out)
            assert isinstance(replies[0], m.Hello)
            echoes = replies[1:]
            assert [r.xid for r in echoes] == list(range(400))
            assert all(isinstance(r, m.EchoReply) for r in echoes)
            assert [r.data for r in echoes] == payloads
            conn.connection_lost(None)
            await task
