"""Named locks of RFC 7047 section 4.1.8: lock, steal, unlock.

Each lock has an owner and a queue of sessions waiting for it.  Whoever gains a
lock later than its request gets a "locked" notification; whoever loses it to
"steal" gets "stolen".  As in ovsdb-server, an owner that had stolen the lock
itself leaves the queue when it is stolen from it (one that asked with "lock"
waits to get it back); either way its request stands until it unlocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Notify = Callable[[Any, str, str], None]  # (session, method, lock name)


class LockManager:
    def __init__(self, notify: Notify) -> None:
        self.notify = notify
        self.queues: dict[str, list[Any]] = {}  # lock name -> [owner, waiters...]
        # (lock name, session) of the sessions that stole a lock they hold or
        # wait for, and of those whose stolen lock left them out of the queue.
        self.stealers: set[tuple[str, Any]] = set()
        self.dropped: set[tuple[str, Any]] = set()

    def holds(self, session: Any, name: str) -> bool:
        q = self.queues.get(name)
        return bool(q) and q[0] is session

    def requested(self, session: Any, name: str) -> bool:
        return session in self.queues.get(name, []) or (name, session) in self.dropped

    def lock(self, session: Any, name: str) -> bool:
        q = self.queues.setdefault(name, [])
        q.append(session)
        return q[0] is session

    def steal(self, session: Any, name: str) -> None:
        q = self.queues.setdefault(name, [])
        victim = q[0] if q else None
        if session in q:
            q.remove(session)
        q.insert(0, session)
        self.stealers.add((name, session))
        if victim is not None and victim is not session:
            if (name, victim) in self.stealers:
                q.remove(victim)
                self.stealers.discard((name, victim))
                self.dropped.add((name, victim))
            self.notify(victim, "stolen", name)

    def unlock(self, session: Any, name: str) -> None:
        self.stealers.discard((name, session))
        if (name, session) in self.dropped:
            self.dropped.discard((name, session))
            return
        q = self.queues.get(name, [])
        was_owner = bool(q) and q[0] is session
        if session in q:
            q.remove(session)
        if not q:
            self.queues.pop(name, None)
        elif was_owner:
            self.notify(q[0], "locked", name)

    def drop_session(self, session: Any) -> None:
        names = {n for n, q in self.queues.items() if session in q}
        names |= {n for n, s in self.dropped if s is session}
        for name in names:
            self.unlock(session, name)

    def held_by(self, session: Any) -> set[str]:
        return {n for n, q in self.queues.items() if q and q[0] is session}
