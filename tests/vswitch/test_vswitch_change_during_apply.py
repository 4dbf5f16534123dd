"""A netdev change that arrives while an apply runs is not lost.

The apply reads the netdevs early; a link going down after that read must
make the vswitch apply once more, not wait for the next statistics tick
(a PORT_MOD ``up`` followed by the carrier coming on later hit exactly this
under load: the port read LINK_DOWN for seconds).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ovsbpfd.vswitch.bridges import BridgeSet
from ovsbpfd.vswitch.config import SwitchConfig
from ovsbpfd.vswitch.status import InterfaceStatus
from ovsbpfd.vswitch.vswitch import Vswitch
from tests.vswitch.fakes import FakeNetdevs
from tests.vswitch.ovsdb_ref import RefOvsdb, available
from tests.vswitch.scenario import run_scenario, vsctl

pytestmark = pytest.mark.skipif(not available(), reason="needs Debian's ovsdb-server")


class GatedBridgeSet(BridgeSet):
    """A BridgeSet whose next apply, once armed, waits to be released before
    it returns: it has read the netdevs by then, as every apply does early."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.armed = False
        self.applied = asyncio.Event()
        self.release = asyncio.Event()

    async def apply(self, cfg: SwitchConfig) -> dict[uuid.UUID, InterfaceStatus]:
        statuses = await super().apply(cfg)
        if self.armed:
            self.armed = False
            self.applied.set()
            await self.release.wait()
        return statuses


async def interface_column(db: RefOvsdb, name: str, column: str) -> str:
    return (await vsctl(db, "get", "Interface", name, column))[1]


async def vsctl_ok(db: RefOvsdb, *args: str) -> None:
    rc, _out, err, _took = await vsctl(db, *args)
    assert rc == 0, err


def test_link_change_during_an_apply_is_applied(tmp_path: Path) -> None:
    async def scenario(db: RefOvsdb, vs: Vswitch, nd: FakeNetdevs, _factory: Any) -> None:
        bridges = vs.bridges
        assert isinstance(bridges, GatedBridgeSet)
        nd.add_system("eth9")
        await vsctl_ok(db, "init")
        await vsctl_ok(db, "add-br", "br0", "--", "add-port", "br0", "eth9")
        assert await interface_column(db, "eth9", "link_state") == "up"

        bridges.armed = True
        vs.netdevs_changed()  # an apply runs and sees eth9 still up
        await asyncio.wait_for(bridges.applied.wait(), 10)
        nd.set_state("eth9", admin_up=False, link_up=False)
        vs.netdevs_changed()  # the kernel's notice, before that apply returned
        bridges.release.set()

        deadline = time.monotonic() + 10
        while await interface_column(db, "eth9", "link_state") != "down":
            assert time.monotonic() < deadline, "the link change was lost"
            await asyncio.sleep(0.05)
        assert await interface_column(db, "eth9", "admin_state") == "down"

    # no statistics tick during the test: only the change itself may fix it
    run_scenario(tmp_path, scenario, stats_interval=3600, bridge_set=GatedBridgeSet)
