"""Debian's ovs-vswitchd and ovsdb-server, run by hand as a reference switch.

The reference uses the userspace datapath (``datapath_type=netdev``), so it
needs no kernel module.  It lives in its own rundir/dbdir with its own
database, and ovs-vswitchd runs inside a network namespace of its own: the
tap devices it makes (``ovs-netdev`` and one per bridge) and the veth ports
a test gives it can then reuse the names the ovsbpfd side uses, and can never
be confused with devices of the root namespace.  ``stop()`` ends both
processes by pid and deletes exactly the devices and the namespace it made.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.system.netns import run

Result = subprocess.CompletedProcess
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
NETDEV_DATAPATH_DEVICE = "ovs-netdev"  # the tap the netdev datapath creates


def reference_available() -> bool:
    """True when the Debian Open vSwitch daemons and schema are installed."""
    return all(shutil.which(tool) for tool in ("ovs-vswitchd", "ovsdb-server", "ovsdb-tool")) \
        and os.path.exists(SCHEMA)


class RefVswitchd:
    """A private ovsdb-server + ovs-vswitchd pair with helpers for the OVS clients."""

    def __init__(self, workdir: Path, netns: str) -> None:
        self.workdir = workdir
        self.rundir = workdir / "run"
        self.dbdir = workdir / "db"
        self.netns = netns
        self.env = dict(os.environ, OVS_RUNDIR=str(self.rundir), OVS_DBDIR=str(self.dbdir),
                        OVS_LOGDIR=str(workdir))
        self.ovsdb: subprocess.Popen | None = None
        self.vswitchd: subprocess.Popen | None = None
        self.bridges: list[str] = []
        self.veths: list[str] = []
        self._netns_made = False

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 20.0) -> RefVswitchd:
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.dbdir.mkdir(parents=True, exist_ok=True)
        db = self.dbdir / "conf.db"
        subprocess.run(["ovsdb-tool", "create", str(db), SCHEMA], check=True,
                       capture_output=True)
        run("ip", "netns", "add", self.netns)
        self._netns_made = True
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        db_sock = self.rundir / "db.sock"
        self.ovsdb = subprocess.Popen(
            ["ovsdb-server", str(db), f"--remote=punix:{db_sock}",
             f"--unixctl={self.rundir / 'ovsdb-server.ctl'}", "--no-chdir",
             f"--log-file={self.workdir / 'ovsdb-server.log'}"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_for(db_sock, self.ovsdb, timeout)
        self.vsctl("--no-wait", "init")
        # `ip netns exec` execs the daemon, so the Popen pid is ovs-vswitchd's.
        self.vswitchd = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "ovs-vswitchd", f"unix:{db_sock}",
             f"--unixctl={self.vswitchd_ctl}", "--no-chdir",
             f"--log-file={self.workdir / 'ovs-vswitchd.log'}"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_for(Path(self.vswitchd_ctl), self.vswitchd, timeout)
        self.vsctl("--timeout=10", "show")  # waits for nothing, proves the db answers
        return self

    @property
    def vswitchd_ctl(self) -> str:
        return str(self.rundir / "ovs-vswitchd.ctl")

    @staticmethod
    def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.args[0]} did not come up ({path})")
            time.sleep(0.05)

    def stop(self) -> None:
        """End both daemons by pid, then remove exactly what they and we made."""
        if self.vswitchd is not None and self.vswitchd.poll() is None:
            self.appctl("exit", "--cleanup", check=False, timeout=10)
            _end(self.vswitchd)
        if self.ovsdb is not None:
            _end(self.ovsdb)
        if self._netns_made:
            for device in [*self.bridges, NETDEV_DATAPATH_DEVICE, *self.veths]:
                run("ip", "-n", self.netns, "link", "del", device, check=False)
            run("ip", "netns", "del", self.netns, check=False)
            self._netns_made = False

    # ------------------------------------------------------------ topology
    def add_bridge(self, name: str, *settings: str) -> None:
        """A netdev-datapath bridge; ``settings`` are extra ``ovs-vsctl set`` args."""
        extra = ["--", "set", "Bridge", name, *settings] if settings else []
        self.vsctl("add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev",
                   *extra)
        self.bridges.append(name)

    def add_veth_port(self, bridge: str, name: str, ofport: int) -> None:
        """A veth ``name`` (peer ``name``p, both up, IPv6 off) added as ``ofport``."""
        peer = name + "p"
        run("ip", "-n", self.netns, "link", "add", name, "type", "veth", "peer", "name", peer)
        self.veths.append(name)
        for device in (name, peer):
            self.exec("sysctl", "-qw", f"net.ipv6.conf.{device}.disable_ipv6=1")
            run("ip", "-n", self.netns, "link", "set", device, "up")
        self.vsctl("add-port", bridge, name, "--", "set", "Interface", name,
                   f"ofport_request={ofport}")

    def exec(self, *argv: str, check: bool = True) -> Result:
        return run("ip", "netns", "exec", self.netns, *argv, check=check)

    # ------------------------------------------------------------ clients
    def _run(self, argv: list[str], check: bool, timeout: float) -> Result:
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): "
                                 f"{result.stderr}")
        return result

    def vsctl(self, *args: str, check: bool = True, timeout: float = 30) -> Result:
        return self._run(["ovs-vsctl", *args], check, timeout)

    def ofctl(self, *args: str, check: bool = True, timeout: float = 30) -> Result:
        return self._run(["ovs-ofctl", "-O", "OpenFlow13", *args], check, timeout)

    def appctl(self, *args: str, check: bool = True, timeout: float = 30) -> Result:
        return self._run(["ovs-appctl", "-t", self.vswitchd_ctl, *args], check, timeout)


def _end(proc: subprocess.Popen) -> None:
    """SIGTERM one process we started, SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
