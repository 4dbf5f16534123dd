"""Debian's ovsdb-server on a temporary directory, as an external OVSDB.

The vswitch must work against an external server as well as the embedded
one; these tests use the stock server so they depend only on the vswitch.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def available() -> bool:
    return all(shutil.which(b) for b in ("ovsdb-server", "ovsdb-tool", "ovs-vsctl")) and (
        os.path.exists(SCHEMA)
    )


class RefOvsdb:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.db = workdir / "conf.db"
        self.sock = workdir / "db.sock"
        self.proc: subprocess.Popen | None = None

    @property
    def remote(self) -> str:
        return f"unix:{self.sock}"

    def start(self) -> RefOvsdb:
        subprocess.run(["ovsdb-tool", "create", str(self.db), SCHEMA], check=True)
        self.proc = subprocess.Popen(
            ["ovsdb-server", f"--remote=punix:{self.sock}",
             f"--unixctl={self.dir / 'ovsdb-server.ctl'}", "--no-chdir",
             f"--log-file={self.dir / 'ovsdb-server.log'}", str(self.db)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("ovsdb-server did not start")
            time.sleep(0.05)
        return self

    def vsctl(self, *args: str, check: bool = True, timeout: float = 15
              ) -> subprocess.CompletedProcess:
        return subprocess.run(["ovs-vsctl", f"--db={self.remote}", "--timeout=10", *args],
                              capture_output=True, text=True, check=check, timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
