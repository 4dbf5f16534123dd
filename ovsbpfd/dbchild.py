"""Run the embedded OVSDB server as a supervised child process.

ovsdb-server runs beside ovs-vswitchd in OVS; here it runs as our child so a
burst of datapath work never stalls ``ovs-vsctl`` (and vice versa).  We write
``ovsdb-server.pid`` for it, so ``ovs-appctl -t ovsdb-server`` finds its
control socket, and start it again if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import socket
import sys
import time

from ovsbpfd.rundir import ctl_path, pidfile_path, write_plain_pidfile

log = logging.getLogger(__name__)

PROGRAM = "ovsdb-server"


def child_command(
    rundir: str, dbfile: str, schema: str, remotes: list[str], python: str = sys.executable
) -> list[str]:
    """argv that starts the server; the shell's ``exec`` keeps its pid, so the
    control socket can be named after the pid before the process exists."""
    args = [python, "-m", "ovsbpfd.ovsdb"]
    for remote in remotes:
        args += ["--remote", remote]
    args += ["--schema", schema, "--die-with-parent"]
    quoted = " ".join(shlex.quote(a) for a in args)
    ctl = shlex.quote(os.path.join(rundir, f"{PROGRAM}.")) + "$$.ctl"
    return ["/bin/sh", "-c", f"exec {quoted} --unixctl {ctl} {shlex.quote(dbfile)}"]


def socket_accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


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
        self.remotes = [f"punix:{self.sock_path}", *(extra_remotes or [])]
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
        write_plain_pidfile(pidfile_path(self.rundir, PROGRAM), self.proc.pid)
        log.info("started embedded OVSDB server, pid %d", self.proc.pid)

    async def _watch_loop(self) -> None:
        backoff = 0.5
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
                backoff = 0.5
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
