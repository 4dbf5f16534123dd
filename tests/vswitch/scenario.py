"""Running the vswitch (over the in-memory fakes) against Debian's
ovsdb-server, and driving it with ovs-vsctl: shared by the vswitch tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ovsbpfd.vswitch.bridges import BridgeSet
from ovsbpfd.vswitch.vswitch import Vswitch
from tests.vswitch.fakes import FakeFactory, FakeNetdevs
from tests.vswitch.ovsdb_ref import RefOvsdb

Scenario = Callable[[RefOvsdb, Vswitch, FakeNetdevs, FakeFactory], Awaitable[None]]


async def vsctl(db: RefOvsdb, *args: str) -> tuple[int, str, str, float]:
    """(exit status, stdout, stderr, seconds) of one ovs-vsctl run."""
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "ovs-vsctl", f"--db={db.remote}", "--timeout=10", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode().strip(), err.decode(), time.monotonic() - start


def run_scenario(tmp_path: Path, scenario: Scenario, stats_interval: float = 5.0,
                 bridge_set: type[BridgeSet] = BridgeSet) -> None:
    """Start an ovsdb-server and a vswitch on it, run scenario(db, vswitch,
    netdevs, factory), and stop both however it ends."""
    db = RefOvsdb(tmp_path).start()
    nd = FakeNetdevs()
    factory = FakeFactory()

    async def main() -> None:
        vs = Vswitch(db.remote, bridge_set(nd, factory), version="9.8.7",
                     datapath_types=["dummy"], stats_interval=stats_interval)
        await vs.start()
        try:
            await scenario(db, vs, nd, factory)
        finally:
            await vs.stop()

    try:
        asyncio.run(main())
    finally:
        db.stop()
