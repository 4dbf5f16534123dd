"""Group commit: one fdatasync for every commit of an event-loop turn, and no
byte to any client before the commits it may reflect are on disk.

A committed transaction is written to the log at once, but its sync is put
off to the end of the current event-loop turn.  Until then every byte the
server would send to any client (the transaction's reply, other clients'
update notifications, anything else) is held, in order, per client.  At the
end of the turn the logs are synced once and the held bytes go out, one
write per client.  (The flush itself begins in the kernel's background at
the turn's first commit (log_sync.py), so the disk works while the turn goes
on; the release waits for it, and flushes again only if commits came after
it began.)

So a transaction is still acknowledged only once it is durable (and nobody
hears of a change that a crash could still undo), but a client that
pipelines a hundred transactions costs one sync, not a hundred, and a
hundred monitors get one write each per turn instead of one per commit.

If a sync fails, nothing held is sent: those clients are disconnected, as
if the server had crashed, and learn the outcome when they reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger(__name__)


class Syncable(Protocol):
    def begin_sync(self) -> None: ...

    def sync(self) -> None: ...


class Client(Protocol):
    def write_now(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class CommitBarrier:
    """Holds output while any log has commits not yet synced."""

    def __init__(self) -> None:
        self._unsynced: list[Syncable] = []
        self._held: dict[Client, list[bytes]] = {}
        self._scheduled = False

    @property
    def holding(self) -> bool:
        """True while output must wait for a sync."""
        return bool(self._unsynced)

    def written(self, storage: Syncable) -> None:
        """A commit was appended to storage without a sync; sync it (and let the
        output go) at the end of this event-loop turn, or now if there is no
        loop running."""
        if storage not in self._unsynced:
            self._unsynced.append(storage)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.release()
            return
        # The disk works while the rest of the turn runs; release() waits.
        storage.begin_sync()
        self._scheduled = True
        loop.call_soon(self.release)

    def holds_for(self, client: Client) -> bool:
        """Whether output for client is waiting."""
        return client in self._held

    def hold(self, client: Client, data: bytes) -> None:
        """Keep data for client until the next release."""
        chunks = self._held.get(client)
        if chunks is None:
            self._held[client] = [data]
        else:
            chunks.append(data)

    def release(self) -> None:
        """Sync every log written since the last release, then send what waited."""
        self._scheduled = False
        unsynced, self._unsynced = self._unsynced, []
        failed = False
        for storage in unsynced:
            try:
                storage.sync()
            except OSError as e:
                log.error("syncing the database log failed: %s", e)
                failed = True
        held, self._held = self._held, {}
        for client, chunks in held.items():
            if failed:
                client.close()
            else:
                client.write_now(chunks[0] if len(chunks) == 1 else b"".join(chunks))
