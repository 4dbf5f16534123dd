"""Debian's ovs-ofctl -O OpenFlow13 against a ConnectionManager serving the
real switch core (OfprotoBridge over the dummy datapath)."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.dummy import DummyDpif
from ovsbpfd.ofproto.backer import DatapathBacker
from ovsbpfd.ofproto.bridge import OfprotoBridge
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow.connmgr import ConnectionManager
from ovsbpfd.ofproto.types import OFPPR_ADD
from tests.ofproto.openflow.of_client import raw_client
from tests.ofproto.openflow.of_recorder import ofctl


def host_mac(n: int) -> bytes:
    return bytes([0x02, 0, 0, 0, 0, n])


@dataclass
class Switch:
    dpif: DummyDpif
    bridge: OfprotoBridge
    manager: ConnectionManager
    sock: str

    async def ofctl_ok(self, command: str, *args: str) -> str:
        status, out, err = await ofctl(command, self.sock, *args)
        assert status == 0, f"ovs-ofctl {command} failed: {err}"
        return out

    def inject(self, ofport: int, frame: bytes) -> None:
        self.dpif.inject(self.bridge.port_map[ofport].dp_port, frame)


@asynccontextmanager
async def real_switch() -> AsyncIterator[Switch]:
    dpif = DummyDpif()
    backer = DatapathBacker(dpif)
    await backer.start()
    bridge = OfprotoBridge(backer, "br0", 0x00000000000ABCDE)
    try:
        for n in (1, 2):
            bridge.port_add(f"p{n}", 100 + n, host_mac(n))
        bridge.port_add("br0", 103, host_mac(0xFE), local=True)
        with tempfile.TemporaryDirectory(prefix="ovsbpfd-ofctl-") as rundir:
            manager = ConnectionManager(bridge, rundir)
            await manager.start()
            try:
                yield Switch(dpif, bridge, manager, manager.mgmt_path)
            finally:
                await manager.stop()
    finally:
        await backer.stop()
        bridge.destroy()
        dpif.close()


def async_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 60))
    return wrapper


def flow_lines(dump: str) -> list[str]:
    """The flows of a dump-flows output, without their (changing) durations."""
    return [re.sub(r"duration=[0-9.]+s, ", "", line.strip())
            for line in dump.splitlines() if "cookie=" in line]


@async_test
async def test_show_and_port_commands() -> None:
    async with real_switch() as sw:
        out = await sw.ofctl_ok("show")
        assert "dpid:00000000000abcde" in out and "n_tables:254" in out
        assert " 1(p1): addr:02:00:00:00:00:01" in out
        assert " LOCAL(br0): addr:02:00:00:00:00:fe" in out
        assert "frags=normal" in out
        desc = await sw.ofctl_ok("dump-ports-desc")
        assert " 2(p2): addr:02:00:00:00:00:02" in desc
        ports = await sw.ofctl_ok("dump-ports")
        assert "3 ports" in ports and "port  1:" in ports and "port LOCAL:" in ports
        one = await sw.ofctl_ok("dump-ports", "2")
        assert "1 ports" in one and "port  2:" in one
        status, out, _ = await ofctl("dump-ports", sw.sock, "77")
        assert status == 0 and out.endswith(": 0 ports\n")  # as ovs-vswitchd answers
        # mod-port reaches the core and comes back in the port description
        await sw.ofctl_ok("mod-port", "p1", "no-flood")
        await sw.ofctl_ok("mod-port", "p1", "down")
        assert "PORT_DOWN" in await sw.ofctl_ok("dump-ports-desc")


@async_test
async def test_flow_table_commands_through_unix_target() -> None:
    async with real_switch() as sw:
        target = f"unix:{sw.sock}"
        status, out, err = await ofctl("dump-flows", target)
        assert status == 0, err
        assert flow_lines(out) == [
            "cookie=0x0, table=0, n_packets=0, n_bytes=0, priority=0 actions=NORMAL"]
        await sw.ofctl_ok("add-flow", "priority=10,in_port=1,actions=drop")
        await sw.ofctl_ok("add-flow", "table=0,priority=20,cookie=0x7,ip,nw_dst=10.0.0.0/8,"
                                      "actions=mod_vlan_vid:5,output:2")
        await sw.ofctl_ok("add-flow", "table=3,priority=5,tcp,tp_dst=22,"
                                      "actions=output:1,goto_table:4")
        lines = flow_lines(await sw.ofctl_ok("dump-flows"))
        assert len(lines) == 4
        assert any("priority=10,in_port=1 actions=drop" in x for x in lines)
        assert any("cookie=0x7" in x and "priority=20,ip,nw_dst=10.0.0.0/8 "
                   "actions=push_vlan:0x8100,set_field:4101->vlan_vid,output:2" in x for x in lines)
        assert any("table=3" in x and "priority=5,tcp,tp_dst=22 actions=output:1,"
                   "goto_table:4" in x for x in lines)
        only_3 = flow_lines(await sw.ofctl_ok("dump-flows", "table=3"))
        assert len(only_3) == 1
        agg = await sw.ofctl_ok("dump-aggregate")
        assert "flow_count=4" in agg
        tables = await sw.ofctl_ok("dump-tables")
        assert re.search(r"table 0:\s+active=3", tables)
        assert re.search(r"table 3:\s+active=1", tables)
        await sw.ofctl_ok("del-flows", "in_port=1")
        lines = flow_lines(await sw.ofctl_ok("dump-flows"))
        assert not any("in_port=1" in x for x in lines) and len(lines) == 3
        await sw.ofctl_ok("del-flows")
        assert flow_lines(await sw.ofctl_ok("dump-flows")) == []
        assert "flow_count=0" in await sw.ofctl_ok("dump-aggregate")


@async_test
async def test_rejected_flows_get_ofpt_error_and_change_nothing() -> None:
    async with real_switch() as sw:
        before = await sw.ofctl_ok("dump-flows")
        status, _, err = await ofctl("add-flow", sw.sock, "table=254,actions=drop")
        assert status != 0 and "OFPFMFC_BAD_TABLE_ID" in err
        status, _, err = await ofctl("add-flow", sw.sock, "in_port=1,actions=goto_table:0")
        assert status != 0 and "OFPBIC_BAD_TABLE_ID" in err
        assert flow_lines(await sw.ofctl_ok("dump-flows")) == flow_lines(before)


@async_test
async def test_garbage_then_ofctl_still_works() -> None:
    async with real_switch() as sw:
        async with raw_client(sw.sock) as client:
            await client.send(b"GET / HTTP/1.0\r\n\r\n")
            reply = await client.recv()
            assert isinstance(reply, m.Error) and reply.data.startswith(b"GET / HTTP")
            await client.send(m.EchoRequest(xid=3))
            assert await client.recv() == m.EchoReply(xid=3)
        assert "actions=NORMAL" in await sw.ofctl_ok("dump-flows")


@async_test
async def test_counters_and_port_status_reach_ofctl() -> None:
    async with real_switch() as sw:
        frame = pb.eth(host_mac(2), host_mac(1), 0x0800,
                       pb.ipv4("10.0.0.1", "10.0.0.2", 17, pb.udp(1, 2, b"x" * 20)))
        for _ in range(5):
            sw.inject(1, frame)
            await asyncio.sleep(0.01)
        deadline = time.monotonic() + 5
        while True:
            lines = flow_lines(await sw.ofctl_ok("dump-flows"))
            if "n_packets=5," in lines[0] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert "n_packets=5," in lines[0], lines
        # A service connection that sets miss_send_len receives PORT_STATUS.
        async with raw_client(sw.sock) as client:
            await client.send(m.SetConfig(0, 128, xid=1))
            await client.send(m.BarrierRequest(xid=2))
            assert await client.recv() == m.BarrierReply(xid=2)
            sw.bridge.port_add("p3", 104, host_mac(3))
            status = await client.recv()
            assert isinstance(status, m.PortStatus)
            assert (status.reason, status.port.name) == (OFPPR_ADD, "p3")


def test_stop_removes_the_socket() -> None:
    async def main() -> str:
        async with real_switch() as sw:
            assert os.path.exists(sw.sock)
            return sw.sock

    path = asyncio.run(main())
    assert not os.path.exists(path)


@async_test
async def test_ovs_ofctl_monitor_sees_packet_in_and_port_status() -> None:
    async with real_switch() as sw:
        await sw.ofctl_ok("add-flow", "priority=50,in_port=1,actions=CONTROLLER:64")
        with tempfile.TemporaryDirectory(prefix="ovsbpfd-mon-") as rundir:
            proc = await asyncio.create_subprocess_exec(
                "ovs-ofctl", "-O", "OpenFlow13", "monitor", sw.sock, "65534",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "OVS_RUNDIR": rundir})
            try:
                deadline = time.monotonic() + 5
                while not any(c.miss_send_len for c in sw.manager.all_connections()):
                    assert time.monotonic() < deadline, "monitor never configured itself"
                    await asyncio.sleep(0.05)
                frame = pb.eth(host_mac(2), host_mac(1), 0x0800,
                               pb.ipv4("10.0.0.1", "10.0.0.2", 17, pb.udp(1, 2, b"y" * 80)))
                sw.inject(1, frame)
                sw.bridge.port_add("p9", 109, host_mac(9))
                await asyncio.sleep(0.5)
            finally:
                if proc.returncode is None:
                    proc.terminate()  # its piped stdout is flushed at exit
                out, err = await proc.communicate()
            text = (out + err).decode()  # monitor prints messages to stderr
            assert "total_len=122 in_port=1 (via action) data_len=64" in text, text
            assert re.search(r"OFPT_PORT_STATUS \(OF1.3\) .*ADD: \d+\(p9\)", text), text
