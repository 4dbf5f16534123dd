"""Where clients reach the server: listening (punix:, ptcp:, pssl:) and
connecting out (unix:, tcp:, ssl:) remotes, each with ovsdb-server's
defaults (inactivity probes every 5 s on TCP and SSL, none on unix sockets;
reconnect backoff doubling up to max_backoff).  ssl:/pssl: remotes ask
SslFiles (ssl_config.py) for the files current at each connection, so they
start before SSL is configured and follow `ovs-vsctl set-ssl`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .ssl_config import SslFiles

log = logging.getLogger(__name__)

DEFAULT_PROBE_MS = 5000
DEFAULT_MAX_BACKOFF_MS = 8000
PASSIVE_KINDS = ("punix", "ptcp", "pssl")
ACTIVE_KINDS = ("unix", "tcp", "ssl")

# Given a remote, makes the protocol (a session) of each of its connections.
# The protocol has a `done` future, set when the connection ends.
SessionFactory = Callable[["Remote"], Callable[[], asyncio.Protocol]]


class RemoteError(ValueError):
    """A remote name that cannot be used."""


@dataclass(frozen=True)
class RemoteConfig:
    """One remote: its target name and the options a Manager row may set."""

    target: str
    probe_interval_ms: int | None = None  # None: the default for the kind
    max_backoff_ms: int | None = None

    @property
    def kind(self) -> str:
        return self.target.partition(":")[0]

    def probe_ms(self) -> int:
        """Milliseconds of silence before an echo probe; 0 disables probing.
        Like OVS, a configured interval below one second becomes one second."""
        if self.probe_interval_ms is not None:
            if self.probe_interval_ms <= 0:
                return 0
            return max(self.probe_interval_ms, 1000)
        return 0 if self.kind in ("punix", "unix") else DEFAULT_PROBE_MS


def parse_inet(rest: str, default_host: str, passive: bool) -> tuple[str, int]:
    """PORT[:HOST] for passive remotes, HOST:PORT for active ones ([v6] allowed)."""
    if passive:
        port_s, _, host = rest.partition(":")
        host = host or default_host
    else:
        if rest.startswith("["):
            host, _, port_s = rest[1:].partition("]:")
        else:
            host, _, port_s = rest.rpartition(":")
    host = host.strip("[]")
    if not port_s.isdigit() or not host or int(port_s) > 65535:
        raise RemoteError(f"bad address in remote {rest!r}")
    return host, int(port_s)


def check_target(target: str) -> None:
    kind, sep, rest = target.partition(":")
    if not sep or kind not in PASSIVE_KINDS + ACTIVE_KINDS or not rest:
        raise RemoteError(f"unsupported remote {target!r}")
    if kind not in ("punix", "unix"):
        parse_inet(rest, "0.0.0.0", kind in PASSIVE_KINDS)


class Remote:
    """Base of both remote kinds: its config, its live sessions, its status."""

    def __init__(self, config: RemoteConfig, factory: SessionFactory,
                 ssl_files: SslFiles) -> None:
        check_target(config.target)
        self.config = config
        self.protocol_factory = factory(self)
        self.ssl_files = ssl_files
        self.sessions: set[Any] = set()
        self.last_connect: float | None = None
        self.last_disconnect: float | None = None
        self.last_error: str | None = None
        self.row_ref: Any = None  # (db, table, uuid) of the row that asked for it
        self.on_change: Callable[[], None] = lambda: None

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def session_started(self, session: Any) -> None:
        self.sessions.add(session)
        self.last_connect = time.monotonic()
        self.on_change()

    def session_ended(self, session: Any) -> None:
        self.sessions.discard(session)
        self.last_disconnect = time.monotonic()
        self.on_change()

    @property
    def is_connected(self) -> bool:
        return bool(self.sessions)

    def status(self) -> dict[str, str]:
        raise NotImplementedError

    def _since(self, when: float | None) -> str:
        return str(int(time.monotonic() - when)) if when is not None else "0"


class PassiveRemote(Remote):
    """A listening socket; every accepted client becomes a session."""

    def __init__(self, config: RemoteConfig, factory: SessionFactory,
                 ssl_files: SslFiles) -> None:
        super().__init__(config, factory, ssl_files)
        self.listener: asyncio.AbstractServer | None = None
        self.unix_path: str | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        kind, _, rest = self.config.target.partition(":")
        loop = asyncio.get_running_loop()
        if kind == "punix":
            if os.path.exists(rest):
                os.unlink(rest)  # a stale socket left by a crashed server
            old_umask = os.umask(0o027)
            try:
                self.listener = await loop.create_unix_server(self.protocol_factory, path=rest)
            finally:
                os.umask(old_umask)
            os.chmod(rest, 0o750)
            self.unix_path = rest
            return
        host, port = parse_inet(rest, "0.0.0.0", passive=True)
        ctx = self.ssl_files.server_context() if kind == "pssl" else None
        self.listener = await loop.create_server(self.protocol_factory, host=host, port=port,
                                                 reuse_address=True, ssl=ctx)
        self.bound_port = self.listener.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        for session in list(self.sessions):
            session.close()
        if self.listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.listener.wait_closed(), 2)
            self.listener = None
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)
            self.unix_path = None

    def status(self) -> dict[str, str]:
        # ovsdb-server reports no times for listeners: always zero.
        out = {"sec_since_connect": "0", "sec_since_disconnect": "0"}
        if self.bound_port is not None:
            out["bound_port"] = str(self.bound_port)
        if len(self.sessions) > 1:
            out["n_connections"] = str(len(self.sessions))
        return out


class ActiveRemote(Remote):
    """Connects out and keeps reconnecting, backing off 1 s, 2 s, 4 s ... up to
    max_backoff, as OVS's reconnect module does."""

    def __init__(self, config: RemoteConfig, factory: SessionFactory,
                 ssl_files: SslFiles) -> None:
        super().__init__(config, factory, ssl_files)
        self.state = "CONNECTING"
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        kind, _, rest = self.config.target.partition(":")
        backoff = 1.0
        max_backoff = (self.config.max_backoff_ms or DEFAULT_MAX_BACKOFF_MS) / 1000.0
        while True:
            self._set_state("CONNECTING")
            try:
                loop = asyncio.get_running_loop()
                if kind == "unix":
                    _t, session = await loop.create_unix_connection(self.protocol_factory, rest)
                else:
                    host, port = parse_inet(rest, "", passive=False)
                    ctx = self.ssl_files.client_context() if kind == "ssl" else None
                    _t, session = await asyncio.wait_for(loop.create_connection(
                        self.protocol_factory, host, port, ssl=ctx,
                        server_hostname=host if ctx else None), 10)
            except (TimeoutError, OSError, ssl.SSLError) as e:
                self.last_error = str(e) or type(e).__name__
                self._set_state("BACKOFF")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            self._set_state("ACTIVE")
            backoff = 1.0
            await session.done
            self._set_state("BACKOFF")
            await asyncio.sleep(backoff)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.on_change()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None
        for session in list(self.sessions):
            session.close()

    def status(self) -> dict[str, str]:
        out = {"state": self.state}
        if self.state == "ACTIVE" or self.last_connect is not None:
            out["sec_since_connect"] = self._since(self.last_connect)
        if self.last_disconnect is not None:
            out["sec_since_disconnect"] = self._since(self.last_disconnect)
        return out


def make_remote(config: RemoteConfig, factory: SessionFactory, ssl_files: SslFiles) -> Remote:
    if config.kind in PASSIVE_KINDS:
        return PassiveRemote(config, factory, ssl_files)
    return ActiveRemote(config, factory, ssl_files)
