"""Which installed megaflows a flow-table change can affect.

After a FLOW_MOD only the megaflows whose packets the changed rule matches
can translate differently; re-translating every installed flow (what a
generic revalidation does) costs far more than finding those.  In the spirit
of OVS's old revalidation tags this keeps, per installed flow, what each of
its table lookups saw, and answers "which flows may rule R in table T touch?"

Every packet of a megaflow looks the same to each subtable its translation
visited: the subtable's bits are in the megaflow mask (or were rewritten to
one value, or are pipeline state such as metadata).  So for a change of rule
R (subtable S, values V, priority P) in table T, a flow is affected only if

- its lookup in T visited S and computed key V there (one dict probe); or
- its lookup in T did not visit S (S did not exist, or could not beat the
  hit), R could beat or tie the rule it hit (hit priority <= P), and R's
  match agrees with what the lookup saw on every bit the megaflow fixes; or
- S's max priority moved across the hit's priority: S's place in the lookup
  order changed, and among equal-priority rules the first subtable wins.

Anything not decidable from the recorded values (a field the packet lacked,
bits the mask leaves free) counts as a possible match: the answer may hold
extra flows, never miss one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ovsbpfd.dpif.types import FlowKey
from ovsbpfd.ofproto.flow_fields import KeyMask, fixed_oxm_bits, from_flow_key
from ovsbpfd.ofproto.match import FIELDS_BY_NAME, Match
from ovsbpfd.ofproto.xlate import TableLookup


@dataclass(frozen=True)
class RuleChange:
    """Rule ``match``/``priority`` of ``owner``'s table ``table_id`` was added,
    removed or had its instructions changed; or (``match`` None) a subtable of
    the table saw its max priority move across ``reorder`` = (low, high)."""

    owner: object
    table_id: int
    match: Match | None
    priority: int = -1
    reorder: tuple[int, int] | None = None


class IndexedFlow(Protocol):
    """What the index reads of an installed flow (``revalidator.FlowRecord``)."""

    owner: object
    mask: FlowKey
    lookups: list[TableLookup]


class ChangeIndex:
    """Installed flows by what their table lookups saw."""

    def __init__(self) -> None:
        # (owner, table, subtable signature, key there) -> flows
        self._by_key: dict[tuple, set[IndexedFlow]] = {}
        # (owner, table) -> flows that looked it up
        self._by_table: dict[tuple[object, int], set[IndexedFlow]] = {}
        self._entries: dict[IndexedFlow, tuple[list[tuple], list[tuple[object, int]]]] = {}
        self._fixed: dict[IndexedFlow, KeyMask] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, flow: IndexedFlow) -> None:
        """Index ``flow`` (again, after its translation changed)."""
        self.discard(flow)
        keys: list[tuple] = []
        tables: list[tuple[object, int]] = []
        for look in flow.lookups:
            table = (flow.owner, look.table_id)
            if table not in tables:
                tables.append(table)
                self._by_table.setdefault(table, set()).add(flow)
            for sig, key in look.visited.items():
                if key is None:
                    continue
                entry = (flow.owner, look.table_id, sig, key)
                keys.append(entry)
                self._by_key.setdefault(entry, set()).add(flow)
        self._entries[flow] = (keys, tables)

    def discard(self, flow: IndexedFlow) -> None:
        entries = self._entries.pop(flow, None)
        self._fixed.pop(flow, None)
        if entries is None:
            return
        keys, tables = entries
        for index, names in ((self._by_key, keys), (self._by_table, tables)):
            for name in names:
                flows = index.get(name)
                if flows is not None:
                    flows.discard(flow)
                    if not flows:
                        del index[name]

    def clear(self) -> None:
        self._by_key.clear()
        self._by_table.clear()
        self._entries.clear()
        self._fixed.clear()

    # ------------------------------------------------------------ queries
    def affected(self, changes: Iterable[RuleChange]) -> set[IndexedFlow]:
        """The indexed flows that any of ``changes`` may translate differently."""
        found: set[IndexedFlow] = set()
        for change in changes:
            if change.match is None:
                if change.reorder is not None:
                    self._reordered(change.owner, change.table_id, change.reorder, found)
                continue
            sig = change.match.signature()
            found.update(self._by_key.get(
                (change.owner, change.table_id, sig, change.match.masked_values()), ()))
            for flow in self._by_table.get((change.owner, change.table_id), ()):
                if flow not in found and self._may_match(flow, change, sig):
                    found.add(flow)
        return found

    def _reordered(self, owner: object, table_id: int, span: tuple[int, int],
                   found: set[IndexedFlow]) -> None:
        """A subtable's max priority moved across ``span``: a lookup whose hit
        priority lies in it may now visit that subtable (or not), and so pick
        another rule among equal-priority ones.  Outside the span the subtable
        is visited (or skipped) as before."""
        low, high = span
        for flow in self._by_table.get((owner, table_id), ()):
            if flow not in found and any(look.table_id == table_id
                                         and low <= look.hit_priority <= high
                                         for look in flow.lookups):
                found.add(flow)

    def _may_match(self, flow: IndexedFlow, change: RuleChange, sig: tuple) -> bool:
        for look in flow.lookups:
            if look.table_id != change.table_id or look.hit_priority > change.priority:
                continue
            if sig in look.visited:
                continue  # decided exactly by the key probe
            if self._agrees(flow, change.match, look.values):
                return True
        return False

    def _agrees(self, flow: IndexedFlow, match: Match, values: dict[str, int]) -> bool:
        """Could some packet of ``flow`` match ``match``, given what it saw?"""
        fixed = self._fixed.get(flow)
        if fixed is None:
            fixed = self._fixed[flow] = from_flow_key(flow.mask)
        for name, (value, mask) in match.items():
            seen = values.get(name)
            if seen is None:
                continue  # not decidable here: assume it could match
            bits = FIELDS_BY_NAME[name].full_mask if mask is None else mask
            if (seen ^ value) & bits & fixed_oxm_bits(fixed, name):
                return False
        return True


class MacDependent(Protocol):
    """What the MAC index reads of an installed flow."""

    owner: object
    mac_lookups: list[tuple[int, bytes]]


class MacIndex:
    """Installed flows by the MAC-learning entries their NORMAL lookups read.

    A flow that NORMAL forwarded (or flooded) by looking up destination
    ``mac`` in ``vlan`` translates differently only when that entry comes,
    moves or goes; learning an address elsewhere leaves it as it is.  So a
    MAC move re-translates the flows that looked that address up (OVS tags
    its megaflows the same way), not every installed flow."""

    def __init__(self) -> None:
        self._by_entry: dict[tuple[object, int, bytes], set[MacDependent]] = {}
        self._entries: dict[MacDependent, list[tuple[object, int, bytes]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, flow: MacDependent) -> None:
        """Index ``flow`` (again, after its translation changed)."""
        self.discard(flow)
        if not flow.mac_lookups:
            return
        names = [(flow.owner, vlan, mac) for vlan, mac in flow.mac_lookups]
        for name in names:
            self._by_entry.setdefault(name, set()).add(flow)
        self._entries[flow] = names

    def discard(self, flow: MacDependent) -> None:
        for name in self._entries.pop(flow, ()):
            flows = self._by_entry.get(name)
            if flows is not None:
                flows.discard(flow)
                if not flows:
                    del self._by_entry[name]

    def clear(self) -> None:
        self._by_entry.clear()
        self._entries.clear()

    def affected(self, changes: Iterable[tuple[object, int, bytes]]) -> list[MacDependent]:
        """The flows that looked up any (owner, vlan, mac) of ``changes``."""
        found: dict[MacDependent, None] = {}
        for change in changes:
            for flow in self._by_entry.get(change, ()):
                found[flow] = None
        return list(found)
