"""All OpenFlow connections of one bridge, and fan-out of async messages.

The bridge's management socket ``punix:{rundir}/{bridge}.mgmt`` accepts
*service* connections (ovs-ofctl).  ``set_controllers`` keeps the set of
Controller-row connections equal to the wanted ``ControllerSpec``s: active
``tcp:``/``ssl:``/``unix:`` targets reconnect with backoff (1 s doubling up
to the row's max_backoff), passive ``ptcp:``/``pssl:``/``punix:`` targets
listen.  ``set_protocols`` (Bridge.protocols) and ``set_ssl``
(Open_vSwitch.ssl) apply to every connection made afterwards; a change of
protocols drops the connections made under the old set, as ovs-vswitchd does.

``punix:{rundir}/{bridge}.snoop`` lets ``ovs-ofctl snoop`` watch one
primary controller channel (snoop.py says which).

The manager is the core's ``SwitchListener``: PACKET_IN, FLOW_REMOVED and
PORT_STATUS go to each connection whose kind, role and async config want
them, packet-ins through the controller's rate limiter (rate_limit.py:
queued per port and sent as tokens come, as ovs-vswitchd's pinsched).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import ssl
import stat
import time
from collections.abc import Callable, Iterable, Sequence

from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow.connection import (
    PRIMARY,
    PROTOCOL_ERROR_TEXT,
    SERVICE,
    TIMEOUT_TEXT,
    AsyncMasks,
    OfConnection,
)
from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec
from ovsbpfd.ofproto.openflow.dispatch import Dispatcher, PortAdminHook
from ovsbpfd.ofproto.openflow.messages import FlowRemovedMessage, PacketInMessage, PortStatus
from ovsbpfd.ofproto.openflow.rate_limit import PacketInLimiter
from ovsbpfd.ofproto.openflow.roles import RoleArbiter
from ovsbpfd.ofproto.openflow.snoop import SnoopListener, SnoopTap
from ovsbpfd.ofproto.openflow.targets import Target, parse_target
from ovsbpfd.ofproto.openflow.tls import SslSettings, TlsConfigError, make_context
from ovsbpfd.ofproto.switch_api import SwitchCore
from ovsbpfd.ofproto.types import FlowRemoved, OfPort, PacketIn

log = logging.getLogger(__name__)

MIN_BACKOFF = 1.0
MGMT_PROBE_INTERVAL = 60.0  # ovs-vswitchd's probe interval on <bridge>.mgmt
MGMT_SOCKET_MODE = 0o750
PROTOCOL_VERSIONS = {f"OpenFlow1{n}": n + 1 for n in range(6)}
NO_ASYNC = AsyncMasks((0, 0), (0, 0), (0, 0))
# Which controller channel a snoop client watches: the first of the highest role.
SNOOP_RANK = {c.OFPCR_ROLE_MASTER: 3, c.OFPCR_ROLE_EQUAL: 2, c.OFPCR_ROLE_SLAVE: 1}
# Controller.status last_error texts: the strerror() ovs-vswitchd writes.
EOF_TEXT = "End of file"


def _remove_stale_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


def initial_async_masks(spec: ControllerSpec) -> AsyncMasks:
    """The spec's defaults, or none at all with enable_async_messages=false."""
    return AsyncMasks() if spec.enable_async else dataclasses.replace(NO_ASYNC)


def _apply_rate_limit(conn: OfConnection, spec: ControllerSpec) -> None:
    """A changed Controller row: new limits keep the backlog (as pinsched_set_limits);
    no limit any more drops it."""
    limiter = conn.packet_in_limiter
    if spec.rate_limit is None:
        if limiter is not None:
            limiter.close()
        conn.packet_in_limiter = None
    elif limiter is None:
        conn.packet_in_limiter = PacketInLimiter.for_spec(spec, conn.send_async)
    else:
        limiter.set_limits(spec.rate_limit, spec.burst_limit)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return PROTOCOL_ERROR_TEXT
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    if isinstance(exc, TimeoutError):
        return TIMEOUT_TEXT
    return str(exc)


class ControllerLink:
    """One Controller target: its listener or reconnect loop and its connections."""

    def __init__(self, manager: ConnectionManager, spec: ControllerSpec) -> None:
        self.manager = manager
        self.spec = spec
        self.conns: list[OfConnection] = []
        self.state = "CONNECTING"
        self.last_error = ""
        self.last_connected: float | None = None
        self.last_disconnected: float | None = None
        self.parsed: Target | None = None
        self._task: asyncio.Task | None = None
        self._server: asyncio.AbstractServer | None = None
        self._socket_path: str | None = None
        self.tap = SnoopTap()  # snoop clients of an active target, across reconnections

    @property
    def target(self) -> str:
        return self.spec.target

    @property
    def passive(self) -> bool:
        return self.parsed is not None and self.parsed.passive

    def start(self) -> None:
        try:
            self.parsed = parse_target(self.target)
        except ValueError as exc:
            self._fail(str(exc))
            return
        if self.parsed.passive:
            self._task = asyncio.ensure_future(self._listen(self.parsed))
        else:
            self._task = asyncio.ensure_future(self._connect_loop(self.parsed))

    def reconfigure(self, spec: ControllerSpec) -> None:
        """New settings for the same target, applied without reconnecting."""
        self.spec = spec
        for conn in self.conns:
            conn.probe_interval = spec.probe_interval
            _apply_rate_limit(conn, spec)
            if not conn.async_set_by_peer:  # as OVS: the row decides until SET_ASYNC
                conn.async_masks = initial_async_masks(spec)

    def _fail(self, error: str) -> None:
        log.warning("controller %s: %s", self.target, error)
        self.last_error = error
        self.state = "VOID"

    async def _listen(self, t: Target) -> None:
        loop = asyncio.get_running_loop()
        try:
            if t.method in ("ptcp", "pssl"):
                tls = make_context(self.manager.ssl, server_side=True) \
                    if t.method == "pssl" else None
                self._server = await loop.create_server(
                    self._protocol, t.host, t.port, reuse_address=True, ssl=tls)
            else:
                _remove_stale_socket(t.path)
                self._server = await loop.create_unix_server(self._protocol, t.path)
                self._socket_path = t.path
            self.state = "LISTENING"
        except TlsConfigError as exc:
            self._fail(f"cannot listen: {exc}")
        except OSError as exc:
            self._fail(f"cannot listen: {exc.strerror or exc}")

    def _protocol(self) -> OfConnection:
        return self.manager.new_connection(self.spec.kind, self.target, self,
                                           self.spec.probe_interval)

    async def _connect_loop(self, t: Target) -> None:
        loop = asyncio.get_running_loop()
        backoff = MIN_BACKOFF
        while True:
            self.state = "CONNECTING"
            started = time.monotonic()
            try:
                tls = make_context(self.manager.ssl, server_side=False) \
                    if t.method == "ssl" else None
                conn = self._protocol()

                def factory(c: OfConnection = conn) -> OfConnection:
                    return c

                if t.method in ("tcp", "ssl"):
                    connect = loop.create_connection(
                        factory, t.host, t.port, ssl=tls,
                        server_hostname="" if tls is not None else None)
                else:
                    connect = loop.create_unix_connection(factory, t.path)
                await asyncio.wait_for(connect, max(backoff, MIN_BACKOFF))
                if conn.run_task is not None:
                    await conn.run_task
                self.last_error = conn.disconnect_reason or EOF_TEXT
            except TlsConfigError as exc:
                log.warning("controller %s: %s", self.target, exc)
                self.last_error = PROTOCOL_ERROR_TEXT
            except (OSError, TimeoutError) as exc:
                if isinstance(exc, ssl.SSLError):
                    log.warning("controller %s: TLS handshake failed: %s", self.target, exc)
                self.last_error = _error_text(exc)
            # As rconn: a connection that lasted past its backoff starts over at 1 s.
            if time.monotonic() - started >= backoff:
                backoff = MIN_BACKOFF
            self.state = "BACKOFF"
            self.manager.status_changed()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max(self.spec.max_backoff, MIN_BACKOFF))

    def connected(self) -> list[OfConnection]:
        return [conn for conn in self.conns if conn.negotiated and conn.is_open]

    def on_negotiated(self, conn: OfConnection) -> None:
        self.last_connected = time.monotonic()
        if not self.passive:
            self.tap.follow(conn)
        self.manager.status_changed()

    def on_closed(self, conn: OfConnection) -> None:
        self.tap.unfollow(conn)
        if conn.negotiated:
            self.last_disconnected = time.monotonic()
        if not self.passive:
            self.last_error = conn.disconnect_reason or EOF_TEXT
        self.manager.status_changed()

    def status(self) -> dict:
        """The connection's state as the fail modes and ``controller_status`` see it."""
        live = self.connected()
        state = ("IDLE" if live[0].probe_pending else "ACTIVE") if live else self.state
        status = {"state": state}
        if self.last_error:
            status["last_error"] = self.last_error
        now = time.monotonic()
        if self.last_connected is not None:
            status["sec_since_connect"] = str(int(now - self.last_connected))
        if self.last_disconnected is not None:
            status["sec_since_disconnect"] = str(int(now - self.last_disconnected))
        role = c.ROLE_NAMES.get(live[0].role, "other") if live else None
        return {"is_connected": bool(live), "role": role, "status": status}

    def db_status(self) -> dict:
        """What ovs-vswitchd writes into the Controller row: nothing for a listener."""
        if self.parsed is None or self.passive:  # a listener, or no target at all
            return {"is_connected": False, "role": None, "status": {}}
        return self.status()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._server is not None:
            self._server.close()
        if self._socket_path:
            _remove_stale_socket(self._socket_path)
        self.tap.close()
        for conn in list(self.conns):
            conn.close()


class ConnectionManager:
    """The OpenFlow front end of one bridge."""

    def __init__(self, core: SwitchCore, rundir: str) -> None:
        self.core = core
        self.rundir = rundir
        self.mgmt_path = os.path.join(rundir, f"{core.name}.mgmt")
        self.snoop = SnoopListener(os.path.join(rundir, f"{core.name}.snoop"),
                                   self._snoop_tap, lambda: self.version_bitmap)
        self._conn_taps: dict[OfConnection, SnoopTap] = {}  # passive targets' channels
        self.arbiter = RoleArbiter()
        self.dispatcher = Dispatcher(core, self.arbiter, self.all_connections)
        self._conns: set[OfConnection] = set()
        self._links: dict[str, ControllerLink] = {}
        self._mgmt_server: asyncio.AbstractServer | None = None
        self._pending_specs: list[ControllerSpec] | None = None
        self.version_bitmap = 1 << c.OFP_VERSION
        self.protocols: frozenset[int] = frozenset()  # configured; empty: the default
        self.ssl: SslSettings | None = None
        self._status_listener: Callable[[], None] | None = None
        # Changes whenever controller_status or has_controllers_connected may
        # answer differently (see fail_open.ControllerMonitor).
        self.status_epoch = 0

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        os.makedirs(self.rundir, exist_ok=True)
        _remove_stale_socket(self.mgmt_path)
        loop = asyncio.get_running_loop()
        self._mgmt_server = await loop.create_unix_server(
            lambda: self.new_connection(SERVICE, self.mgmt_path, None, MGMT_PROBE_INTERVAL),
            self.mgmt_path)
        os.chmod(self.mgmt_path, MGMT_SOCKET_MODE)
        await self.snoop.start()
        self.core.add_listener(self)
        if self._pending_specs is not None:
            specs, self._pending_specs = self._pending_specs, None
            self.set_controllers(specs)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.core.remove_listener(self)
        if self._mgmt_server is not None:
            self._mgmt_server.close()
            self._mgmt_server = None
            _remove_stale_socket(self.mgmt_path)
        await self.snoop.stop()
        for link in list(self._links.values()):
            await link.stop()
        self._links.clear()
        self.status_epoch += 1
        tasks = []
        for conn in list(self._conns):
            conn.close()
            if conn.run_task is not None:
                tasks.append(conn.run_task)
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        self._conns.clear()

    # ------------------------------------------------------------ connections
    def new_connection(self, kind: str, name: str, link: ControllerLink | None,
                       probe_interval: float | None) -> OfConnection:
        """A protocol instance for a new socket; it starts serving at once."""
        conn = OfConnection(self.dispatcher, kind, name, probe_interval,
                            on_connected=lambda c: self._serve(c, link))
        conn.version_bitmap = self.version_bitmap
        if link is not None:
            conn.async_masks = initial_async_masks(link.spec)
            conn.packet_in_limiter = PacketInLimiter.for_spec(link.spec, conn.send_async)
        return conn

    def _serve(self, conn: OfConnection, link: ControllerLink | None) -> None:
        """Start serving a connection whose socket is now up."""
        self._conns.add(conn)
        if link is not None:
            link.conns.append(conn)
            conn.on_negotiated = link.on_negotiated

        async def serve() -> None:
            log.info("%s: %s connection %s opened", self.core.name, conn.kind, conn.name)
            try:
                await conn.run()
            finally:
                self.forget(conn, link)
                log.info("%s: %s connection %s closed%s", self.core.name, conn.kind,
                         conn.name, f" ({conn.last_error})" if conn.last_error else "")

        conn.run_task = asyncio.ensure_future(serve())

    def forget(self, conn: OfConnection, link: ControllerLink | None = None) -> None:
        conn.close()
        self._conns.discard(conn)
        if conn.packet_in_limiter is not None:  # its backlog goes nowhere now
            conn.packet_in_limiter.close()
        tap = self._conn_taps.pop(conn, None)
        if tap is not None:  # a passive target's channel takes its snoopers along
            tap.close()
        if link is not None and conn in link.conns:
            link.conns.remove(conn)
            link.on_closed(conn)

    def all_connections(self) -> list[OfConnection]:
        return [conn for conn in self._conns if conn.negotiated]

    def _snoop_tap(self) -> SnoopTap | None:
        """The tap of the channel a new snoop client watches, None if there is none.

        An active target counts whether connected or not (its role is then
        equal); a passive one counts once per connection it accepted."""
        best: ControllerLink | OfConnection | None = None
        best_rank = 0
        for link in self._links.values():
            if link.spec.kind != PRIMARY or link.parsed is None:
                continue
            if link.passive:
                candidates: list[tuple[int, ControllerLink | OfConnection]] = [
                    (conn.role, conn) for conn in link.connected()]
            else:
                live = link.connected()
                candidates = [(live[0].role if live else c.OFPCR_ROLE_EQUAL, link)]
            for role, owner in candidates:
                if SNOOP_RANK.get(role, 0) > best_rank:
                    best, best_rank = owner, SNOOP_RANK.get(role, 0)
        if isinstance(best, ControllerLink):
            return best.tap
        if best is None:
            return None
        tap = self._conn_taps.get(best)
        if tap is None:
            tap = self._conn_taps[best] = SnoopTap()
            tap.follow(best)
        return tap

    # ------------------------------------------------------------ configuration
    def set_protocols(self, protocols: Iterable[str]) -> None:
        """Bridge.protocols ("OpenFlow10" ... "OpenFlow15"; empty: the default).

        Only OpenFlow 1.3 is implemented, so a list without OpenFlow13 makes
        every new connection fail version negotiation (the HELLO then names
        the configured versions, as ovs-vswitchd's does).  As in ovs-vswitchd, a
        change drops the connections made under the old set (controllers
        then reconnect)."""
        wanted = frozenset(PROTOCOL_VERSIONS[p] for p in protocols if p in PROTOCOL_VERSIONS)
        if wanted == self.protocols:
            return
        self.protocols = wanted
        # The HELLO offers OpenFlow 1.3 when allowed; otherwise the configured
        # versions, so that peers read the refusal as ovs-vswitchd words it.
        self.version_bitmap = 1 << c.OFP_VERSION if not wanted or c.OFP_VERSION in wanted \
            else sum(1 << v for v in wanted)
        for conn in list(self._conns):
            conn.close()
        for link in list(self._links.values()):
            if not link.passive:
                self._restart(link)

    def set_ssl(self, settings: SslSettings | None) -> None:
        """Open_vSwitch.ssl: used by every later ssl: connection; pssl: listeners reopen."""
        if settings == self.ssl:
            return
        self.ssl = settings
        for link in list(self._links.values()):
            if link.parsed is not None and link.parsed.method == "pssl":
                self._restart(link, keep_connections=True)

    def _restart(self, link: ControllerLink, keep_connections: bool = False) -> None:
        self.status_epoch += 1
        fresh = ControllerLink(self, link.spec)
        if keep_connections:
            fresh.conns, link.conns = link.conns, []
            for conn in fresh.conns:
                conn.on_negotiated = fresh.on_negotiated
        self._links[link.target] = fresh
        asyncio.ensure_future(link.stop())
        fresh.start()

    def set_controllers(self, specs: Sequence[str | ControllerSpec]) -> None:
        """Make the controllers exactly ``specs`` (targets, or targets with settings)."""
        wanted: dict[str, ControllerSpec] = {}
        for spec in specs:
            spec = spec if isinstance(spec, ControllerSpec) else \
                ControllerSpec.from_db(spec)
            wanted.setdefault(spec.target, spec)
        self.status_epoch += 1
        if self._mgmt_server is None:  # not started: apply in start()
            self._pending_specs = list(wanted.values())
            return
        for target in list(self._links):
            if target not in wanted:
                link = self._links.pop(target)
                asyncio.ensure_future(link.stop())
        for target, spec in wanted.items():
            link = self._links.get(target)
            if link is None:
                link = ControllerLink(self, spec)
                self._links[target] = link
                link.start()
            elif link.spec != spec:
                if link.spec.kind != spec.kind:
                    link.spec = spec
                    self._restart(link)
                else:
                    link.reconfigure(spec)

    def set_port_admin_hook(self, hook: PortAdminHook | None) -> None:
        """Who takes a netdev up or down when a PORT_MOD changes OFPPC_PORT_DOWN."""
        self.dispatcher.port_admin_hook = hook

    # ------------------------------------------------------------ status
    def set_status_listener(self, listener: Callable[[], None] | None) -> None:
        """Who to tell when a controller connects or disconnects."""
        self._status_listener = listener

    def status_changed(self) -> None:
        self.status_epoch += 1
        if self._status_listener is not None:
            try:
                self._status_listener()
            except Exception:
                log.exception("%s: controller status listener failed", self.core.name)

    def controller_status(self) -> dict[str, dict]:
        """Every primary controller's state (what the fail modes count)."""
        return {target: link.status() for target, link in self._links.items()
                if link.spec.kind == PRIMARY}

    def controller_db_status(self) -> dict[str, dict]:
        """Per target, what ovs-vswitchd would write into its Controller row."""
        return {target: link.db_status() for target, link in self._links.items()}

    def has_controllers_connected(self) -> bool:
        return any(link.connected() for link in self._links.values()
                   if link.spec.kind == PRIMARY)

    # ------------------------------------------------------------ SwitchListener
    def _fan_out(self, kind: str, reason: int, msg) -> None:
        for conn in list(self._conns):
            if conn.wants_async(kind, reason):
                conn.send_async(msg)

    def packet_in(self, msg: PacketIn) -> None:
        encoded = PacketInMessage(msg)
        port: int | None = None
        for conn in list(self._conns):
            if conn.wants_async("packet_in", msg.reason):
                limiter = conn.packet_in_limiter
                if limiter is None:
                    conn.send_async(encoded)
                    continue
                if port is None:
                    in_port = msg.match.get("in_port")
                    port = in_port[0] if in_port is not None else 0
                limiter.submit(msg.reason, port, encoded)

    def flow_removed(self, msg: FlowRemoved) -> None:
        msg = dataclasses.replace(msg, duration_nsec=msg.duration_nsec
                                  - msg.duration_nsec % 1_000_000)
        self._fan_out("flow_removed", msg.reason, FlowRemovedMessage(msg))

    def port_status(self, reason: int, port: OfPort) -> None:
        self._fan_out("port_status", reason, PortStatus(reason, port))

