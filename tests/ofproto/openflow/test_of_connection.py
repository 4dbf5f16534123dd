"""The OpenFlow channel over a real unix socket: negotiation, errors, order,
roles, async fan-out and controller targets (loopback only)."""

from __future__ import annotations

import asyncio
import functools
import socket
import struct
import time

from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto import ofp_errors as e
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow import multipart as mp
from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec
from ovsbpfd.ofproto.openflow.oxm import encode_oxm
from ovsbpfd.ofproto.types import (
    OFPFC_ADD,
    OFPPR_ADD,
    OFPR_ACTION,
    OFPR_NO_MATCH,
    OFPRR_DELETE,
    FlowMod,
    FlowRemoved,
    OfPort,
    PacketIn,
)
from tests.ofproto.openflow.of_client import RawClient, raw_client, running_manager
from tests.ofproto.openflow.of_stub_core import StubCore
from tests.ofproto.openflow.test_of_codec import flow_mod_bytes


def async_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))
    return wrapper


async def expect_error(client: RawClient, type_: int, code: int, sent: bytes) -> m.Error:
    reply = await client.recv()
    assert isinstance(reply, m.Error), reply
    assert (reply.type, reply.code) == (type_, code), e.error_name(reply.type, reply.code)
    assert reply.xid == struct.unpack_from("!I", sent, 4)[0]
    assert reply.data == sent  # the whole request, as ovs-vswitchd quotes it
    return reply


async def still_alive(client: RawClient) -> None:
    await client.send(m.EchoRequest(b"alive", xid=0x55))
    reply = await client.recv()
    assert reply == m.EchoReply(b"alive", xid=0x55)


# ---------------------------------------------------------------- negotiation
@async_test
async def test_hello_negotiates_1_3_and_echo_works() -> None:
    async with running_manager(StubCore()) as mgr, raw_client(mgr.mgmt_path) as client:
        await still_alive(client)
        await client.send(m.FeaturesRequest(xid=3))
        reply = await client.recv()
        assert isinstance(reply, m.FeaturesReply) and reply.xid == 3
        assert reply.datapath_id == 0x0000AABBCCDDEEFF and reply.n_tables == 254


@async_test
async def test_hello_without_bitmap_from_newer_version_negotiates_1_3() -> None:
    async with running_manager(StubCore()) as mgr, \
            raw_client(mgr.mgmt_path, hello=False) as client:
        assert isinstance(await client.recv(), m.Hello)
        await client.send(struct.pack("!BBHI", 6, c.OFPT_HELLO, 8, 1))
        await still_alive(client)


@async_test
async def test_peer_without_1_3_gets_hello_failed_and_is_closed() -> None:
    async with running_manager(StubCore()) as mgr:
        for hello in (b"garbage before hello\n",
                      m.encode_message(m.Hello(1 << 1 | 1 << 5)),  # bitmap: 1.0 and 1.4
                      struct.pack("!BBHI", 1, c.OFPT_HELLO, 8, 7)):   # plain OF1.0
            async with raw_client(mgr.mgmt_path, hello=False) as client:
                assert isinstance(await client.recv(), m.Hello)
                await client.send(hello)
                raw = await client.recv_raw()
                assert raw[1] == c.OFPT_ERROR
                err_type, code = struct.unpack_from("!HH", raw, 8)
                assert (err_type, code) == (e.OFPET_HELLO_FAILED, e.OFPHFC_INCOMPATIBLE)
                assert await client.closed()


# ---------------------------------------------------------------- bad input
@async_test
async def test_garbage_line_gets_bad_version_and_connection_continues() -> None:
    core = StubCore()
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as client:
        garbage = b"this is not openflow at all\n"
        await client.send(garbage)
        await expect_error(client, e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_VERSION, garbage)
        await still_alive(client)
        await client.send(b"hi\n")  # shorter than a header, still answered at once
        reply = await client.recv()
        assert isinstance(reply, m.Error) and reply.data == b"hi\n"
        assert (reply.type, reply.code) == (e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_VERSION)
        await still_alive(client)


@async_test
async def test_bad_messages_get_spec_errors_and_connection_continues() -> None:
    core = StubCore()
    cases = [
        (struct.pack("!BBHI", 1, c.OFPT_FEATURES_REQUEST, 8, 11),
         e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_VERSION),
        (struct.pack("!BBHI", 4, 77, 12, 12) + b"abcd", e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_TYPE),
        (struct.pack("!BBHI", 4, c.OFPT_SET_CONFIG, 10, 13) + b"ab",
         e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_LEN),
        (m.encode_message(m.Experimenter(0x2320, 1, xid=14)),
         e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_EXPERIMENTER),
        (flow_mod_bytes(encode_oxm("tcp_dst", 80)), e.OFPET_BAD_MATCH, e.OFPBMC_BAD_PREREQ),
        (flow_mod_bytes(encode_oxm("in_port", 1) * 2), e.OFPET_BAD_MATCH, e.OFPBMC_DUP_FIELD),
        (m.encode_message(m.MultipartRequest(99, xid=15)),
         e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_MULTIPART),
        (m.encode_message(m.FeaturesReply(xid=16)), e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_TYPE),
        (m.encode_message(m.SetConfig(7, 128, xid=17)),
         e.OFPET_SWITCH_CONFIG_FAILED, e.OFPSCFC_BAD_FLAGS),
        (m.encode_message(m.PacketOut(buffer_id=5, xid=18)),
         e.OFPET_BAD_REQUEST, e.OFPBRC_BUFFER_UNKNOWN),
        (m.encode_message(m.RoleRequest(9, xid=19)),
         e.OFPET_ROLE_REQUEST_FAILED, e.OFPRRFC_BAD_ROLE),
        (m.encode_message(m.TableMod(254, xid=20)),
         e.OFPET_TABLE_MOD_FAILED, e.OFPTMFC_BAD_TABLE),
        (m.encode_message(m.MultipartRequest(c.OFPMP_PORT_STATS,
                                             body=mp.encode_port_stats_request(0x10000),
                                             xid=21)),
         e.OFPET_BAD_ACTION, e.OFPBAC_BAD_OUT_PORT),  # beyond OVS's 16-bit port numbers
        (m.encode_message(m.QueueGetConfigRequest(99, xid=22)),
         e.OFPET_QUEUE_OP_FAILED, e.OFPQOFC_BAD_PORT),
        (m.encode_message(m.GroupModMessage(xid=23)),
         e.OFPET_GROUP_MOD_FAILED, e.OFPGMFC_OUT_OF_GROUPS),
    ]
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as client:
        for sent, type_, code in cases:
            await client.send(sent)
            await expect_error(client, type_, code, sent)
        await still_alive(client)
    assert core.rules == [] and core.packet_outs == []


@async_test
async def test_length_below_header_loses_framing_and_closes() -> None:
    async with running_manager(StubCore()) as mgr:
        async with raw_client(mgr.mgmt_path) as client:
            sent = struct.pack("!BBHI", 4, c.OFPT_ECHO_REQUEST, 4, 21)
            await client.send(sent)
            await expect_error(client, e.OFPET_BAD_REQUEST, e.OFPBRC_BAD_LEN, sent)
            assert await client.closed()
        async with raw_client(mgr.mgmt_path) as client:  # the switch still serves
            await still_alive(client)


@async_test
async def test_truncated_message_waits_for_the_rest() -> None:
    async with running_manager(StubCore()) as mgr, raw_client(mgr.mgmt_path) as client:
        whole = m.encode_message(m.EchoRequest(b"0123456789", xid=9))
        await client.send(whole[:10])
        await asyncio.sleep(0.1)
        await client.send(whole[10:])
        assert await client.recv() == m.EchoReply(b"0123456789", xid=9)


# ---------------------------------------------------------------- ordering
@async_test
async def test_barrier_reply_follows_all_earlier_work() -> None:
    core = StubCore()
    core.barrier_delay = 0.2
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as client:
        batch = b"".join(m.encode_message(m.FlowModMessage(
            FlowMod(OFPFC_ADD, Match(in_port=i)), xid=i)) for i in range(1, 200))
        await client.send(batch + m.encode_message(m.BarrierRequest(xid=500))
                          + m.encode_message(m.EchoRequest(xid=501)))
        started = time.monotonic()
        reply = await client.recv()
        assert reply == m.BarrierReply(xid=500)
        assert time.monotonic() - started >= 0.15
        assert core.barriers == 1 and len(core.rules) == 199
        assert await client.recv() == m.EchoReply(xid=501)


@async_test
async def test_large_flow_dump_is_split_with_reply_more() -> None:
    core = StubCore()
    for i in range(3000):
        core.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1, eth_type=0x0800, ipv4_src=i),
                              (a.InstApplyActions((a.ActOutput(2),)),), priority=i))
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as client:
        await client.send(m.MultipartRequest(c.OFPMP_FLOW,
                                             body=mp.encode_flow_stats_request(
                                                 mp.FlowStatsRequest()), xid=8))
        total, flags = 0, c.OFPMPF_REPLY_MORE
        n_replies = 0
        while flags & c.OFPMPF_REPLY_MORE:
            raw = await client.recv_raw()
            assert len(raw) <= 0xFFFF
            reply = m.decode_message(raw)
            assert isinstance(reply, m.MultipartReply) and reply.xid == 8
            flags = reply.flags
            total += len(mp.decode_flow_stats(reply.body))
            n_replies += 1
        assert total == 3000 and n_replies > 1


# ---------------------------------------------------------------- roles and async
@async_test
async def test_roles_generation_ids_and_slave_restrictions() -> None:
    core = StubCore()
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as one, \
            raw_client(mgr.mgmt_path) as two:
        await one.send(m.RoleRequest(c.OFPCR_ROLE_MASTER, 10, xid=1))
        assert await one.recv() == m.RoleReply(c.OFPCR_ROLE_MASTER, 10, xid=1)
        await two.send(m.RoleRequest(c.OFPCR_ROLE_MASTER, 11, xid=2))
        assert await two.recv() == m.RoleReply(c.OFPCR_ROLE_MASTER, 11, xid=2)
        await one.send(m.RoleRequest(c.OFPCR_ROLE_NOCHANGE, 0, xid=3))
        assert await one.recv() == m.RoleReply(c.OFPCR_ROLE_SLAVE, 11, xid=3)
        stale = m.encode_message(m.RoleRequest(c.OFPCR_ROLE_MASTER, 5, xid=4))
        await one.send(stale)
        await expect_error(one, e.OFPET_ROLE_REQUEST_FAILED, e.OFPRRFC_STALE, stale)
        fm = m.encode_message(m.FlowModMessage(FlowMod(OFPFC_ADD), xid=5))
        await one.send(fm)
        await expect_error(one, e.OFPET_BAD_REQUEST, e.OFPBRC_IS_SLAVE, fm)
        assert core.rules == []
        await one.send(m.FeaturesRequest(xid=6))  # reads still allowed
        assert isinstance(await one.recv(), m.FeaturesReply)


@async_test
async def test_async_messages_follow_role_and_async_config() -> None:
    core = StubCore()
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as ofctl, \
            raw_client(mgr.mgmt_path) as slave:
        listener = core.listeners[0]
        # A service connection gets async messages only once miss_send_len > 0.
        await ofctl.send(m.SetConfig(0, 0xFFFF, xid=1))
        await slave.send(m.RoleRequest(c.OFPCR_ROLE_SLAVE, 1, xid=2))
        await slave.send(m.SetConfig(0, 128, xid=3))
        assert isinstance(await slave.recv(), m.RoleReply)
        await ofctl.send(m.BarrierRequest(xid=4))
        assert await ofctl.recv() == m.BarrierReply(xid=4)
        await slave.send(m.BarrierRequest(xid=4))
        assert await slave.recv() == m.BarrierReply(xid=4)

        pin = PacketIn(OFPR_NO_MATCH, 0, 0, Match(in_port=1), b"\x00" * 60, 60)
        listener.packet_in(pin)
        listener.flow_removed(FlowRemoved(1, 2, OFPRR_DELETE, 0, 0, 0, 0, 0, 0, 0, Match()))
        listener.port_status(OFPPR_ADD, OfPort(9, "p9", bytes(6)))
        assert await ofctl.recv() == m.PacketInMessage(pin)
        assert isinstance(await ofctl.recv(), m.FlowRemovedMessage)
        assert isinstance(await ofctl.recv(), m.PortStatus)
        # The slave gets only the port status.
        assert isinstance(await slave.recv(), m.PortStatus)

        # SET_ASYNC: the slave now asks for ACTION packet-ins and nothing else.
        await slave.send(m.SetAsync((0, 0), (0, 0), (0, 0), xid=5))
        await slave.send(m.SetAsync((0, 1 << OFPR_ACTION), (0, 0), (0, 0), xid=6))
        await slave.send(m.GetAsyncRequest(xid=7))
        assert await slave.recv() == m.GetAsyncReply((0, 2), (0, 0), (0, 0), xid=7)
        listener.port_status(OFPPR_ADD, OfPort(9, "p9", bytes(6)))
        listener.packet_in(PacketIn(OFPR_ACTION, 0, 0, Match(in_port=1), b"x", 1))
        got = await slave.recv()
        assert isinstance(got, m.PacketInMessage) and got.pi.reason == OFPR_ACTION


@async_test
async def test_packet_out_reaches_core() -> None:
    core = StubCore()
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as client:
        await client.send(m.PacketOut(in_port=a.OFPP_CONTROLLER,
                                      actions=(a.ActOutput(a.OFPP_TABLE),),
                                      data=b"\xff" * 60, xid=3))
        await client.send(m.BarrierRequest(xid=4))
        assert await client.recv() == m.BarrierReply(xid=4)
        assert core.packet_outs == [(a.OFPP_CONTROLLER, (a.ActOutput(a.OFPP_TABLE),),
                                     b"\xff" * 60)]


# ---------------------------------------------------------------- controllers
async def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


@async_test
async def test_active_tcp_controller_connects_reconnects_and_reports_status() -> None:
    accepted: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def controller(reader, writer):
        client = RawClient(reader, writer)
        assert isinstance(await client.recv(), m.Hello)
        await client.send(m.Hello())
        await client.send(m.RoleRequest(c.OFPCR_ROLE_MASTER, 1, xid=1))
        accepted.append((reader, writer))

    server = await asyncio.start_server(controller, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = f"tcp:127.0.0.1:{port}"
    try:
        async with running_manager(StubCore()) as mgr:
            mgr.set_controllers([target])
            mgr.set_controllers([target])  # idempotent
            await _wait_for(lambda: mgr.has_controllers_connected()
                            and mgr.controller_status()[target]["role"] == "master")
            status = mgr.controller_status()[target]
            assert status["is_connected"] and status["status"]["state"] == "ACTIVE"
            assert len(accepted) == 1
            accepted[0][1].close()  # the controller drops us: reconnect after backoff
            await _wait_for(lambda: not mgr.has_controllers_connected())
            assert mgr.controller_status()[target]["status"]["state"] in (
                "BACKOFF", "CONNECTING")
            await _wait_for(lambda: len(accepted) == 2 and mgr.has_controllers_connected())
            mgr.set_controllers([])
            await _wait_for(lambda: not mgr.has_controllers_connected())
            assert mgr.controller_status() == {}
    finally:
        server.close()
        for _, writer in accepted:
            writer.close()


@async_test
async def test_unreachable_controller_backs_off_with_error() -> None:
    with socket.socket() as probe:  # find a closed loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = f"tcp:127.0.0.1:{port}"
    async with running_manager(StubCore()) as mgr:
        mgr.set_controllers([target, "bogus:target"])
        await _wait_for(lambda: mgr.controller_status()[target]["status"]["state"] == "BACKOFF")
        status = mgr.controller_status()
        assert not status[target]["is_connected"]
        assert status[target]["status"]["last_error"] == "Connection refused"
        assert "sec_since_connect" not in status[target]["status"]  # never connected
        assert status[target]["role"] is None
        # As ovs-vswitchd: a target it cannot use is no controller, its row says nothing.
        assert "bogus:target" not in status
        assert mgr.controller_db_status()["bogus:target"] == {
            "is_connected": False, "role": None, "status": {}}
        assert not mgr.has_controllers_connected()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _connect_raw(port: int) -> RawClient:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = RawClient(reader, writer)
    assert isinstance(await client.recv(), m.Hello)
    await client.send(m.Hello())
    return client


@async_test
async def test_passive_ptcp_target_is_a_service_connection_by_default() -> None:
    """As ovs-vswitchd: a listening target without Controller.type serves like
    the .mgmt socket; it is no controller for the fail modes, and its row
    carries no status."""
    port = _free_port()
    target = f"ptcp:{port}:127.0.0.1"
    async with running_manager(StubCore()) as mgr:
        mgr.set_controllers([target])
        await _wait_for(lambda: mgr._links[target].state == "LISTENING")
        client = await _connect_raw(port)
        try:
            await still_alive(client)
            (conn,) = mgr.all_connections()
            assert conn.kind == "service" and conn.miss_send_len == 0
            assert mgr.controller_status() == {} and not mgr.has_controllers_connected()
            assert mgr.controller_db_status()[target] == {
                "is_connected": False, "role": None, "status": {}}
        finally:
            client.close()


@async_test
async def test_passive_target_of_type_primary_is_a_controller() -> None:
    port = _free_port()
    spec = ControllerSpec.from_db(f"ptcp:{port}:127.0.0.1", type_="primary")
    async with running_manager(StubCore()) as mgr:
        mgr.set_controllers([spec])
        await _wait_for(lambda: mgr.controller_status()[spec.target]["status"]["state"]
                        == "LISTENING")
        client = await _connect_raw(port)
        try:
            await still_alive(client)
            await _wait_for(mgr.has_controllers_connected)
            assert mgr.all_connections()[0].miss_send_len == c.OFP_DEFAULT_MISS_SEND_LEN
        finally:
            client.close()


@async_test
async def test_inactivity_probe_disconnects_a_silent_peer() -> None:
    port = _free_port()
    spec = ControllerSpec(f"ptcp:{port}:127.0.0.1", probe_interval=0.2)
    async with running_manager(StubCore()) as mgr:
        mgr.set_controllers([spec])
        await _wait_for(lambda: mgr.controller_status()[spec.target]["status"]["state"]
                        == "LISTENING")
        client = await _connect_raw(port)
        try:
            probe_msg = await client.recv()
            assert isinstance(probe_msg, m.EchoRequest)
            assert await client.closed(timeout=2)  # never answered: dropped
        finally:
            client.close()


@async_test
async def test_multipart_request_in_parts_is_reassembled() -> None:
    async with running_manager(StubCore()) as mgr, raw_client(mgr.mgmt_path) as client:
        body = mp.encode_port_stats_request(2)
        await client.send(m.MultipartRequest(c.OFPMP_PORT_STATS, c.OFPMPF_REQ_MORE,
                                             body[:4], xid=40))
        await client.send(m.MultipartRequest(c.OFPMP_PORT_STATS, 0, body[4:], xid=40))
        reply = await client.recv()
        assert isinstance(reply, m.MultipartReply) and reply.xid == 40
        assert [s.port_no for s in mp.decode_port_stats_list(reply.body)] == [2]
        # Unfinished requests are bounded.
        for xid in range(100, 116):
            await client.send(m.MultipartRequest(c.OFPMP_DESC, c.OFPMPF_REQ_MORE, xid=xid))
        sent = m.encode_message(m.MultipartRequest(c.OFPMP_DESC, c.OFPMPF_REQ_MORE, xid=200))
        await client.send(sent)
        await expect_error(client, e.OFPET_BAD_REQUEST, e.OFPBRC_MULTIPART_BUFFER_OVERFLOW,
                           sent)


def test_controllers_set_before_start_are_applied_on_start() -> None:
    async def main() -> None:
        import tempfile

        from ovsbpfd.ofproto.openflow.connmgr import ConnectionManager
        with tempfile.TemporaryDirectory() as rundir:
            mgr = ConnectionManager(StubCore(), rundir)
            mgr.set_controllers(["bogus:x"])
            assert mgr.controller_db_status() == {}
            await mgr.start()
            try:
                assert list(mgr.controller_db_status()) == ["bogus:x"]
            finally:
                await mgr.stop()

    asyncio.run(main())


@async_test
async def test_peer_not_reading_replies_is_not_buffered_without_bound() -> None:
    core = StubCore()
    for i in range(3000):
        core.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1, eth_type=0x0800, ipv4_src=i),
                              (a.InstApplyActions((a.ActOutput(2),)),), priority=i))
    request = m.MultipartRequest(c.OFPMP_FLOW, body=mp.encode_flow_stats_request(
        mp.FlowStatsRequest()))
    async with running_manager(core) as mgr, raw_client(mgr.mgmt_path) as client:
        for xid in range(50):  # ~15 MB of replies if all were queued
            request.xid = xid
            await client.send(request)
        await asyncio.sleep(0.5)
        (conn,) = mgr.all_connections()
        assert conn._transport.get_write_buffer_size() < 2 << 20
        finals = 0
        while finals < 50:
            reply = await client.recv()
            if isinstance(reply, m.MultipartReply) and not reply.flags:
                finals += 1


@async_test
async def test_bridge_protocols_without_openflow13_refuse_connections() -> None:
    async with running_manager(StubCore()) as mgr:
        mgr.set_protocols(["OpenFlow10", "OpenFlow14"])
        async with raw_client(mgr.mgmt_path, hello=False) as client:
            hello = await client.recv()
            assert isinstance(hello, m.Hello) and hello.bitmap == 1 << 1 | 1 << 5
            await client.send(m.Hello())
            raw = await client.recv_raw()
            assert struct.unpack_from("!HH", raw, 8) == (e.OFPET_HELLO_FAILED,
                                                         e.OFPHFC_INCOMPATIBLE)
            assert await client.closed()
        mgr.set_protocols(["OpenFlow10", "OpenFlow13"])
        async with raw_client(mgr.mgmt_path) as client:
            await still_alive(client)
