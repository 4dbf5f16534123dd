"""Drive python-ovs ``run()``/``wait(poller)`` objects from an asyncio loop.

python-ovs (Idl, jsonrpc sessions, ...) is written for a blocking main loop:
call ``run()``, then ``wait(poller)`` to say which fds and timer should wake
us, then ``poller.block()``.  Blocking would stall every other socket of the
daemon, so instead the adapter reads what ``wait`` registered on the poller
(its fd lists and timeout) and hands it to asyncio; when any of it fires,
the step runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import ovs.poller

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaitSet:
    """What a python-ovs ``wait()`` asked for: fds to watch and a timeout."""

    readers: frozenset[int]
    writers: frozenset[int]
    timeout_ms: int  # -1: no timer; 0: wake immediately


def collect_wait(wait: Callable[[ovs.poller.Poller], None]) -> WaitSet:
    """Call ``wait`` on a fresh Poller and read back what it registered."""
    poller = ovs.poller.Poller()
    wait(poller)
    poll = poller.poll
    readers = set(getattr(poll, "rlist", ()))
    writers = set(getattr(poll, "wlist", ()))
    # asyncio has no "exceptional condition" watch; errors also make an fd
    # readable, so watching for readability covers them.
    readers |= set(getattr(poll, "xlist", ()))
    return WaitSet(frozenset(readers), frozenset(writers), int(poller.timeout))


class OvsLoopDriver:
    """Runs ``step()`` whenever the fds/timer its ``wait`` registered fire.

    ``step`` does the object's ``run()`` and whatever the owner does after
    it; ``wait`` is the object's ``wait(poller)``.  ``kick()`` forces a step
    soon (e.g. after the owner queued a transaction).
    """

    def __init__(
        self,
        step: Callable[[], None],
        wait: Callable[[ovs.poller.Poller], None],
    ) -> None:
        self._step = step
        self._wait = wait
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers: set[int] = set()
        self._writers: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._scheduled: asyncio.Handle | None = None
        self._running = False
        self.steps = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        self.kick()

    def stop(self) -> None:
        self._running = False
        self._unregister()
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None

    def kick(self) -> None:
        """Run a step as soon as the loop is free (coalesced)."""
        if not self._running or self._loop is None or self._scheduled is not None:
            return
        self._scheduled = self._loop.call_soon(self._do_step)

    # ------------------------------------------------------------ internals
    def _do_step(self) -> None:
        self._scheduled = None
        if not self._running:
            return
        self._unregister()
        self.steps += 1
        try:
            self._step()
            waitset = collect_wait(self._wait)
        except Exception:
            log.exception("python-ovs step failed; retrying in 1 s")
            waitset = WaitSet(frozenset(), frozenset(), 1000)
        if self._running:
            self._register(waitset)

    def _register(self, ws: WaitSet) -> None:
        assert self._loop is not None
        if ws.timeout_ms == 0:
            self.kick()
            return
        for fd in ws.readers:
            self._loop.add_reader(fd, self.kick)
            self._readers.add(fd)
        for fd in ws.writers:
            self._loop.add_writer(fd, self.kick)
            self._writers.add(fd)
        if ws.timeout_ms > 0:
            self._timer = self._loop.call_later(ws.timeout_ms / 1000.0, self.kick)

    def _unregister(self) -> None:
        loop = self._loop
        if loop is None:
            return
        for fd in self._readers:
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)
        for fd in self._writers:
            with contextlib.suppress(Exception):
                loop.remove_writer(fd)
        self._readers.clear()
        self._writers.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
