"""The fail-mode check every FLOW_MOD makes first: skipped while the
connection manager's status epoch says nothing changed, and never skipped
when it matters (a controller configured, connected or gone, the fail mode
changed, or fail-open's timer running)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field

from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow.connmgr import ConnectionManager
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod, FlowStatsRequest
from tests.ofproto.core.rig import Rig

FAIL_AFTER_S = 0.2


@dataclass
class EpochControllers:
    """Stands in for the connection manager: each change moves the epoch."""

    targets: list[str] = field(default_factory=list)
    connected: bool = False
    status_epoch: int = 0
    queries: int = 0

    def change(self, targets: list[str] | None = None, connected: bool | None = None) -> None:
        if targets is not None:
            self.targets = targets
        if connected is not None:
            self.connected = connected
        self.status_epoch += 1

    def controller_status(self) -> dict[str, dict]:
        self.queries += 1
        return {t: {"is_connected": self.connected} for t in self.targets}

    def has_controllers_connected(self) -> bool:
        self.queries += 1
        return self.connected and bool(self.targets)


def make_rig() -> tuple[Rig, EpochControllers]:
    rig = Rig(2)
    rig.bridge.fail_open.fail_after_s = FAIL_AFTER_S
    controllers = EpochControllers()
    rig.bridge.watch_controllers(controllers)
    return rig, controllers


def priorities(rig: Rig) -> list[int]:
    return [e.priority for e in rig.bridge.flow_stats(FlowStatsRequest())]


def add_flow(rig: Rig, priority: int) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1), priority=priority))


def test_flow_mods_do_not_query_an_unchanged_manager() -> None:
    rig, controllers = make_rig()
    try:
        add_flow(rig, 5)
        before = controllers.queries
        for priority in range(6, 50):
            add_flow(rig, priority)
        assert controllers.queries == before
        assert len(priorities(rig)) == 46  # NORMAL at 0, then 5..49
    finally:
        rig.close()


def test_a_new_controller_flushes_before_the_next_flow_mod() -> None:
    rig, controllers = make_rig()
    try:
        add_flow(rig, 5)
        controllers.change(targets=["tcp:127.0.0.1:6653"], connected=True)
        add_flow(rig, 7)  # no periodic run in between
        assert priorities(rig) == [7]
        controllers.change(targets=[], connected=False)
        add_flow(rig, 8)
        assert priorities(rig) == [8, 0]
    finally:
        rig.close()


def test_a_steady_connection_keeps_fail_open_away_after_it_drops() -> None:
    """While FLOW_MODs skip the full check the controller still counts as seen
    now, so losing it starts fail-open's timer then, not at the last full check."""
    rig, controllers = make_rig()
    try:
        controllers.change(targets=["tcp:127.0.0.1:6653"], connected=True)
        rig.bridge.periodic()
        deadline = time.monotonic() + 2 * FAIL_AFTER_S
        priority = 1
        while time.monotonic() < deadline:
            add_flow(rig, priority)
            priority += 1
            time.sleep(0.01)
        controllers.change(connected=False)
        rig.bridge.periodic()
        assert not rig.bridge.fail_open_active
        time.sleep(FAIL_AFTER_S + 0.05)
        add_flow(rig, 1000)  # the timer runs without any status change
        assert rig.bridge.fail_open_active
        assert priorities(rig) == [1000]  # flushed first, then applied
        controllers.change(connected=True)
        add_flow(rig, 1001)
        assert not rig.bridge.fail_open_active
    finally:
        rig.close()


def test_a_fail_mode_change_is_seen_without_a_status_change() -> None:
    rig, controllers = make_rig()
    try:
        controllers.change(targets=["tcp:127.0.0.1:6653"])
        rig.bridge.set_fail_mode("secure")
        add_flow(rig, 3)
        time.sleep(FAIL_AFTER_S + 0.05)
        add_flow(rig, 4)
        assert not rig.bridge.fail_open_active
        rig.bridge.set_fail_mode("standalone")
        assert rig.bridge.fail_open_active
    finally:
        rig.close()


def test_the_real_manager_moves_its_epoch_on_configuration() -> None:
    async def main(rundir: str) -> None:
        rig = Rig(2)
        connmgr = ConnectionManager(rig.bridge, rundir)
        await connmgr.start()
        try:
            rig.bridge.watch_controllers(connmgr)
            add_flow(rig, 5)
            assert priorities(rig) == [5, 0]
            connmgr.set_controllers(["tcp:127.0.0.1:1"])  # nothing listens there
            add_flow(rig, 6)
            assert priorities(rig) == [6]  # flushed before the FLOW_MOD
            connmgr.set_controllers([])
            add_flow(rig, 7)
            assert priorities(rig) == [7, 0]
        finally:
            await connmgr.stop()
            rig.close()

    with tempfile.TemporaryDirectory() as rundir:
        asyncio.run(main(rundir))
