"""Keeping installed megaflows honest: re-translation, statistics, aging.

Every megaflow userspace installs gets a ``FlowRecord`` (OVS's "ukey"): the
packet key that created it, its mask and actions, the OpenFlow rules it went
through and the datapath counters already credited to them.  After a
flow-table or MAC-learning change ``revalidate`` re-translates every record and
fixes or deletes the stale flows; ``sweep`` (once a second) pushes counter
deltas onto rules, refreshes MAC entries and deletes idle datapath flows.

A flow found in the datapath without a record (installed by a previous
process) is *adopted*: re-translated from its masked key, kept or fixed in
place when the translation still fits its mask, deleted otherwise.  While
``leave_unknown`` is set (a restarted daemon whose ports are not all back
yet) such flows are left alone.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ovsbpfd import coverage
from ovsbpfd.dpif.provider import Dpif, DpifError
from ovsbpfd.dpif.types import DpAction, DpFlow, FlowKey, FlowStats
from ovsbpfd.ofproto.reval_index import ChangeIndex, MacIndex, RuleChange
from ovsbpfd.ofproto.rule import Rule
from ovsbpfd.ofproto.upcall_stats import DumpStats
from ovsbpfd.ofproto.xlate import TableLookup, XlateResult

log = logging.getLogger(__name__)

IDLE_FLOW_NS = 10 * 1_000_000_000

KEPT, FIXED, DELETED = "kept", "fixed", "deleted"
# datapath calls this process makes, as OVS's dpif.c counts them
_FLOW_PUT = coverage.counter("dpif_flow_put")
_FLOW_DEL = coverage.counter("dpif_flow_del")


class FlowOwner(Protocol):
    """The bridge a megaflow belongs to, as far as statistics go."""

    def credit_tables(self, looked_up: Sequence[int], matched: Sequence[int],
                      packets: int) -> None: ...

    def refresh_mac(self, vlan: int, mac: bytes, port: int) -> None: ...


# key -> (owner, translation) or None when no bridge owns the key's in_port.
Translator = Callable[[FlowKey], "tuple[FlowOwner, XlateResult] | None"]


@dataclass(eq=False)
class FlowRecord:
    key: FlowKey
    mask: FlowKey
    actions: tuple[DpAction, ...]
    owner: FlowOwner
    rules: list[Rule] = field(default_factory=list)
    counters: list = field(default_factory=list)  # group/bucket counters (``credit``)
    tables: list[int] = field(default_factory=list)
    learned: list[tuple[int, bytes, int]] = field(default_factory=list)
    lookups: list[TableLookup] = field(default_factory=list)
    mac_lookups: list[tuple[int, bytes]] = field(default_factory=list)
    packets: int = 0  # datapath counters already credited
    bytes: int = 0
    created_ns: int = 0

    @property
    def ident(self) -> tuple[bytes, bytes]:
        return flow_ident(self.key, self.mask)

    def adopt(self, result: XlateResult) -> None:
        self.actions = tuple(result.actions)
        self.rules = list(result.rules)
        self.tables = list(result.tables)
        self.learned = list(result.learned)
        self.counters = list(result.counters)
        self.lookups = result.lookups
        self.mac_lookups = result.mac_lookups


def flow_ident(key: FlowKey, mask: FlowKey) -> tuple[bytes, bytes]:
    return key.masked_bytes(mask), mask.pack()


def mask_covers(flow_mask: FlowKey, needed: FlowKey) -> bool:
    """True if a flow with ``flow_mask`` matches every bit a translation consulted.

    Then every packet the flow matches translates the same way, so its
    actions are right even if the mask is narrower than needed (more bits).
    """
    return flow_mask.covers(needed)


class Revalidator:
    def __init__(self, dpif: Dpif, translate: Translator) -> None:
        self.dpif = dpif
        self.translate = translate
        self.records: dict[tuple[bytes, bytes], FlowRecord] = {}
        self.index = ChangeIndex()
        self.mac_index = MacIndex()
        self.n_revalidations = 0
        self.n_scoped = 0  # revalidations limited to flows a rule change may affect
        self.leave_unknown = False
        self.dump_stats = DumpStats()

    def __len__(self) -> int:
        return len(self.records)

    # ------------------------------------------------------------ install
    def install(self, key: FlowKey, owner: FlowOwner, result: XlateResult) -> FlowRecord | None:
        """Put the translated megaflow into the datapath and remember it.

        Duplicate upcalls for one megaflow keep the counters already pushed."""
        return self.install_many([(key, owner, result)])[0]

    def install_many(self, flows: Sequence[tuple[FlowKey, FlowOwner, XlateResult]],
                     ) -> list[FlowRecord | None]:
        """``install`` for each translated upcall of a batch, in order, with
        the datapath writes handed over together (``Dpif.flow_put_many``)."""
        puts = [(key, result.mask, tuple(result.actions)) for key, _owner, result in flows]
        errors = self._put_flows(puts)
        _FLOW_PUT.inc(len(puts))
        records: list[FlowRecord | None] = []
        now_ns: int | None = None
        for (key, owner, result), (_key, mask, actions), err in zip(flows, puts, errors,
                                                                    strict=True):
            if err is not None:
                log.warning("cannot install datapath flow (%s): %s", errno.errorcode.get(
                    err.errno, err.errno), err)
                records.append(None)
                continue
            ident = flow_ident(key, mask)
            record = self.records.get(ident)
            if record is None:  # the usual case: built from the translation at once
                if now_ns is None:
                    now_ns = self.dpif.now_ns()
                record = FlowRecord(key, mask, actions, owner, list(result.rules),
                                    list(result.counters), list(result.tables),
                                    list(result.learned), result.lookups, result.mac_lookups,
                                    created_ns=now_ns)
                self.records[ident] = record
            else:
                record.owner = owner
                record.adopt(result)
            self._index(record)
            records.append(record)
        return records

    def _put_flows(self, puts: list[tuple[FlowKey, FlowKey, tuple[DpAction, ...]]],
                   ) -> list[DpifError | None]:
        """Write a batch of translated megaflows: the ones no record knows go
        to ``Dpif.flow_add_many`` together (after a takeover every datapath
        flow has a record); a flow that has one (a repeated upcall, or a
        second one in this batch) is then put one by one, which keeps its
        counters, in batch order."""
        if self.leave_unknown:  # a previous process's flows may be there
            return self.dpif.flow_put_many(puts)
        new: list[int] = []
        known: list[int] = []
        seen: set[tuple[bytes, bytes]] = set()
        for i, (key, mask, _actions) in enumerate(puts):
            ident = flow_ident(key, mask)
            if ident in self.records or ident in seen:
                known.append(i)
            else:
                seen.add(ident)
                new.append(i)
        errors: list[DpifError | None] = [None] * len(puts)
        if new:
            for i, err in zip(new, self.dpif.flow_add_many([puts[i] for i in new]),
                              strict=True):
                errors[i] = err
        if known:
            for i, err in zip(known, self.dpif.flow_put_many([puts[i] for i in known]),
                              strict=True):
                errors[i] = err
        return errors

    # ------------------------------------------------------------ revalidate
    def revalidate(self) -> int:
        """Re-translate every installed flow; return how many were changed."""
        self.n_revalidations += 1
        return sum(self._recheck(record) for record in list(self.records.values()))

    def revalidate_changes(self, changes: list[RuleChange]) -> int:
        """Re-translate only the flows these rule changes may affect (see
        ``reval_index``); return how many were changed."""
        self.n_scoped += 1
        changed = 0
        for record in self.index.affected(changes):
            if self.records.get(record.ident) is record:  # not deleted meanwhile
                changed += self._recheck(record)
        return changed

    def revalidate_macs(self, changes: list[tuple[FlowOwner, int, bytes]]) -> int:
        """Re-translate only the flows whose NORMAL looked up one of these
        (owner, vlan, mac) entries, which MAC learning added or moved;
        return how many were changed."""
        self.n_scoped += 1
        changed = 0
        for record in self.mac_index.affected(changes):
            if self.records.get(record.ident) is record:  # not deleted meanwhile
                changed += self._recheck(record)
        return changed

    def _index(self, record: FlowRecord) -> None:
        self.index.add(record)
        self.mac_index.add(record)

    def _recheck(self, record: FlowRecord) -> int:
        """Fix or delete ``record``'s flow if its translation changed; 1 if it did."""
        translated = self.translate(record.key)
        if translated is None:
            self._delete(record)
            return 1
        owner, result = translated
        actions = tuple(result.actions)
        if not mask_covers(record.mask, result.mask) or owner is not record.owner:
            self._delete(record)
            return 1
        if actions != record.actions:
            try:
                _FLOW_PUT.inc()
                self.dpif.flow_put(record.key, record.mask, actions, create=False)
            except DpifError:
                self._delete(record)
                return 1
            record.adopt(result)
            self._index(record)
            return 1
        record.adopt(result)
        self._index(record)
        return 0

    def _delete(self, record: FlowRecord) -> None:
        _FLOW_DEL.inc()
        stats = self.dpif.flow_del(record.key, record.mask)
        if stats is not None:
            self._credit(record, stats)
        if self.records.get(record.ident) is record:
            del self.records[record.ident]
        self.index.discard(record)
        self.mac_index.discard(record)

    def purge(self) -> int:
        """Delete every flow this process installed or adopted, its last
        counters credited to its rules first (``revalidator/purge``); the
        next packets upcall again.  Returns how many there were."""
        records = list(self.records.values())
        for record in records:
            self._delete(record)
        return len(records)

    def forget_all(self) -> None:
        """The datapath was flushed behind our back (``dpctl/del-flows``):
        drop every record, so no stale counter baseline survives; traffic
        since the last sweep is not credited, as in OVS."""
        self.records.clear()
        self.index = ChangeIndex()
        self.mac_index = MacIndex()

    def forget_owner(self, owner: FlowOwner) -> None:
        """Delete the datapath flows of a bridge that is going away."""
        for record in list(self.records.values()):
            if record.owner is owner:
                self._delete(record)

    # ------------------------------------------------------------ sweep
    def sweep(self, idle_ns: int = IDLE_FLOW_NS) -> None:
        """Push datapath counters to rules; delete idle and unknown flows."""
        started = time.monotonic()
        now_ns = self.dpif.now_ns()
        seen: set[tuple[bytes, bytes]] = set()
        dumped = self.dpif.flow_dump_stats()
        for key_bytes, mask_bytes, stats in dumped:
            ident = (key_bytes, mask_bytes)
            record = self.records.get(ident)
            if record is None:
                if self.leave_unknown:
                    continue
                flow = self.dpif.flow_get(FlowKey.unpack(key_bytes), FlowKey.unpack(mask_bytes))
                if flow is None or self.adopt(flow) == DELETED:
                    continue
                record = self.records[ident]
            seen.add(ident)
            self._credit(record, stats, now_ns)
            last = stats.used_ns or record.created_ns
            if now_ns - last >= idle_ns:
                self._delete(record)
        for ident in [i for i in self.records if i not in seen]:
            gone = self.records.pop(ident)  # the datapath no longer has it
            self.index.discard(gone)
            self.mac_index.discard(gone)
        self.dump_stats.record(len(dumped), int((time.monotonic() - started) * 1000))

    # ------------------------------------------------------------ adoption
    def adopt(self, flow: DpFlow) -> str:
        """Take over a datapath flow this process did not install (a restart).

        KEPT if its translation still fits (same actions, mask covering what
        the translation consulted), FIXED if only its actions were stale
        (changed in place, so the megaflow never disappears), DELETED if it
        belongs to no port or its mask no longer fits.  A kept or fixed flow
        gets a record whose baseline is its current counters, so traffic
        from before the restart is not credited to rules again.
        """
        translated = self.translate(flow.key)
        if translated is None or not mask_covers(flow.mask, translated[1].mask):
            _FLOW_DEL.inc()
            self.dpif.flow_del(flow.key, flow.mask)
            return DELETED
        owner, result = translated
        actions = tuple(result.actions)
        outcome = KEPT
        if actions != tuple(flow.actions):
            try:
                _FLOW_PUT.inc()
                self.dpif.flow_put(flow.key, flow.mask, actions, create=False)
            except DpifError as err:
                log.info("cannot fix adopted datapath flow (%s): deleting it", err)
                _FLOW_DEL.inc()
                self.dpif.flow_del(flow.key, flow.mask)
                return DELETED
            outcome = FIXED
        record = FlowRecord(flow.key, flow.mask, actions, owner, packets=flow.stats.packets,
                            bytes=flow.stats.bytes, created_ns=self.dpif.now_ns())
        record.adopt(result)
        self.records[record.ident] = record
        self._index(record)
        return outcome

    def _credit(self, record: FlowRecord, stats: FlowStats, now_ns: int | None = None) -> None:
        packets = stats.packets - record.packets
        nbytes = stats.bytes - record.bytes
        if packets <= 0 and nbytes <= 0:
            return
        record.packets, record.bytes = stats.packets, stats.bytes
        when = time.monotonic()
        if stats.used_ns and now_ns is not None:
            when -= max(0, now_ns - stats.used_ns) / 1e9
        for rule in record.rules:
            rule.credit(packets, nbytes, when)
        for counter in record.counters:
            counter.credit(packets, nbytes)
        record.owner.credit_tables(record.tables, [r.table_id for r in record.rules], packets)
        for vlan, mac, port in record.learned:
            record.owner.refresh_mac(vlan, mac, port)
