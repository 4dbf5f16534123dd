"""The python-ovs Idl resumes after a reconnect with monitor_cond_since: the
server finds its last transaction id and sends only what changed, so the
Idl keeps its row objects instead of rebuilding everything."""

from __future__ import annotations

import shutil
import subprocess

import ovs.db.idl
import ovs.poller
import pytest

from .helpers import SCHEMA, idl_run_until, ovsbpfd_server

pytestmark = pytest.mark.skipif(shutil.which("ovs-vsctl") is None,
                                reason="Open vSwitch clients not installed")


def vsctl(sock: str, *args: str) -> None:
    subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait", "--timeout=10", *args],
                   check=True, capture_output=True)


def bridge_names(idl: ovs.db.idl.Idl) -> set[str]:
    return {row.name for row in idl.tables["Bridge"].rows.values()}


def test_ovsdb_idl_reconnect_replays_only_changes(tmp_path):
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        vsctl(sock, "init")
        vsctl(sock, "add-br", "br0")
        helper = ovs.db.idl.SchemaHelper(SCHEMA)
        helper.register_all()
        idl = ovs.db.idl.Idl(f"unix:{sock}", helper)
        try:
            idl_run_until(idl, lambda: bridge_names(idl) == {"br0"})
            vsctl(sock, "set", "bridge", "br0", "external_ids:seen=1")
            idl_run_until(idl, lambda: any(r.external_ids.get("seen") == "1"
                                       for r in idl.tables["Bridge"].rows.values()))
            (br0,) = idl.tables["Bridge"].rows.values()
            last_id = idl.last_id
            assert last_id != "00000000-0000-0000-0000-000000000000"

            idl.force_reconnect()
            vsctl(sock, "add-br", "br1")  # while the Idl is away
            idl_run_until(idl, lambda: bridge_names(idl) == {"br0", "br1"})
            # Resumed (found=true): the old row object is still the one in use.
            assert idl.tables["Bridge"].rows[br0.uuid] is br0
            assert idl.last_id != last_id

            # An id the server never issued (as after a server restart) makes
            # it send everything again, and the Idl rebuilds its rows.
            idl.last_id = "11111111-2222-3333-4444-555555555555"
            idl.force_reconnect()
            vsctl(sock, "add-br", "br2")
            idl_run_until(idl, lambda: bridge_names(idl) == {"br0", "br1", "br2"})
            assert idl.tables["Bridge"].rows[br0.uuid] is not br0
        finally:
            idl.close()
