"""The MAC learning table behind the NORMAL action: (VLAN, MAC) -> OpenFlow port."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from ovsbpfd import coverage

DEFAULT_AGING_S = 300
DEFAULT_MAX_ENTRIES = 8192

_LEARNED = coverage.counter("mac_learning_learned")
_EXPIRED = coverage.counter("mac_learning_expired")
_EVICTED = coverage.counter("mac_learning_evicted")
_MOVED = coverage.counter("mac_learning_moved")


@dataclass
class MacEntry:
    vlan: int
    mac: bytes
    port: int
    last_seen: float


def is_multicast(mac: bytes) -> bool:
    return bool(mac[0] & 1)


@dataclass
class MacStats:
    """Running totals ``fdb/stats-show`` reports (cleared by ``fdb/stats-clear``);
    a flush removes entries without counting them, as in OVS."""

    learned: int = 0
    expired: int = 0
    evicted: int = 0
    moved: int = 0


class MacLearning:
    """Entries age out after ``aging_s`` unless refreshed; when full, the
    least recently seen entry makes room.  ``version`` changes whenever a
    forwarding decision could change (new entry, move, removal)."""

    def __init__(self, aging_s: float = DEFAULT_AGING_S,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.aging_s = aging_s
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, bytes], MacEntry] = OrderedDict()
        self.version = 0
        self.stats = MacStats()

    def __len__(self) -> int:
        return len(self._entries)

    def learn(self, vlan: int, mac: bytes, port: int, now: float | None = None) -> bool:
        """Record that ``mac`` on ``vlan`` lives behind ``port``.

        Returns True if this changed where packets go (new entry or a move)."""
        if is_multicast(mac):
            return False
        now = time.monotonic() if now is None else now
        key = (vlan, mac)
        entry = self._entries.get(key)
        if entry is not None:
            entry.last_seen = now
            self._entries.move_to_end(key)
            if entry.port == port:
                return False
            entry.port = port
            self.stats.moved += 1
            _MOVED.inc()
        else:
            while len(self._entries) >= self.max_entries:
                self._entries.popitem(last=False)
                self.stats.evicted += 1
                _EVICTED.inc()
            self._entries[key] = MacEntry(vlan, mac, port, now)
            self.stats.learned += 1
            _LEARNED.inc()
        self.version += 1
        return True

    def lookup(self, vlan: int, mac: bytes) -> MacEntry | None:
        return self._entries.get((vlan, mac))

    def refresh(self, vlan: int, mac: bytes, port: int, now: float | None = None) -> None:
        """Traffic from ``mac`` still arrives on ``port`` (seen in datapath stats)."""
        entry = self._entries.get((vlan, mac))
        if entry is not None and entry.port == port:
            entry.last_seen = time.monotonic() if now is None else now
            self._entries.move_to_end((vlan, mac))

    def expire(self, now: float | None = None) -> list[tuple[int, bytes]]:
        """Drop entries not seen for ``aging_s``; return their (vlan, mac)
        keys, so that only the flows that looked them up are re-translated."""
        now = time.monotonic() if now is None else now
        stale = [k for k, e in self._entries.items() if now - e.last_seen >= self.aging_s]
        for key in stale:
            del self._entries[key]
        if stale:
            self.version += 1
            self.stats.expired += len(stale)
            _EXPIRED.inc(len(stale))
        return stale

    def flush_port(self, port: int) -> int:
        stale = [k for k, e in self._entries.items() if e.port == port]
        for key in stale:
            del self._entries[key]
        if stale:
            self.version += 1
        return len(stale)

    def flush(self) -> None:
        if self._entries:
            self._entries.clear()
            self.version += 1

    def clear_stats(self) -> None:
        self.stats = MacStats()

    def entries(self) -> list[MacEntry]:
        return list(self._entries.values())
