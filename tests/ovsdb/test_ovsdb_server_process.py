"""The server process (python -m ovsbpfd.ovsdb) starts lean: python-ovs's
optional eventlet import stays out, and python-ovs still works without it."""

from __future__ import annotations

import subprocess
import sys

from .helpers import REPO, child_env

PROBE = """
import sys
import ovsbpfd.ovsdb.__main__ as server_main
import ovs.db.data, ovs.poller
leaked = [m for m in sys.modules if m.split(".")[0] in ("eventlet", "dns", "gevent")
          and sys.modules[m] is not None]
print(leaked)
print(ovs.poller._using_eventlet_green_select())
"""


def test_ovsdb_server_process_imports_no_eventlet():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=child_env(),
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "False"
