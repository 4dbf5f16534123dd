"""The ovsbpfd process: one asyncio loop driving every part of the switch.

Start order: pidfile, embedded OVSDB child (unless an external DB is given),
datapath and its backer, the vswitch (DB rows -> bridges), netdev watching,
then the unixctl socket.  SIGTERM/SIGINT or ``ovs-appctl exit`` stop it;
plain exit leaves the datapath pinned and attached (forwarding goes on, as
OVS leaves the kernel datapath), ``exit --cleanup`` removes it.

A restart is seamless: the datapath keeps the previous run's ports and
flows, the vswitch adopts the ports by name and ifindex (same datapath port
numbers), and once the first configuration is applied the backer takes over
the flows and the ports nobody claimed are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import os
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ovsbpfd import __version__, coverage
from ovsbpfd.dbchild import OvsdbChild
from ovsbpfd.event_loop import EVENT_LOOP_ENV, event_loop_factory
from ovsbpfd.logsetup import vlog_close, vlog_list, vlog_reopen, vlog_set
from ovsbpfd.netdev import OWNER_ALIAS, AsyncNetdevs, LinkWatcher
from ovsbpfd.rundir import PidFile, ctl_path
from ovsbpfd.switch_commands import SwitchCommands
from ovsbpfd.unixctl import UnixctlError, UnixctlServer
from ovsbpfd.vswitch.bridges import BridgeSet
from ovsbpfd.vswitch.ofproto_factory import OfprotoFactory
from ovsbpfd.vswitch.vswitch import Vswitch, schema_path

log = logging.getLogger(__name__)

PROGRAM = "ovsbpfd"


@dataclass
class DaemonConfig:
    rundir: str
    dbfile: str
    pidfile: str
    datapath: str = "bpf"
    pin_root: str = "/sys/fs/bpf/ovsbpfd"
    db_remote: str | None = None
    db_log_file: str | None = None
    extra_db_remotes: list[str] = field(default_factory=list)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Daemon:
    def __init__(self, cfg: DaemonConfig, ready: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self._ready = ready
        self._stop = asyncio.Event()
        self.cleanup = False
        self.pidfile = PidFile(cfg.pidfile)
        self.dbchild: OvsdbChild | None = None
        self.dpif: Any = None
        self.backer: Any = None
        self.netdevs: AsyncNetdevs | None = None
        self.bridges: BridgeSet | None = None
        self.vswitch: Vswitch | None = None
        self.watcher: LinkWatcher | None = None
        self.unixctl: UnixctlServer | None = None
        self._coverage_task: asyncio.Task | None = None

    # ------------------------------------------------------------ lifecycle
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        os.makedirs(self.cfg.rundir, exist_ok=True)
        self.pidfile.acquire()
        try:
            await self._start()
            log.info("%s %s running (pid %d)", PROGRAM, __version__, os.getpid())
            if self._ready is not None:
                self._ready()
            await self._stop.wait()
            return 0
        finally:
            await self._shutdown()
            self.pidfile.release()

    def request_stop(self, cleanup: bool = False) -> None:
        self.cleanup = self.cleanup or cleanup
        self._stop.set()

    async def _start(self) -> None:
        cfg = self.cfg
        if cfg.db_remote:
            remote = cfg.db_remote
        else:
            self.dbchild = OvsdbChild(cfg.rundir, cfg.dbfile, schema_path(),
                                      cfg.extra_db_remotes, log_file=cfg.db_log_file)
            await self.dbchild.start()
            remote = f"unix:{self.dbchild.sock_path}"

        from ovsbpfd.dpif import open_dpif
        from ovsbpfd.ofproto.backer import DatapathBacker

        dp_kwargs: dict[str, Any] = {}
        if cfg.datapath == "bpf":
            dp_kwargs["pin_root"] = cfg.pin_root
        # On a worker thread: a provider may use blocking netlink helpers that
        # refuse to run on a thread with a running event loop.
        self.dpif = await asyncio.to_thread(open_dpif, cfg.datapath, **dp_kwargs)
        self.backer = DatapathBacker(self.dpif)
        await _maybe_await(self.backer.start())

        owner = f"{OWNER_ALIAS} {cfg.pin_root}" if cfg.datapath == "bpf" else (
            f"{OWNER_ALIAS} {cfg.datapath} {os.path.abspath(cfg.rundir)}")
        self.netdevs = AsyncNetdevs(owner)
        self.bridges = BridgeSet(self.netdevs, OfprotoFactory(self.backer, cfg.rundir),
                                 on_first_apply=self._take_over_datapath)
        self.vswitch = Vswitch(remote, self.bridges, version=__version__,
                               datapath_types=[cfg.datapath])
        await self.vswitch.start()
        self.watcher = LinkWatcher(self.vswitch.netdevs_changed)
        self.watcher.start()

        self._coverage_task = asyncio.get_running_loop().create_task(coverage.run_forever())
        self.unixctl = UnixctlServer(ctl_path(cfg.rundir, PROGRAM, os.getpid()),
                                     f"{PROGRAM} (Open vSwitch) {__version__}")
        self._register_commands(self.unixctl)
        await self.unixctl.start()

    async def _take_over_datapath(self) -> None:
        """After the first DB reconcile: adopt the previous run's flows, drop its extra ports.

        Until now the old flows kept forwarding untouched; the ports the
        configuration still has were adopted by the vswitch in the meantime.
        """
        await self.backer.finish_takeover()

    async def _shutdown(self) -> None:
        """Undo _start in reverse; every step runs even if an earlier one failed."""
        steps: list[tuple[str, Callable[[], Any]]] = []
        if self._coverage_task is not None:
            steps.append(("coverage sampling", self._coverage_task.cancel))
        if self.unixctl is not None:
            steps.append(("unixctl", self.unixctl.stop))
        if self.watcher is not None:
            steps.append(("netdev watcher", self.watcher.stop))
        if self.vswitch is not None:
            steps.append(("vswitch", self.vswitch.stop))
        if self.bridges is not None:
            bridges = self.bridges
            steps.append(("bridges", bridges.destroy_all if self.cleanup else bridges.close))
        if self.backer is not None:
            steps.append(("datapath backer", self.backer.stop))
        if self.dpif is not None:
            dp_step = self.dpif.destroy if self.cleanup else self.dpif.close
            steps.append(("datapath", lambda: asyncio.to_thread(dp_step)))
        if self.netdevs is not None:
            steps.append(("netdevs", self.netdevs.close))
        if self.dbchild is not None:
            steps.append(("OVSDB server", self.dbchild.stop))
        for what, step in steps:
            try:
                await _maybe_await(step())
            except Exception:
                log.exception("stopping %s failed", what)
        log.info("%s exiting%s", PROGRAM, " (datapath removed)" if self.cleanup else "")

    # ------------------------------------------------------------ unixctl
    def _register_commands(self, server: UnixctlServer) -> None:
        server.register("exit", "[--cleanup]", 0, 1, self._cmd_exit)
        server.register("ofproto/trace", "bridge flow", 2, 2, self._cmd_trace)
        server.register("dpif/show", "", 0, 0, self._cmd_dpif_show)
        server.register("vlog/set", "{spec | PATTERN:destination:pattern}", 1, 64, vlog_set)
        server.register("vlog/list", "", 0, 0, vlog_list)
        server.register("vlog/reopen", "", 0, 0, vlog_reopen)
        server.register("vlog/close", "", 0, 0, vlog_close)
        server.register("memory/show", "", 0, 0, self._cmd_memory_show)
        server.register("coverage/show", "", 0, 0, lambda _args: coverage.COVERAGE.show())
        server.register("coverage/read-counter", "COUNTER", 1, 1, _cmd_read_counter)
        SwitchCommands(PROGRAM, self.bridges, self.backer).register(server)

    def _cmd_exit(self, args: list[str]) -> str:
        if args and args[0] != "--cleanup":
            raise UnixctlError(f"exit: unknown option {args[0]}")
        self.request_stop(cleanup=bool(args))
        return ""

    def _cmd_trace(self, args: list[str]) -> str:
        core = self.bridges.bridge(args[0]) if self.bridges else None
        if core is None:
            raise UnixctlError(f"{args[0]}: unknown bridge")
        try:
            return core.trace(args[1])
        except ValueError as exc:
            raise UnixctlError(str(exc)) from exc

    def _cmd_dpif_show(self, args: list[str]) -> str:
        assert self.bridges is not None
        stats = self.dpif.stats()
        lines = [f"{self.cfg.datapath}@{self.dpif.name}: hit:{stats.n_hit} missed:{stats.n_missed}"]
        for name in sorted(self.bridges.bridges):
            live = self.bridges.bridges[name]
            lines.append(f"  {name}:")
            entries = []
            if live.local is not None and live.local_error is None:
                entries.append((name, 65534, "internal"))
            entries += [(a.name, a.ofport, a.kind) for a in live.ifaces.values()]
            for port_name, ofport, kind in sorted(entries, key=lambda e: e[1]):
                lines.append(f"    {port_name} {ofport}: ({kind})")
        return "\n".join(lines) + "\n"

    def _cmd_memory_show(self, args: list[str]) -> str:
        assert self.bridges is not None
        n_bridges = len(self.bridges.bridges)
        n_ports = sum(len(b.ifaces) + (b.local is not None) for b in self.bridges.bridges.values())
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        n_flows = self.dpif.stats().n_flows if self.dpif is not None else 0
        upcalls = self.backer.upcall_count() if hasattr(self.backer, "upcall_count") else 0
        return (f"bridges:{n_bridges} datapath-flows:{n_flows} ports:{n_ports} "
                f"upcalls:{upcalls} max-rss-kB:{rss_kb}\n")


def _cmd_read_counter(args: list[str]) -> str:
    total = coverage.COVERAGE.read_counter(args[0])
    if total is None:
        raise UnixctlError("No such counter")
    return f"{total}\n"


def tune_gc() -> None:
    """Rules, megaflow records and MAC entries are long-lived, while every
    upcall and FLOW_MOD allocates many short-lived objects: with Python's
    default thresholds a full collection walking every rule ran every few
    thousand upcalls (about a third of the time of an upcall with 10,000 rules).
    Young collections now run every 20,000 allocations instead of 700, and
    full ones far more rarely (as in the OVSDB child)."""
    gc.set_threshold(20_000, 20, 100)


def run_daemon(cfg: DaemonConfig, ready: Callable[[], None] | None = None,
               event_loop: str | None = None) -> int:
    tune_gc()
    name, factory = event_loop_factory(event_loop)
    os.environ[EVENT_LOOP_ENV] = name  # the OVSDB child runs on the same loop
    log.info("event loop: %s", name)

    async def main() -> int:
        return await Daemon(cfg, ready).run()

    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())
    return 0
