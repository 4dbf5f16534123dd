"""`ovs-vsctl set-manager` opens OVSDB remotes on the embedded server, as with OVS."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.daemon_proc import Daemon, dummy_daemon, free_port

pytestmark = pytest.mark.system


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with dummy_daemon(tmp_path) as d:
        yield d


def list_dbs(target: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ovsdb-client", "--timeout=3", "list-dbs", target],
                          capture_output=True, text=True, timeout=10)


def test_set_manager_ptcp_serves_ovsdb_clients(daemon: Daemon) -> None:
    port = free_port()
    target = f"tcp:127.0.0.1:{port}"
    daemon.vsctl("set-manager", f"ptcp:{port}:127.0.0.1")
    deadline = time.monotonic() + 5
    while list_dbs(target).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    result = list_dbs(target)
    assert result.returncode == 0, result.stderr
    assert "Open_vSwitch" in result.stdout.split()
    # ovs-vsctl itself works over the new remote.
    out = subprocess.run(["ovs-vsctl", f"--db={target}", "--no-wait", "get-manager"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == f"ptcp:{port}:127.0.0.1", out.stderr

    daemon.vsctl("del-manager")
    deadline = time.monotonic() + 5
    while list_dbs(target).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list_dbs(target).returncode != 0, "the listener must close with its Manager row"
