"""Recent committed transactions, so monitor_cond_since can resume a client.

A client that reconnects names the last transaction it saw; if that one is
still here, the server sends only what changed after it (found=true) instead
of the whole database.  Like a clustered ovsdb-server, the history is bounded
twice: at most MAX_TXNS transactions, and no more atoms than the database
itself holds (beyond that a full resend is cheaper than a replay).
"""

from __future__ import annotations

import uuid
from collections import deque

from .database import row_atoms
from .transaction import ChangeSet

ZERO_TXN = uuid.UUID(int=0)


class TxnHistory:
    MAX_TXNS = 100

    def __init__(self) -> None:
        self._entries: deque[tuple[uuid.UUID, ChangeSet, int]] = deque()
        self._ids: dict[uuid.UUID, int] = {}  # txn id -> sequence number
        self._first_seq = 0
        self.n_atoms = 0

    @property
    def latest(self) -> uuid.UUID:
        """Id of the newest transaction kept (the zero UUID when there is none)."""
        return self._entries[-1][0] if self._entries else ZERO_TXN

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, changes: ChangeSet, db_atoms: int) -> uuid.UUID:
        """Remember a committed change set; returns its new transaction id."""
        txn_id = uuid.uuid4()
        atoms = changeset_atoms(changes)
        self._ids[txn_id] = self._first_seq + len(self._entries)
        self._entries.append((txn_id, changes, atoms))
        self.n_atoms += atoms
        while len(self._entries) > self.MAX_TXNS or (
                len(self._entries) > 1 and self.n_atoms > db_atoms):
            old_id, _changes, old_atoms = self._entries.popleft()
            del self._ids[old_id]
            self._first_seq += 1
            self.n_atoms -= old_atoms
        return txn_id

    def changes_since(self, txn_id: uuid.UUID) -> list[ChangeSet] | None:
        """Change sets committed after txn_id, oldest first; None if it is unknown."""
        seq = self._ids.get(txn_id)
        if seq is None:
            return None
        skip = seq - self._first_seq + 1
        return [changes for _id, changes, _n in list(self._entries)[skip:]]

    def clear(self) -> None:
        self._entries.clear()
        self._ids.clear()
        self.n_atoms = 0


def changeset_atoms(changes: ChangeSet) -> int:
    """Size of a change set as a clustered ovsdb-server weighs its history:
    every row it keeps, old and new versions both."""
    total = 0
    for rows in changes.values():
        for old, new in rows.values():
            for row in (old, new):
                if row is not None:
                    total += row_atoms(row)
    return total


def merge_changes(change_sets: list[ChangeSet]) -> ChangeSet:
    """Fold consecutive change sets into one: each row's first old, last new."""
    merged: ChangeSet = {}
    for changes in change_sets:
        for table, rows in changes.items():
            out = merged.setdefault(table, {})
            for row_uuid, (old, new) in rows.items():
                if row_uuid in out:
                    out[row_uuid] = (out[row_uuid][0], new)
                else:
                    out[row_uuid] = (old, new)
    for table in list(merged):
        rows = merged[table]
        for row_uuid in [u for u, (o, n) in rows.items() if o is None and n is None]:
            del rows[row_uuid]
        if not rows:
            del merged[table]
    return merged
