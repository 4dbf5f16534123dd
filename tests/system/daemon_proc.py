"""Run a real ``ovsbpfd`` process for system tests, and the stock OVS clients.

The daemon gets its own rundir, dbdir and BPF pin root, so it never touches a
daemon the machine may be running, and ``stop()`` removes what it left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.system.netns import Host

Result = subprocess.CompletedProcess


class Daemon:
    def __init__(self, workdir: Path, datapath: str = "bpf") -> None:
        self.rundir = workdir / "run"
        self.dbdir = workdir / "db"
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.dbdir.mkdir(parents=True, exist_ok=True)
        self.pin_root = f"/sys/fs/bpf/ovsbpfd-test-{os.getpid()}-{id(self) % 10000}"
        self.datapath = datapath
        self.log = workdir / "ovsbpfd.log"
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, OVS_RUNDIR=str(self.rundir), OVS_DBDIR=str(self.dbdir))

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 20.0) -> Daemon:
        argv = [
            sys.executable, "-m", "ovsbpfd",
            "--rundir", str(self.rundir), "--dbdir", str(self.dbdir),
            "--datapath", self.datapath, "--pin-root", self.pin_root,
            f"--log-file={self.log}",
        ]
        self.proc = subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ovsbpfd exited with {self.proc.returncode}:\n{self.log_text()}")
            if self.ctl_path().exists() and (self.rundir / "db.sock").exists():
                if self.vsctl("--timeout=5", "show", check=False).returncode == 0:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"ovsbpfd did not come up:\n{self.log_text()}")

    def ctl_path(self) -> Path:
        assert self.proc is not None
        return self.rundir / f"ovsbpfd.{self.proc.pid}.ctl"

    def stop(self, cleanup: bool = True) -> int | None:
        """SIGTERM the daemon; with ``cleanup`` also remove its datapath state."""
        if self.proc is None:
            return None
        if cleanup and self.proc.poll() is None:
            self.appctl("exit", "--cleanup", check=False, timeout=20)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if cleanup:
            shutil.rmtree(self.pin_root, ignore_errors=True)
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------ clients
    def _run(self, argv: list[str], check: bool, timeout: float) -> Result:
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}\n"
                f"daemon log:\n{self.log_text()}")
        return result

    def vsctl(self, *args: str, check: bool = True, timeout: float = 30) -> Result:
        return self._run(["ovs-vsctl", *args], check, timeout)

    def ofctl(self, *args: str, check: bool = True, timeout: float = 30) -> Result:
        return self._run(["ovs-ofctl", "-O", "OpenFlow13", *args], check, timeout)

    def appctl(self, *args: str, check: bool = True, timeout: float = 30) -> Result:
        return self._run(["ovs-appctl", "-t", str(self.ctl_path()), *args], check, timeout)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def dummy_daemon(workdir: Path) -> Iterator[Daemon]:
    """A started daemon on the dummy datapath, stopped and cleaned up after."""
    d = Daemon(workdir, datapath="dummy")
    try:
        yield d.start()
    finally:
        d.stop(cleanup=True)


@contextlib.contextmanager
def bridge_with_hosts(daemon: Daemon, hosts: list[Host], bridge: str) -> Iterator[None]:
    """The daemon running with ``bridge`` and every host's veth on it.

    ``bridge`` names a device in the root namespace (the LOCAL port), so it
    must be unique to the test process (``unique_name``): a ``br0`` that
    something else on the machine made is not ours, and the bridge would
    come up without its LOCAL port.

    Whatever happens, the daemon is stopped with its datapath cleaned up and
    the hosts are removed.
    """
    try:
        daemon.start()
        for host in hosts:
            host.create()
        daemon.vsctl("add-br", bridge)
        for host in hosts:
            daemon.vsctl("add-port", bridge, host.port)
        yield
    finally:
        try:
            daemon.stop(cleanup=True)
        finally:
            for host in hosts:
                host.close()
