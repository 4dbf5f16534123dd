"""Where an OVS-style daemon keeps its files, and its pidfile.

The layout is Open vSwitch's, because ``ovs-appctl -t NAME`` finds a daemon by
reading ``$OVS_RUNDIR/NAME.pid`` and connecting to ``$OVS_RUNDIR/NAME.PID.ctl``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

DEFAULT_RUNDIR = "/var/run/openvswitch"
DEFAULT_DBDIR = "/etc/openvswitch"
DEFAULT_LOGDIR = "/var/log/openvswitch"


def default_rundir() -> str:
    return os.environ.get("OVS_RUNDIR") or DEFAULT_RUNDIR


def default_dbdir() -> str:
    return os.environ.get("OVS_DBDIR") or DEFAULT_DBDIR


def default_logdir() -> str:
    return os.environ.get("OVS_LOGDIR") or DEFAULT_LOGDIR


def ctl_path(rundir: str, program: str, pid: int) -> str:
    return os.path.join(rundir, f"{program}.{pid}.ctl")


def pidfile_path(rundir: str, program: str) -> str:
    return os.path.join(rundir, f"{program}.pid")


class AlreadyRunning(Exception):
    pass


class PidFile:
    """A pidfile held under an fcntl lock for the daemon's lifetime.

    The lock (as OVS takes it) is what tells a second instance that the first
    is alive; a pidfile left by a dead process is simply taken over.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, pid: int | None = None) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            try:
                other = os.read(fd, 32).decode(errors="replace").strip()
            finally:
                os.close(fd)
            raise AlreadyRunning(
                f"{self.path}: already running as pid {other or '?'}"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{pid or os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def read_pidfile(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None
