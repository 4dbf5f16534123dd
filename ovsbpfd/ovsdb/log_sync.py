"""Flushing the log on a worker thread, started as soon as a commit is
written.

The flush then overlaps what the server still does for that commit on the
event loop (installing it, encoding the monitor updates and the reply)
instead of following it.  The reply still waits for the flush: the commit
barrier (durability.py) asks for it with Storage.sync() before anything goes
out.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundSync:
    """At most one fdatasync in flight, and what it covers.

    Records are counted as they are appended; a flush started after record n
    was written covers records up to n, whatever else is written while it
    runs."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[None] | None = None
        self._covers = 0

    def start(self, fd: int, covers: int) -> None:
        """Begin flushing fd in the background, unless a flush is running
        already (a later sync() tops it up)."""
        if self._future is not None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ovsdb-sync")
        self._future = self._pool.submit(os.fdatasync, fd)
        self._covers = covers

    def wait(self) -> int:
        """Wait for the flush in flight, if any; how many records it made
        durable (0 if none was running).  A failed flush raises OSError."""
        future, self._future = self._future, None
        if future is None:
            return 0
        future.result()
        return self._covers

    def close(self) -> None:
        """Wait for any flush in flight (its outcome no longer matters) and
        end the worker thread."""
        try:
            self.wait()
        except OSError:
            pass
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
