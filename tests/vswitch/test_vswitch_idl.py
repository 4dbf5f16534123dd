"""The vswitch IDL client against an external (Debian) ovsdb-server.

Lower layers are the in-memory fakes, so this checks the DB side alone:
status write-back, cur_cfg acknowledgement, periodic statistics and
surviving a server restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.vswitch.ovsdb_ref import RefOvsdb, available
from tests.vswitch.scenario import run_scenario, vsctl

pytestmark = pytest.mark.skipif(not available(), reason="needs Debian's ovsdb-server")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def test_status_and_cur_cfg_written_before_vsctl_returns(tmp_path: Path) -> None:
    async def scenario(db, vs, nd, factory) -> None:
        nd.add_system("eth9")
        rc, _, _, took = await vsctl(db, "init")
        assert rc == 0 and took < 3
        rc, _, err, took = await vsctl(db, "add-br", "br0", "--", "add-port", "br0", "eth9",
                                       "--", "add-port", "br0", "gone9")
        assert rc == 0 and took < 3
        assert "Error detected while setting up 'gone9'" in err
        # written in the same transaction as cur_cfg, so visible right away
        _, ofport, _, _ = await vsctl(db, "get", "Interface", "eth9", "ofport")
        assert ofport == "1"
        _, ifindex, _, _ = await vsctl(db, "get", "Interface", "eth9", "ifindex")
        assert int(ifindex) == nd.devices["eth9"].ifindex
        _, error, _, _ = await vsctl(db, "get", "Interface", "gone9", "error")
        assert error == '"could not open network device gone9 (No such device)"'
        _, version, _, _ = await vsctl(db, "get", "Open_vSwitch", ".", "ovs_version")
        assert version == '"9.8.7"'
        _, types, _, _ = await vsctl(db, "get", "Open_vSwitch", ".", "iface_types")
        assert types == "[internal, system]"
        _, cur, _, _ = await vsctl(db, "get", "Open_vSwitch", ".", "cur_cfg")
        _, nxt, _, _ = await vsctl(db, "get", "Open_vSwitch", ".", "next_cfg")
        assert cur == nxt
        assert factory.created[0].port_names()["eth9"] == 1

    run_scenario(tmp_path, scenario)


def test_statistics_refresh_and_netdev_changes(tmp_path: Path) -> None:
    async def scenario(db, vs, nd, factory) -> None:
        nd.add_system("eth9")
        await vsctl(db, "init")
        await vsctl(db, "add-br", "br0", "--", "add-port", "br0", "eth9")

        async def stats_has(value: str) -> bool:
            _, out, _, _ = await vsctl(db, "get", "Interface", "eth9", "statistics:rx_packets")
            return out == value

        await eventually(lambda: stats_has("3"))
        info = nd.devices["eth9"]
        info.stats["rx_packets"] = 42  # counters move; the next refresh shows it
        await eventually(lambda: stats_has("42"), timeout=3)

        nd.set_state("eth9", admin_up=False, link_up=False)
        vs.netdevs_changed()

        async def link_down() -> bool:
            _, out, _, _ = await vsctl(db, "get", "Interface", "eth9", "admin_state")
            return out == "down"

        await eventually(link_down)

    run_scenario(tmp_path, scenario, stats_interval=0.3)


def test_survives_db_server_restart(tmp_path: Path) -> None:
    async def scenario(db, vs, nd, factory) -> None:
        nd.add_system("eth9")
        await vsctl(db, "init")
        await vsctl(db, "add-br", "br0", "--", "add-port", "br0", "eth9")
        core = factory.created[0]
        db.stop()
        await asyncio.sleep(0.3)
        # same database file, new server process
        proc = await asyncio.create_subprocess_exec(
            "ovsdb-server", f"--remote=punix:{db.sock}", "--no-chdir",
            f"--unixctl={db.dir / 'ovsdb-server2.ctl'}", str(db.db))
        try:
            await eventually(lambda: _sock_ready(db), timeout=10)
            rc, _, _, took = await vsctl(db, "add-br", "br1")
            assert rc == 0 and took < 5
            assert not core.destroyed  # a reconnect is not a reconfiguration
            assert set(vs.bridges.bridges) == {"br0", "br1"}
        finally:
            proc.terminate()
            await proc.wait()

    run_scenario(tmp_path, scenario)


async def _sock_ready(db: RefOvsdb) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(str(db.sock))
    except OSError:
        return False
    writer.close()
    return True
