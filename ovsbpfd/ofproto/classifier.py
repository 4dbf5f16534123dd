"""One OpenFlow flow table: a tuple-space classifier of rules by priority.

Rules that match the same set of fields under the same masks live in one
subtable, a dict from their masked values to the rules (highest priority
first).  A lookup visits subtables in order of their highest priority and
stops once none left can beat the best hit; the FlowKey bits of every
subtable visited form the megaflow mask, because the packet's values of those
fields decided the outcome.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from ovsbpfd.ofproto.flow_fields import KeyMask, match_key_mask, merge_masks
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.rule import Rule

Signature = tuple[tuple[str, int], ...]  # ((field, effective mask), ...)


def signature_of(match: Match) -> Signature:
    return match.signature()


def values_of(match: Match) -> tuple[int, ...]:
    return match.masked_values()


def covers(outer: Match, inner: Match) -> bool:
    """True if every packet ``inner`` matches is matched by ``outer``
    (``inner`` is at least as specific) — OpenFlow's non-strict selection."""
    for name in outer:
        if name not in inner:
            return False
        o_mask, i_mask = outer.mask_of(name), inner.mask_of(name)
        if o_mask & ~i_mask:
            return False
        if (inner[name][0] ^ outer[name][0]) & o_mask:
            return False
    return True


def overlaps(a: Match, b: Match) -> bool:
    """True if some packet could match both."""
    for name in a:
        if name in b:
            common = a.mask_of(name) & b.mask_of(name)
            if (a[name][0] ^ b[name][0]) & common:
                return False
    return True


class _Subtable:
    """Rules of one signature.  ``max_priority`` must stay cheap to keep up
    under deletes, so priorities are counted, and a heap (with stale entries
    skipped lazily) yields the new maximum when the last rule of the top
    priority goes."""

    __slots__ = ("signature", "key_mask", "buckets", "max_priority", "count",
                 "_priority_counts", "_priority_heap")

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        self.key_mask: KeyMask = match_key_mask(signature)
        self.buckets: dict[tuple[int, ...], list[Rule]] = {}
        self.max_priority = -1
        self.count = 0
        self._priority_counts: dict[int, int] = {}
        self._priority_heap: list[int] = []  # negated priorities, may hold stale ones

    def insert(self, rule: Rule) -> bool:
        """Add ``rule``; True if the subtable's max priority changed."""
        key = rule.match.masked_values()
        bucket = self.buckets.get(key)
        if bucket is None:
            self.buckets[key] = [rule]
        else:
            bucket.append(rule)
            if len(bucket) > 1:
                bucket.sort(key=_minus_priority)
        self.count += 1
        priority = rule.priority
        seen = self._priority_counts.get(priority, 0)
        self._priority_counts[priority] = seen + 1
        if not seen:
            heapq.heappush(self._priority_heap, -priority)
        if priority > self.max_priority:
            self.max_priority = priority
            return True
        return False

    def remove(self, rule: Rule) -> bool:
        """Remove ``rule``; True if the subtable's max priority changed."""
        key = rule.match.masked_values()
        bucket = self.buckets[key]
        bucket.remove(rule)
        if not bucket:
            del self.buckets[key]
        self.count -= 1
        priority = rule.priority
        left = self._priority_counts[priority] - 1
        if left:
            self._priority_counts[priority] = left
            return False
        del self._priority_counts[priority]
        if priority != self.max_priority:
            return False
        heap = self._priority_heap
        while heap and -heap[0] not in self._priority_counts:
            heapq.heappop(heap)
        self.max_priority = -heap[0] if heap else -1
        return True

    def key_of(self, values: dict[str, int]) -> tuple[int, ...] | None:
        """The packet's key in this subtable; None if it lacks a field
        (a prerequisite is not met), so no rule here can match it."""
        try:
            return tuple([values[name] & mask for name, mask in self.signature])
        except KeyError:
            return None

    def lookup(self, values: dict[str, int]) -> Rule | None:
        key = self.key_of(values)
        bucket = self.buckets.get(key) if key is not None else None
        return bucket[0] if bucket else None


def _minus_priority(rule: Rule) -> int:
    return -rule.priority


class FlowTable:
    """Rules of one table plus its OpenFlow table statistics."""

    def __init__(self, table_id: int, reorders: list[tuple[int, int, int]] | None = None
                 ) -> None:
        self.table_id = table_id
        # (table, low, high) appended whenever a subtable that keeps rules sees
        # its max priority move between low and high: lookups whose hit has a
        # priority in that range may now visit it differently (ties!).
        self.reorders = reorders if reorders is not None else []
        self._subtables: dict[Signature, _Subtable] = {}
        self._ordered: list[_Subtable] | None = []
        # priority -> its rules (a dict as an ordered set: O(1) removal)
        self._by_priority: dict[int, dict[Rule, None]] = {}
        self.lookup_count = 0
        self.matched_count = 0
        self.n_rules = 0

    def __len__(self) -> int:
        return self.n_rules

    def __iter__(self) -> Iterator[Rule]:
        for sub in list(self._subtables.values()):
            for bucket in list(sub.buckets.values()):
                yield from list(bucket)

    # ------------------------------------------------------------ changes
    def insert(self, rule: Rule) -> Rule | None:
        """Add ``rule``; return the rule with identical match and priority it
        replaced, if any."""
        match = rule.match
        sig = match.signature()
        sub = self._subtables.get(sig)
        old = None
        if sub is None:
            sub = self._subtables[sig] = _Subtable(sig)
            self._ordered = None
        else:
            old = _same_priority(sub.buckets.get(match.masked_values(), ()), rule.priority)
            if old is not None:
                self.remove(old)
                if sub.count == 0:  # it was the only rule: the subtable went too
                    sub = self._subtables[sig] = _Subtable(sig)
                    self._ordered = None
        old_max = sub.max_priority
        if sub.insert(rule):
            self._ordered = None
            if sub.count > 1:
                self.reorders.append((self.table_id, old_max, sub.max_priority))
        same = self._by_priority.get(rule.priority)
        if same is None:
            same = self._by_priority[rule.priority] = {}
        same[rule] = None
        self.n_rules += 1
        return old

    def remove(self, rule: Rule) -> None:
        sig = rule.match.signature()
        sub = self._subtables[sig]
        old_max = sub.max_priority
        if sub.remove(rule):
            self._ordered = None
            if sub.count:
                self.reorders.append((self.table_id, sub.max_priority, old_max))
        if sub.count == 0:
            del self._subtables[sig]
            self._ordered = None
        same = self._by_priority[rule.priority]
        del same[rule]
        if not same:
            del self._by_priority[rule.priority]
        self.n_rules -= 1

    # ------------------------------------------------------------ queries
    def find_strict(self, match: Match, priority: int) -> Rule | None:
        sub = self._subtables.get(match.signature())
        if sub is None:
            return None
        return _same_priority(sub.buckets.get(match.masked_values(), ()), priority)

    def find_loose(self, match: Match) -> list[Rule]:
        """Rules at least as specific as ``match`` (non-strict selection)."""
        found = []
        for sig, sub in self._subtables.items():
            masks = dict(sig)
            if any(name not in masks or match.mask_of(name) & ~masks[name]
                   for name in match):
                continue
            for bucket in sub.buckets.values():
                found.extend(r for r in bucket if covers(match, r.match))
        return found

    def find_overlapping(self, match: Match, priority: int) -> list[Rule]:
        return [r for r in self._by_priority.get(priority, ()) if overlaps(r.match, match)]

    def lookup(self, values: dict[str, int], consulted: KeyMask,
               visited: dict[Signature, tuple[int, ...] | None] | None = None) -> Rule | None:
        """The highest-priority rule matching ``values``; the FlowKey bits
        the decision depended on are added to ``consulted``, and (if given)
        ``visited`` gets each subtable looked into with the packet's key there
        (what the revalidator's change index needs)."""
        best: Rule | None = None
        for sub in self._subtables_by_priority():
            if best is not None and sub.max_priority <= best.priority:
                break
            merge_masks(consulted, sub.key_mask)
            key = sub.key_of(values)
            if visited is not None:
                visited[sub.signature] = key
            if key is None:
                continue
            bucket = sub.buckets.get(key)
            if bucket and (best is None or bucket[0].priority > best.priority):
                best = bucket[0]
        return best

    def _subtables_by_priority(self) -> list[_Subtable]:
        if self._ordered is None:
            self._ordered = sorted(self._subtables.values(), key=lambda s: -s.max_priority)
        return self._ordered


def _same_priority(bucket: list[Rule] | tuple[()], priority: int) -> Rule | None:
    for rule in bucket:
        if rule.priority == priority:
            return rule
    return None
