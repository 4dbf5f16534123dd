"""All OpenFlow connections of one bridge, and fan-out of async messages.

The bridge's management socket ``punix:{rundir}/{bridge}.mgmt`` accepts
*service* connections (ovs-ofctl).  ``set_controllers`` keeps the set of
*primary* (controller) connections equal to the Controller targets: active
``tcp:``/``unix:`` targets reconnect with 1 s .. 8 s backoff, passive
``ptcp:``/``punix:`` targets listen.  The manager is the core's
``SwitchListener``: PACKET_IN, FLOW_REMOVED and PORT_STATUS go to each
connection whose role and async config want them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time

from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow.connection import PRIMARY, SERVICE, OfConnection
from ovsbpfd.ofproto.openflow.dispatch import Dispatcher
from ovsbpfd.ofproto.openflow.messages import FlowRemovedMessage, PacketInMessage, PortStatus
from ovsbpfd.ofproto.openflow.roles import RoleArbiter
from ovsbpfd.ofproto.openflow.targets import Target, parse_target
from ovsbpfd.ofproto.switch_api import SwitchCore
from ovsbpfd.ofproto.types import FlowRemoved, OfPort, PacketIn

log = logging.getLogger(__name__)

MIN_BACKOFF = 1.0
MAX_BACKOFF = 8.0
CONTROLLER_PROBE_INTERVAL = 5.0
MGMT_SOCKET_MODE = 0o750
PROTOCOL_VERSIONS = {f"OpenFlow1{n}": n + 1 for n in range(6)}


def _remove_stale_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


class ControllerLink:
    """One Controller target: its listener or reconnect loop and its connections."""

    def __init__(self, manager: ConnectionManager, target: str) -> None:
        self.manager = manager
        self.target = target
        self.conns: list[OfConnection] = []
        self.state = "CONNECTING"
        self.last_error = ""
        self.changed_at = time.monotonic()
        self._task: asyncio.Task | None = None
        self._server: asyncio.AbstractServer | None = None
        self._socket_path: str | None = None

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.changed_at = time.monotonic()

    def start(self) -> None:
        try:
            parsed = parse_target(self.target)
        except ValueError as exc:
            self._fail(str(exc))
            return
        if parsed.method in ("ssl", "pssl"):
            self._fail("SSL connections are not supported yet")
            return
        if parsed.passive:
            self._task = asyncio.ensure_future(self._listen(parsed))
        else:
            self._task = asyncio.ensure_future(self._connect_loop(parsed))

    def _fail(self, error: str) -> None:
        log.warning("controller %s: %s", self.target, error)
        self.last_error = error
        self._set_state("VOID")

    async def _listen(self, t: Target) -> None:
        try:
            if t.method == "ptcp":
                self._server = await asyncio.get_running_loop().create_server(
                    self._protocol, t.host, t.port, reuse_address=True)
            else:
                _remove_stale_socket(t.path)
                self._server = await asyncio.get_running_loop().create_unix_server(
                    self._protocol, t.path)
                self._socket_path = t.path
            self._set_state("LISTENING")
        except OSError as exc:
            self._fail(f"cannot listen: {exc.strerror or exc}")

    def _protocol(self) -> OfConnection:
        return self.manager.new_connection(PRIMARY, self.target, self,
                                           CONTROLLER_PROBE_INTERVAL)

    async def _connect_loop(self, t: Target) -> None:
        loop = asyncio.get_running_loop()
        backoff = MIN_BACKOFF
        while True:
            self._set_state("CONNECTING")
            try:
                conn = self._protocol()

                def factory(c: OfConnection = conn) -> OfConnection:
                    return c

                if t.method == "tcp":
                    connect = loop.create_connection(factory, t.host, t.port)
                else:
                    connect = loop.create_unix_connection(factory, t.path)
                await asyncio.wait_for(connect, max(backoff, MIN_BACKOFF))
                if conn.run_task is not None:
                    await conn.run_task
                if conn.negotiated:
                    backoff = MIN_BACKOFF
                self.last_error = conn.last_error or "connection closed by peer"
            except (OSError, TimeoutError) as exc:
                self.last_error = str(exc.strerror or exc) if isinstance(exc, OSError) \
                    else "connection timed out"
            self._set_state("BACKOFF")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def connected(self) -> list[OfConnection]:
        return [conn for conn in self.conns if conn.negotiated and conn.is_open]

    def status(self) -> dict:
        live = self.connected()
        state = "ACTIVE" if live else self.state
        status = {"state": state}
        if self.last_error:
            status["last_error"] = self.last_error
        seconds = str(int(time.monotonic() - self.changed_at))
        status["sec_since_connect" if live else "sec_since_disconnect"] = seconds
        role = c.ROLE_NAMES.get(live[0].role, "other") if live else "other"
        return {"is_connected": bool(live), "role": role, "status": status}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._server is not None:
            self._server.close()
        if self._socket_path:
            _remove_stale_socket(self._socket_path)
        for conn in list(self.conns):
            conn.close()


class ConnectionManager:
    """The OpenFlow front end of one bridge."""

    def __init__(self, core: SwitchCore, rundir: str) -> None:
        self.core = core
        self.rundir = rundir
        self.mgmt_path = os.path.join(rundir, f"{core.name}.mgmt")
        self.arbiter = RoleArbiter()
        self.dispatcher = Dispatcher(core, self.arbiter, self.all_connections)
        self._conns: set[OfConnection] = set()
        self._links: dict[str, ControllerLink] = {}
        self._mgmt_server: asyncio.AbstractServer | None = None
        self._pending_targets: list[str] | None = None
        self.version_bitmap = 1 << c.OFP_VERSION

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        os.makedirs(self.rundir, exist_ok=True)
        _remove_stale_socket(self.mgmt_path)
        loop = asyncio.get_running_loop()
        self._mgmt_server = await loop.create_unix_server(
            lambda: self.new_connection(SERVICE, self.mgmt_path, None, None), self.mgmt_path)
        os.chmod(self.mgmt_path, MGMT_SOCKET_MODE)
        self.core.add_listener(self)
        if self._pending_targets is not None:
            targets, self._pending_targets = self._pending_targets, None
            self.set_controllers(targets)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.core.remove_listener(self)
        if self._mgmt_server is not None:
            self._mgmt_server.close()
            self._mgmt_server = None
            _remove_stale_socket(self.mgmt_path)
        for link in list(self._links.values()):
            await link.stop()
        self._links.clear()
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
        return conn

    def _serve(self, conn: OfConnection, link: ControllerLink | None) -> None:
        """Start serving a connection whose socket is now up."""
        self._conns.add(conn)
        if link is not None:
            link.conns.append(conn)

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
        if link is not None and conn in link.conns:
            link.conns.remove(conn)

    def all_connections(self) -> list[OfConnection]:
        return [conn for conn in self._conns if conn.negotiated]

    def set_protocols(self, protocols: list[str]) -> None:
        """Bridge.protocols ("OpenFlow10" ... "OpenFlow15"; empty: the default).

        Only OpenFlow 1.3 is implemented, so a list without OpenFlow13 makes
        every new connection fail version negotiation, as OVS does."""
        if not protocols:
            self.version_bitmap = 1 << c.OFP_VERSION
            return
        wanted = {PROTOCOL_VERSIONS[p] for p in protocols if p in PROTOCOL_VERSIONS}
        self.version_bitmap = (1 << c.OFP_VERSION) if c.OFP_VERSION in wanted else 0

    def set_controllers(self, targets: list[str]) -> None:
        """Make the controller targets exactly ``targets`` (order and repeats ignored)."""
        if self._mgmt_server is None:  # not started: apply in start()
            self._pending_targets = list(targets)
            return
        wanted = list(dict.fromkeys(targets))
        for target in list(self._links):
            if target not in wanted:
                link = self._links.pop(target)
                asyncio.ensure_future(link.stop())
        for target in wanted:
            if target not in self._links:
                link = ControllerLink(self, target)
                self._links[target] = link
                link.start()

    def controller_status(self) -> dict[str, dict]:
        return {target: link.status() for target, link in self._links.items()}

    def has_controllers_connected(self) -> bool:
        return any(link.connected() for link in self._links.values())

    # ------------------------------------------------------------ SwitchListener
    def _fan_out(self, kind: str, reason: int, msg) -> None:
        for conn in list(self._conns):
            if conn.wants_async(kind, reason):
                conn.send_async(msg)

    def packet_in(self, msg: PacketIn) -> None:
        self._fan_out("packet_in", msg.reason, PacketInMessage(msg))

    def flow_removed(self, msg: FlowRemoved) -> None:
        self._fan_out("flow_removed", msg.reason, FlowRemovedMessage(msg))

    def port_status(self, reason: int, port: OfPort) -> None:
        self._fan_out("port_status", reason, PortStatus(reason, port))
