"""The embedded OVSDB server administered as people administer ovsdb-server,
through the real daemon: `ovs-appctl -t ovsdb-server` remotes, and
`ovsdb-client convert` while the switch keeps working on the database."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ovsdb.helpers import SCHEMA
from tests.system.daemon_proc import Daemon, free_port
from tests.system.netns import unique_name


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, datapath="dummy")
    try:
        d.start()
        yield d
    finally:
        d.stop(cleanup=True)


def ovsdb_appctl(d: Daemon, *args: str) -> subprocess.CompletedProcess:
    """ovs-appctl -t ovsdb-server, found by its pidfile as in a real install."""
    return subprocess.run(["ovs-appctl", "-t", "ovsdb-server", *args], env=d.env,
                          capture_output=True, text=True, timeout=30)


def test_remotes_added_and_removed_at_run_time(daemon: Daemon) -> None:
    listed = ovsdb_appctl(daemon, "ovsdb-server/list-remotes").stdout.splitlines()
    assert "db:Open_vSwitch,Open_vSwitch,manager_options" in listed
    assert f"punix:{daemon.rundir}/db.sock" in listed
    port = free_port()
    target = f"ptcp:{port}:127.0.0.1"
    assert ovsdb_appctl(daemon, "ovsdb-server/add-remote", target).returncode == 0
    assert target in ovsdb_appctl(daemon, "ovsdb-server/list-remotes").stdout.splitlines()
    show = subprocess.run(["ovs-vsctl", f"--db=tcp:127.0.0.1:{port}", "--timeout=10", "show"],
                          capture_output=True, text=True, timeout=30)
    assert show.returncode == 0, show.stderr
    assert ovsdb_appctl(daemon, "ovsdb-server/remove-remote", target).returncode == 0
    gone = subprocess.run(["ovsdb-client", "--timeout=3", "list-dbs",
                           f"tcp:127.0.0.1:{port}"], capture_output=True, text=True, timeout=30)
    assert gone.returncode != 0
    r = ovsdb_appctl(daemon, "ovsdb-server/remove-remote", target)
    assert (r.returncode, r.stderr.splitlines()[0]) == (2, "no such remote")
    assert "atoms:" in ovsdb_appctl(daemon, "memory/show").stdout


def test_switch_keeps_working_after_ovsdb_client_convert(daemon: Daemon, tmp_path: Path) -> None:
    """The daemon's own database client follows the conversion (it is
    change-aware: its monitors are canceled and it monitors again), so an
    ovs-vsctl that waits for the switch to apply its change still returns."""
    br, br2 = unique_name("bcv", 0), unique_name("bcv", 1)
    daemon.vsctl("add-br", br)
    with open(SCHEMA) as f:
        schema = json.load(f)
    schema["version"] = "8.9.0"
    schema["tables"]["Bridge"]["columns"]["note"] = {"type": {"key": "string", "min": 0}}
    new_schema = tmp_path / "new.ovsschema"
    new_schema.write_text(json.dumps(schema))
    sock = f"unix:{daemon.rundir}/db.sock"
    r = subprocess.run(["ovsdb-client", "convert", sock, str(new_schema)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    version = subprocess.run(["ovsdb-client", "get-schema-version", sock],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    assert version == "8.9.0"
    try:
        daemon.vsctl("--timeout=20", "add-br", br2)  # waits for cur_cfg: the switch must act
        assert sorted(daemon.vsctl("list-br").stdout.split()) == sorted([br, br2])
    finally:
        daemon.vsctl("--if-exists", "del-br", br2, check=False)
        daemon.vsctl("--if-exists", "del-br", br, check=False)
