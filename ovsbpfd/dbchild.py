"""Run the embedded OVSDB server as a supervised child process.

ovsdb-server runs beside ovs-vswitchd in OVS; here it runs as our child so a
burst of datapath work never stalls ``ovs-vsctl`` (and vice versa).  It gets
``ovsdb-server.pid`` and ``ovsdb-server.PID.ctl`` in the rundir, so
``ovs-appctl -t ovsdb-server`` finds it, and is started again if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time

from ovsbpfd.rundir import ctl_path, pidfile_path

log = logging.getLogger(__name__)

PROGRAM = "ovsdb-server"


#: Runs in the child before the server: take the pidfile under an fcntl lock
#: (kept across exec, which is how ovs-appctl checks that the pid is alive),
#: name the control socket after the pid, then exec the server itself.
_BOOTSTRAP = """
import fcntl, os, sys
pidfile, ctl_prefix, dbfile, *argv = sys.argv[1:]
fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.ftruncate(fd, 0)
os.write(fd, b"%d\\n" % os.getpid())
os.set_inheritable(fd, True)
os.execv(argv[0], argv + ["--unixctl", "%s%d.ctl" % (ctl_prefix, os.getpid()), dbfile])
"""


#: As ovs-ctl starts ovsdb-server: the SSL files of ssl:/pssl: managers come
#: from the Open_vSwitch.ssl row, so `ovs-vsctl set-ssl` configures them.
SSL_OPTIONS = [
    "--private-key=db:Open_vSwitch,SSL,private_key",
    "--certificate=db:Open_vSwitch,SSL,certificate",
    "--bootstrap-ca-cert=db:Open_vSwitch,SSL,ca_cert",
]


def child_command(
    rundir: str, dbfile: str, schema: str, remotes: list[str], python: str = sys.executable
) -> list[str]:
    """argv that starts the server through the pidfile-taking bootstrap."""
    server = [python, "-m", "ovsbpfd.ovsdb"]
    for remote in remotes:
        server += ["--remote", remote]
    server += SSL_OPTIONS
    server += ["--schema", schema, "--die-with-parent"]
    return [python, "-c", _BOOTSTRAP, pidfile_path(rundir, PROGRAM),
            os.path.join(rundir, f"{PROGRAM}."), dbfile, *server]


def socket_accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


MANAGER_REMOTES = "db:Open_vSwitch,Open_vSwitch,manager_options"


class OvsdbChild:
    """Starts, watches and stops the embedded OVSDB server."""

    def __init__(
        self,
        rundir: str,
        dbfile: str,
        schema: str,
        extra_remotes: list[str] | None = None,
        log_file: str | None = None,
    ) -> None:
        self.rundir = rundir
        self.dbfile = dbfile
        self.schema = schema
        self.sock_path = os.path.join(rundir, "db.sock")
        # As Debian's ovs-ctl starts ovsdb-server: the local socket, the
        # Manager rows' targets (ovs-vsctl set-manager), then any extra ones.
        self.remotes = [f"punix:{self.sock_path}", MANAGER_REMOTES, *(extra_remotes or [])]
        self.log_file = log_file
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None
        self._up = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self, timeout: float = 30.0) -> None:
        """Spawn the server and wait until its socket accepts connections."""
        os.makedirs(os.path.dirname(os.path.abspath(self.dbfile)), exist_ok=True)
        await self._spawn()
        self._watch = asyncio.create_task(self._watch_loop())
        await self.wait_up(timeout)

    async def wait_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.returncode is None and socket_accepts(
                self.sock_path
            ):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"embedded OVSDB server did not come up on {self.sock_path}")

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.warning("ovsdb-server pid %d ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                await proc.wait()
        if proc is not None:
            self._remove_files(proc.pid)

    async def _spawn(self) -> None:
        argv = child_command(self.rundir, self.dbfile, self.schema, self.remotes)
        stderr = None
        if self.log_file:
            stderr = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            )
        finally:
            if stderr is not None:
                stderr.close()
        log.info("started embedded OVSDB server, pid %d", self.proc.pid)

    async def _watch_loop(self) -> None:
        backoff = 0.1
        while not self._stopping:
            assert self.proc is not None
            started = time.monotonic()
            rc = await self.proc.wait()
            if self._stopping:
                return
            self._remove_files(self.proc.pid)
            log.error("embedded OVSDB server (pid %d) exited with %s; restarting",
                      self.proc.pid, rc)
            if time.monotonic() - started > 30:
                backoff = 0.1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 8.0)
            self.restarts += 1
            try:
                await self._spawn()
            except OSError:
                log.exception("cannot restart the OVSDB server")

    def _remove_files(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ctl_path(self.rundir, PROGRAM, pid))
        path = pidfile_path(self.rundir, PROGRAM)
        try:
            with open(path) as f:
                if f.read().strip() == str(pid):
                    os.unlink(path)
        except (OSError, ValueError):
            pass
