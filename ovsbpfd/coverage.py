"""Event counters in the manner of OVS's ``lib/coverage.c``: modules
register a named counter once and count real events on it; ``coverage/show``
lists every counter that was hit with its average rate over the last 5
seconds, minute and hour, and ``coverage/read-counter`` one total.

Rates come from samples taken every ``RUN_INTERVAL_S`` (``run``), kept as
OVS keeps them: twelve 5-second slots for the minute and sixty per-minute
sums for the hour; a late sample spreads its count evenly over the slots it
missed.  The ``hash`` of the header fingerprints which counters have which
totals (OVS hashes the same grouping with its own hash function; this one
uses CRC-32, so the values differ).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable

RUN_INTERVAL_S = 5
MIN_AVG_LEN = 60 // RUN_INTERVAL_S  # slots of one minute
HR_AVG_LEN = 60  # minutes of one hour


class Counter:
    __slots__ = ("name", "total", "last_total", "min", "hr")

    def __init__(self, name: str) -> None:
        self.name = name
        self.total = 0
        self.last_total = 0
        self.min = [0] * MIN_AVG_LEN
        self.hr = [0] * HR_AVG_LEN

    def inc(self, n: int = 1) -> None:
        self.total += n


class Coverage:
    """The registry; one per process (``COVERAGE``), tests make their own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.counters: list[Counter] = []
        self._by_name: dict[str, Counter] = {}
        self._clock = clock
        self._run_time = clock() + RUN_INTERVAL_S  # when the next sample is due
        self._idx = 0  # slots sampled so far, modulo an hour of them

    def counter(self, name: str) -> Counter:
        """The counter ``name``, registered on first use."""
        counter = self._by_name.get(name)
        if counter is None:
            counter = self._by_name[name] = Counter(name)
            self.counters.append(counter)
        return counter

    def run(self) -> None:
        """Take the samples that are due (OVS's ``coverage_run``)."""
        now = self._clock()
        if now < self._run_time:
            return
        slots = int((now - self._run_time) // RUN_INTERVAL_S) + 1
        for c in self.counters:
            count, c.last_total = c.total - c.last_total, c.total
            portion = count // slots
            idx = self._idx
            for j in range(slots):
                m_idx, h_idx = idx % MIN_AVG_LEN, idx // MIN_AVG_LEN
                c.min[m_idx] = portion + (count % slots if j == slots - 1 else 0)
                c.hr[h_idx] = c.min[m_idx] if m_idx == 0 else c.hr[h_idx] + c.min[m_idx]
                idx = (idx + 1) % (MIN_AVG_LEN * HR_AVG_LEN)
        self._idx = (self._idx + slots) % (MIN_AVG_LEN * HR_AVG_LEN)
        self._run_time = now + RUN_INTERVAL_S

    def read_counter(self, name: str) -> int | None:
        counter = self._by_name.get(name)
        return None if counter is None else counter.total

    def _hash(self) -> int:
        """Counters grouped by equal totals, largest first, names within a
        group sorted; each group's rank and names go into the hash."""
        ranked = sorted((c for c in self.counters if c.total), key=lambda c: (-c.total, c.name))
        text, groups, i = [], 0, 0
        while i < len(ranked):
            j = i
            while j < len(ranked) and ranked[j].total == ranked[i].total:
                j += 1
            text.append(f"{i}:" + ",".join(c.name for c in ranked[i:j]))
            groups, i = groups + 1, j
        return zlib.crc32(f"{groups}|{'|'.join(text)}".encode())

    def show(self) -> str:
        """The ``coverage/show`` text, laid out as OVS lays it out."""
        self.run()
        lines = [f"Event coverage, avg rate over last: {RUN_INTERVAL_S} seconds, last minute, "
                 f"last hour,  hash={self._hash():08x}:"]
        never = 0
        last = (self._idx - 1) % MIN_AVG_LEN
        for c in self.counters:
            if not c.total:
                never += 1
                continue
            lines.append(f"{c.name:<24} {c.min[last] / RUN_INTERVAL_S:5.1f}/sec "
                         f"{sum(c.min) / 60.0:9.3f}/sec {sum(c.hr) / 3600.0:13.4f}/sec   "
                         f"total: {c.total}")
        lines.append(f"{never} events never hit")
        return "\n".join(lines) + "\n"


COVERAGE = Coverage()


def counter(name: str) -> Counter:
    """A counter of this process's registry (OVS's ``COVERAGE_DEFINE``)."""
    return COVERAGE.counter(name)


async def run_forever(registry: Coverage = COVERAGE) -> None:
    """Sample ``registry`` every ``RUN_INTERVAL_S`` (a task of the daemon's loop)."""
    while True:
        await asyncio.sleep(RUN_INTERVAL_S)
        registry.run()
