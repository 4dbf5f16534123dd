"""A FLOW_MOD + BARRIER (what ovs-ofctl sends per flow) is answered inside
the read callback that brought it, with no task in between, and the reply
still follows everything before it, the datapath included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.types import Output
from ovsbpfd.ofproto.actions import ActOutput, InstApplyActions
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow.connection import SERVICE, OfConnection
from ovsbpfd.ofproto.openflow.dispatch import Dispatcher
from ovsbpfd.ofproto.openflow.roles import RoleArbiter
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod
from tests.ofproto.core.rig import Rig, empty_rig, host_mac
from tests.ofproto.openflow.of_stub_core import StubCore


class CapturingTransport:
    """Keeps what is written; ``on_write`` sees each write as it happens."""

    def __init__(self, on_write: Callable[[bytes], None] | None = None) -> None:
        self.written: list[bytes] = []
        self.on_write = on_write

    def write(self, data: bytes) -> None:
        if self.on_write is not None:
            self.on_write(data)
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass


def feed(conn: OfConnection, data: bytes) -> None:
    """Deliver ``data`` as one read would (BufferedProtocol)."""
    buf = conn.get_buffer(len(data))
    buf[:len(data)] = data
    conn.buffer_updated(len(data))


def forwarding_flow_mod(xid: int) -> bytes:
    fm = FlowMod(OFPFC_ADD, Match(in_port=1), (InstApplyActions((ActOutput(2),)),), priority=5)
    return m.encode_message(m.FlowModMessage(fm, xid=xid))


def decode_all(chunks: list[bytes]) -> list[m.OfpMessage]:
    data = b"".join(chunks)
    out = []
    while data:
        length = int.from_bytes(data[2:4], "big")
        out.append(m.decode_message(data[:length]))
        data = data[length:]
    return out


async def serving(core, transport: CapturingTransport) -> tuple[OfConnection, asyncio.Task]:
    """A negotiated channel to ``core`` whose input is now handled inline."""
    conns: list[OfConnection] = []
    conn = OfConnection(Dispatcher(core, RoleArbiter(), lambda: conns), SERVICE, "rtt")
    conn.connection_made(transport)  # type: ignore[arg-type]
    conns.append(conn)
    task = asyncio.get_running_loop().create_task(conn.run())
    await asyncio.sleep(0)
    feed(conn, m.encode_message(m.Hello()))
    await asyncio.sleep(0)
    assert conn.negotiated
    transport.written.clear()
    return conn, task


async def closed(conn: OfConnection, task: asyncio.Task) -> None:
    conn.close()
    await asyncio.wait_for(task, 5)


def test_barrier_and_echo_are_answered_within_the_read_callback() -> None:
    async def scenario() -> None:
        rig = Rig(2)
        transport = CapturingTransport()
        conn, task = await serving(rig.bridge, transport)
        try:
            tasks_before = len(asyncio.all_tasks())
            feed(conn, forwarding_flow_mod(1) + m.encode_message(m.BarrierRequest(xid=2))
                 + m.encode_message(m.EchoRequest(b"hi", xid=3)))
            # no await in between: the replies went out from buffer_updated itself
            assert decode_all(transport.written) == [m.BarrierReply(xid=2),
                                                     m.EchoReply(b"hi", xid=3)]
            assert len(asyncio.all_tasks()) == tasks_before
            assert len(rig.bridge.pipeline.rules()) == 2  # NORMAL and the new one
        finally:
            await closed(conn, task)
            rig.close()

    asyncio.run(scenario())


async def drop_flow_installed(rig):
    """Start the rig's backer and send one frame that no rule forwards yet:
    the megaflow record of the drop flow it installs."""
    await rig.backer.start()
    frame = pb.udp_frame(host_mac(1), host_mac(2), "192.168.0.1", "10.0.0.1", 4000, 53)
    rig.dpif.inject(rig.dp_port(1), frame)
    rig.settle()
    (record,) = rig.backer.revalidator.records.values()
    assert record.actions == ()  # table miss: a drop flow
    return record


def test_barrier_reply_is_written_after_the_datapath_flow_is_fixed() -> None:
    """A drop megaflow installed before the FLOW_MOD forwards by the time the
    BARRIER_REPLY is written."""
    async def scenario() -> None:
        with empty_rig(2) as rig:
            record = await drop_flow_installed(rig)
            seen_at_reply: list[tuple] = []

            def on_write(data: bytes) -> None:
                if data[1] == 21:  # OFPT_BARRIER_REPLY
                    flow = rig.dpif.flow_get(record.key, record.mask)
                    seen_at_reply.append(flow.actions if flow is not None else None)

            transport = CapturingTransport(on_write)
            conn, task = await serving(rig.bridge, transport)
            try:
                feed(conn, forwarding_flow_mod(1) + m.encode_message(m.BarrierRequest(xid=2)))
                assert seen_at_reply == [(Output(rig.dp_port(2)),)]
            finally:
                await closed(conn, task)
                await rig.backer.stop()

    asyncio.run(scenario())


def test_a_core_without_a_synchronous_barrier_is_still_awaited() -> None:
    """StubCore's barrier is a coroutine that sleeps: its reply waits for it,
    and requests behind it wait too."""
    async def scenario() -> None:
        core = StubCore()
        core.barrier_delay = 0.05
        transport = CapturingTransport()
        conn, task = await serving(core, transport)
        try:
            feed(conn, m.encode_message(m.BarrierRequest(xid=7))
                 + m.encode_message(m.EchoRequest(xid=8)))
            assert transport.written == []  # the barrier is suspended, the echo behind it
            for _ in range(100):
                if len(transport.written) == 2:
                    break
                await asyncio.sleep(0.01)
            assert decode_all(transport.written) == [m.BarrierReply(xid=7), m.EchoReply(xid=8)]
            assert core.barriers == 1
        finally:
            await closed(conn, task)

    asyncio.run(scenario())


def test_a_lone_flow_mod_fixes_the_datapath_within_its_read_callback() -> None:
    """No BARRIER: the megaflow the new rule affects is still replaced before
    the read callback returns, not on a later loop turn."""
    async def scenario() -> None:
        with empty_rig(2) as rig:
            record = await drop_flow_installed(rig)
            conn, task = await serving(rig.bridge, CapturingTransport())
            try:
                feed(conn, forwarding_flow_mod(1))
                flow = rig.dpif.flow_get(record.key, record.mask)
                assert flow is not None and flow.actions == (Output(rig.dp_port(2)),)
            finally:
                await closed(conn, task)
                await rig.backer.stop()

    asyncio.run(scenario())
