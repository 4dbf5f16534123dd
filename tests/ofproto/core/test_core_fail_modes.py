"""Fail modes as in OVS: the visible NORMAL flow of a standalone bridge
without controllers, flushes when controllers come or go, fail-open after
the controllers have been away long enough, and secure mode never failing
open.  The unit tests stand in a small monitor for the connection manager;
the last test uses the real one with a controller on loopback."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field

import pytest

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.ofproto.actions import ActOutput, InstApplyActions
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod, FlowStatsRequest
from tests.ofproto.core.rig import Rig, host_mac

H1, H2 = host_mac(1), host_mac(2)
FAIL_AFTER_S = 0.2


@dataclass
class Controllers:
    """The connection manager as fail modes see it: targets and connectivity."""

    targets: list[str] = field(default_factory=list)
    connected: bool = False

    def controller_status(self) -> dict[str, dict]:
        return {t: {"is_connected": self.connected} for t in self.targets}

    def has_controllers_connected(self) -> bool:
        return self.connected and bool(self.targets)


def make_rig(fail_mode: str = "standalone") -> tuple[Rig, Controllers]:
    rig = Rig(2)
    if fail_mode != "standalone":
        rig.bridge.set_fail_mode(fail_mode)
    rig.bridge.fail_open.fail_after_s = FAIL_AFTER_S
    controllers = Controllers()
    rig.bridge.watch_controllers(controllers)
    return rig, controllers


@pytest.fixture
def standalone():
    rig, controllers = make_rig()
    try:
        yield rig, controllers
    finally:
        rig.close()


def priorities(rig: Rig) -> list[int]:
    return [e.priority for e in rig.bridge.flow_stats(FlowStatsRequest())]


def arp_gets_through(rig: Rig) -> bool:
    rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
    return len(rig.received(2)) == 1


def test_standalone_without_controllers_has_the_normal_flow(standalone) -> None:
    rig, _controllers = standalone
    assert priorities(rig) == [0] and arp_gets_through(rig)


def test_gaining_a_controller_flushes_and_losing_it_restores_normal(standalone) -> None:
    rig, controllers = standalone
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=2), (
        InstApplyActions((ActOutput(1),)),), priority=5))
    controllers.targets = ["tcp:127.0.0.1:6653"]
    # the next FLOW_MOD (say, the controller's first) finds the table flushed
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1, eth_type=0x0800), (
        InstApplyActions((ActOutput(2),)),), priority=7))
    assert priorities(rig) == [7]
    rig.settle()
    assert not arp_gets_through(rig)  # no NORMAL flow any more: a table miss drops
    controllers.targets = []
    rig.bridge.periodic()
    assert priorities(rig) == [0]
    rig.settle()
    assert arp_gets_through(rig)


def test_fail_open_after_the_controllers_are_away_long_enough(standalone) -> None:
    rig, controllers = standalone
    controllers.targets = ["tcp:127.0.0.1:6653"]
    rig.bridge.periodic()
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1), priority=9))  # a drop flow
    rig.settle()
    assert not rig.bridge.fail_open_active and not arp_gets_through(rig)
    time.sleep(FAIL_AFTER_S + 0.05)
    rig.bridge.periodic()
    assert rig.bridge.fail_open_active
    assert priorities(rig) == []  # flows flushed; the fail-open rule is hidden
    rig.settle()
    assert arp_gets_through(rig)  # a learning switch
    rig.send(2, pb.arp_reply(H2, "10.0.0.2", H1, "10.0.0.1"))
    assert len(rig.received(1)) == 1
    # a controller connects: fail-open ends, and its flows decide again
    controllers.connected = True
    rig.bridge.periodic()
    assert not rig.bridge.fail_open_active
    rig.settle()
    assert not arp_gets_through(rig)
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1), (
        InstApplyActions((ActOutput(2),)),), priority=9))
    rig.settle()
    assert arp_gets_through(rig)


def test_secure_never_fails_open() -> None:
    rig, controllers = make_rig("secure")
    try:
        assert priorities(rig) == []
        controllers.targets = ["tcp:127.0.0.1:6653"]
        rig.bridge.periodic()
        time.sleep(FAIL_AFTER_S + 0.05)
        rig.bridge.periodic()
        assert not rig.bridge.fail_open_active
        assert not arp_gets_through(rig)
        # switching to standalone with controllers: fail-open applies now
        rig.bridge.set_fail_mode("standalone")
        rig.settle()
        assert rig.bridge.fail_open_active and arp_gets_through(rig)
    finally:
        rig.close()


def test_fail_mode_change_without_controllers_flushes(standalone) -> None:
    rig, _controllers = standalone
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=2), priority=5))
    rig.bridge.set_fail_mode("secure")
    assert priorities(rig) == []
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=2), priority=5))
    rig.bridge.set_fail_mode("standalone")
    assert priorities(rig) == [0]


# ------------------------------------------------------------ with the real connmgr
HELLO_13 = bytes([4, 0, 0, 8, 0, 0, 0, 1])


async def _controller(accept: asyncio.Event, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    """A controller on loopback that says HELLO once ``accept`` is set."""
    try:
        if not accept.is_set():
            return
        writer.write(HELLO_13)
        await writer.drain()
        while await reader.read(4096):
            pass
    finally:
        writer.close()


def test_fail_open_follows_the_real_connection_manager() -> None:
    from ovsbpfd.ofproto.openflow.connmgr import ConnectionManager

    async def main(rundir: str) -> None:
        rig = Rig(2)
        rig.bridge.fail_open.fail_after_s = FAIL_AFTER_S
        accept = asyncio.Event()
        server = await asyncio.start_server(lambda r, w: _controller(accept, r, w),
                                            "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connmgr = ConnectionManager(rig.bridge, rundir)
        await connmgr.start()
        try:
            rig.bridge.watch_controllers(connmgr)
            connmgr.set_controllers([f"tcp:127.0.0.1:{port}"])
            rig.bridge.periodic()
            assert priorities(rig) == []  # the NORMAL flow went with the first controller
            await asyncio.sleep(FAIL_AFTER_S + 0.1)
            rig.bridge.periodic()
            assert rig.bridge.fail_open_active
            accept.set()
            deadline = time.monotonic() + 10
            while rig.bridge.fail_open_active and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                rig.bridge.periodic()
            assert not rig.bridge.fail_open_active
        finally:
            await connmgr.stop()
            server.close()
            await server.wait_closed()
            rig.close()

    with tempfile.TemporaryDirectory() as rundir:
        asyncio.run(main(rundir))


def test_fail_open_rule_is_shown_hidden_and_counted(standalone) -> None:
    """bridge/dump-flows shows OVS's hidden fail-open rule, with real counters,
    while it is in place (ovs-ofctl dump-flows does not)."""
    rig, controllers = standalone
    controllers.targets = ["tcp:127.0.0.1:6653"]
    rig.bridge.periodic()
    assert rig.bridge.dump_flows() == ""
    time.sleep(FAIL_AFTER_S + 0.05)
    rig.bridge.periodic()
    rig.settle()
    assert arp_gets_through(rig)  # upcalled: counted at once
    for _ in range(3):  # the same megaflow in the datapath: counted by the sweep
        rig.dpif.inject(rig.dp_port(1), pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
    rig.backer.sweep()
    (line,) = rig.bridge.dump_flows().splitlines()
    assert line.startswith("duration=") and line.endswith(
        ", n_packets=4, n_bytes=168, priority=15790320,actions=NORMAL")
    assert priorities(rig) == []
    controllers.connected = True
    rig.bridge.periodic()
    assert rig.bridge.dump_flows() == ""
