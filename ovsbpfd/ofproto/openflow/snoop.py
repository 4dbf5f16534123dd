"""``ovs-ofctl snoop``: copies of one controller channel's messages.

Each bridge listens on ``punix:{rundir}/{bridge}.snoop`` (as ovs-vswitchd
does).  A snoop client is attached to one controller channel, the one
ovs-vswitchd would pick: among the Controller-table connections of type
primary (never service connections such as ovs-ofctl on ``.mgmt``), the
first with the highest role (master, then equal, then slave).  From then
on it gets a copy of every message that channel sends or receives after
HELLO; an active controller's channel keeps its snoop clients across
reconnections, a connection accepted by a passive one takes them with it
when it closes.  With no such channel the client is closed at once.

A snoop client can never slow the switch: copies go into its socket's
write buffer only while that holds less than ``BUFFER_LIMIT`` bytes,
otherwise they are dropped (ovs-vswitchd drops a copy whenever the
client's socket would block).  Whatever a snoop client sends after HELLO
is read and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Callable

from ovsbpfd.ofproto.openflow.connection import OfConnection
from ovsbpfd.ofproto.openflow.messages import OfpMessage

log = logging.getLogger(__name__)

SNOOP = "snoop"
BUFFER_LIMIT = 1 << 20  # bytes of copies waiting for one slow client
MAX_CLIENTS = 8  # per channel, as ovs-vswitchd's rconn monitors
SOCKET_MODE = 0o750


async def _ignore(_conn: OfConnection, _msg: OfpMessage) -> None:
    """A snoop client's own requests get no answer (ovs-vswitchd drains them)."""


class SnoopClient(OfConnection):
    """One snoop connection: HELLO like any OpenFlow channel, then copies."""

    def __init__(self, name: str, version_bitmap: int,
                 on_connected: Callable[[OfConnection], None]) -> None:
        super().__init__(_ignore, SNOOP, name, None, on_connected=on_connected)
        self.version_bitmap = version_bitmap
        self.copied = 0
        self.dropped = 0

    def copy(self, data: bytes) -> None:
        """Queue ``data`` unless the client is not ready or too far behind."""
        transport = self._transport
        if not self.negotiated or not self.is_open or transport is None:
            return
        if transport.get_write_buffer_size() + len(data) > BUFFER_LIMIT:
            self.dropped += 1
            return
        transport.write(data)
        self.copied += 1


class SnoopTap:
    """The snoop clients of one controller channel and the connections that feed them.

    A followed connection's ``snoop`` hook is set only while there are
    clients, so an unwatched channel pays one None check per message."""

    def __init__(self) -> None:
        self.clients: list[SnoopClient] = []
        self.conns: set[OfConnection] = set()

    def add(self, client: SnoopClient) -> bool:
        """Attach ``client``; False when the channel has all it may have."""
        if len(self.clients) >= MAX_CLIENTS:
            return False
        self.clients.append(client)
        self._hook_all()
        return True

    def discard(self, client: SnoopClient) -> None:
        if client in self.clients:
            self.clients.remove(client)
            self._hook_all()

    def follow(self, conn: OfConnection) -> None:
        self.conns.add(conn)
        conn.snoop = self.copy if self.clients else None

    def unfollow(self, conn: OfConnection) -> None:
        self.conns.discard(conn)
        conn.snoop = None

    def copy(self, data: bytes) -> None:
        for client in self.clients:
            client.copy(data)

    def close(self) -> None:
        """Detach from every connection and close every client."""
        for conn in self.conns:
            conn.snoop = None
        self.conns.clear()
        clients, self.clients = self.clients, []
        for client in clients:
            client.close()

    def _hook_all(self) -> None:
        hook = self.copy if self.clients else None
        for conn in self.conns:
            conn.snoop = hook


class SnoopListener:
    """The ``<bridge>.snoop`` socket: each client goes to the tap ``pick`` names."""

    def __init__(self, path: str, pick: Callable[[], SnoopTap | None],
                 version_bitmap: Callable[[], int]) -> None:
        self.path = path
        self.pick = pick
        self.version_bitmap = version_bitmap
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Future] = set()

    async def start(self) -> None:
        _remove_stale_socket(self.path)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._client, self.path)
        os.chmod(self.path, SOCKET_MODE)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            _remove_stale_socket(self.path)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    def _client(self) -> SnoopClient:
        return SnoopClient(self.path, self.version_bitmap(), self._attach)

    def _attach(self, client: OfConnection) -> None:
        assert isinstance(client, SnoopClient)
        tap = self.pick()
        if tap is None or not tap.add(client):
            log.info("%s: %s", self.path, "no controller connection to snoop" if tap is None
                     else "too many snoop connections on the controller")
            client.close()
            return

        async def serve() -> None:
            try:
                await client.run()
            finally:
                tap.discard(client)

        task = asyncio.ensure_future(serve())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _remove_stale_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
