"""The flow tables of one bridge and the FLOW_MOD semantics over them.

This is pure table bookkeeping: validation, translation and datapath effects
live elsewhere (``validation``, ``xlate``, ``revalidator``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.actions import Instruction
from ovsbpfd.ofproto.classifier import FlowTable
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.rule import Rule
from ovsbpfd.ofproto.types import (
    OFPET_FLOW_MOD_FAILED,
    OFPFC_ADD,
    OFPFC_DELETE,
    OFPFC_DELETE_STRICT,
    OFPFC_MODIFY,
    OFPFF_CHECK_OVERLAP,
    OFPFF_RESET_COUNTS,
    OFPRR_DELETE,
    OFPRR_HARD_TIMEOUT,
    OFPRR_IDLE_TIMEOUT,
    OFPTT_ALL,
    BatchFailed,
    FlowMod,
    FlowStatsEntry,
    FlowStatsRequest,
    OfpError,
    TableStats,
)
from ovsbpfd.ofproto.validation import N_TABLES

MAX_RULES_PER_TABLE = 1_000_000


@dataclass
class FlowModOutcome:
    """What a FLOW_MOD did: ``removed`` pairs a rule with its removal reason;
    ``replaced`` is the rule an ADD took the place of, ``modified`` the rules
    whose instructions a MODIFY changed."""

    changed: bool = False
    added: Rule | None = None
    removed: list[tuple[Rule, int]] = field(default_factory=list)
    replaced: Rule | None = None
    modified: list[Rule] = field(default_factory=list)
    # what ``undo`` needs: modified rules' earlier (instructions, packets, bytes)
    _before: list[tuple[tuple[Instruction, ...], tuple[int, int]]] = field(
        default_factory=list)

    def changed_rules(self) -> list[Rule]:
        """Every rule whose presence or instructions changed."""
        rules = [r for r, _reason in self.removed] + self.modified
        if self.added is not None:
            rules.append(self.added)
        return rules


class Pipeline:
    def __init__(self, n_tables: int = N_TABLES) -> None:
        # Subtable reorderings (table, low, high priority) since the owner
        # last took them (``take_reorders``), for scoped revalidation.
        self._reorders: list[tuple[int, int, int]] = []
        self.tables = [FlowTable(i, self._reorders) for i in range(n_tables)]
        self._timed: set[Rule] = set()  # rules with a timeout (may be stale)

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables)

    def take_reorders(self) -> list[tuple[int, int, int]]:
        """The subtable reorderings since the last call (see ``FlowTable``)."""
        taken = list(self._reorders)
        self._reorders.clear()
        return taken

    def rules(self) -> list[Rule]:
        return [r for t in self.tables for r in t]

    # ------------------------------------------------------------ flow_mod
    def apply(self, fm: FlowMod) -> FlowModOutcome:
        """Apply a validated FLOW_MOD (see ``validation.check_flow_mod``)."""
        if fm.command == OFPFC_ADD:
            return self._add(fm)
        if fm.command in (OFPFC_DELETE, OFPFC_DELETE_STRICT):
            strict = fm.command == OFPFC_DELETE_STRICT
            victims = self.select(fm.table_id, fm.match, fm.priority, strict, fm.cookie,
                                  fm.cookie_mask, fm.out_port, fm.out_group)
            for rule in victims:
                self.tables[rule.table_id].remove(rule)
            return FlowModOutcome(bool(victims), None, [(r, OFPRR_DELETE) for r in victims])
        strict = fm.command != OFPFC_MODIFY
        targets = self.select(fm.table_id, fm.match, fm.priority, strict, fm.cookie,
                              fm.cookie_mask)
        outcome = FlowModOutcome(bool(targets), modified=targets)
        for rule in targets:
            outcome._before.append((rule.instructions, (rule.packet_count, rule.byte_count)))
            rule.instructions = fm.instructions
            if fm.flags & OFPFF_RESET_COUNTS:
                rule.packet_count = rule.byte_count = 0
        return outcome

    def apply_all(self, fms: list[FlowMod], check: Callable[[FlowMod], None]
                  ) -> list[FlowModOutcome]:
        """Apply every FLOW_MOD in order, or none: ``check`` (validation) and
        the table semantics may refuse one, and then the ones before it are
        undone and ``BatchFailed`` says which one and why."""
        done: list[FlowModOutcome] = []
        for index, fm in enumerate(fms):
            try:
                check(fm)
                done.append(self.apply(fm))
            except OfpError as err:
                for outcome in reversed(done):
                    self.undo(outcome)
                raise BatchFailed(index, err) from None
        return done

    def undo(self, outcome: FlowModOutcome) -> None:
        """Put the tables back as they were before the FLOW_MOD of ``outcome``."""
        if outcome.added is not None:
            self.tables[outcome.added.table_id].remove(outcome.added)
            self._timed.discard(outcome.added)
            if outcome.replaced is not None:
                self.tables[outcome.replaced.table_id].insert(outcome.replaced)
        for rule, _reason in outcome.removed:
            self.tables[rule.table_id].insert(rule)
        for rule, (instructions, (packets, nbytes)) in zip(outcome.modified, outcome._before,
                                                           strict=True):
            rule.instructions = instructions
            rule.packet_count, rule.byte_count = packets, nbytes

    def _add(self, fm: FlowMod) -> FlowModOutcome:
        table = self.tables[fm.table_id]
        # As ovs-vswitchd: an identical flow is replaced, never an overlap.
        if fm.flags & OFPFF_CHECK_OVERLAP and table.find_strict(fm.match, fm.priority) is None \
                and table.find_overlapping(fm.match, fm.priority):
            raise OfpError(OFPET_FLOW_MOD_FAILED, ec.OFPFMFC_OVERLAP,
                           "an overlapping flow has the same priority")
        if len(table) >= MAX_RULES_PER_TABLE and table.find_strict(fm.match, fm.priority) is None:
            raise OfpError(OFPET_FLOW_MOD_FAILED, ec.OFPFMFC_TABLE_FULL, "table full")
        rule = Rule(fm.table_id, fm.priority, fm.match, fm.instructions, fm.cookie,
                    fm.idle_timeout, fm.hard_timeout, fm.flags)
        old = table.insert(rule)
        if rule.idle_timeout or rule.hard_timeout:
            self._timed.add(rule)
        if old is not None and not fm.flags & OFPFF_RESET_COUNTS:
            rule.packet_count, rule.byte_count = old.packet_count, old.byte_count
        return FlowModOutcome(True, rule, replaced=old)

    def add_rule(self, rule: Rule) -> None:
        """Install a rule directly (the bridge's default flows)."""
        self.tables[rule.table_id].insert(rule)

    def remove_rule(self, rule: Rule) -> None:
        table = self.tables[rule.table_id]
        if table.find_strict(rule.match, rule.priority) is rule:
            table.remove(rule)

    # ------------------------------------------------------------ queries
    def select(self, table_id: int, match: Match, priority: int, strict: bool,
               cookie: int = 0, cookie_mask: int = 0, out_port: int = 0xFFFFFFFF,
               out_group: int = 0xFFFFFFFF) -> list[Rule]:
        """Rules a FLOW_MOD or stats request with these filters names."""
        tables = self.tables if table_id == OFPTT_ALL else [self.tables[table_id]]
        found: list[Rule] = []
        for table in tables:
            if strict:
                hit = table.find_strict(match, priority)
                candidates = [hit] if hit is not None else []
            else:
                candidates = table.find_loose(match) if len(match) else list(table)
            found.extend(r for r in candidates
                         if r.cookie_matches(cookie, cookie_mask)
                         and r.outputs_to(out_port) and r.uses_group(out_group))
        return found

    def flow_stats(self, req: FlowStatsRequest) -> list[FlowStatsEntry]:
        if req.table_id != OFPTT_ALL and req.table_id >= len(self.tables):
            raise OfpError(1, ec.OFPBRC_BAD_TABLE_ID, f"table {req.table_id}")
        now = time.monotonic()
        entries = []
        rules = self.select(req.table_id, req.match, 0, False, req.cookie, req.cookie_mask,
                            req.out_port, req.out_group)
        rules.sort(key=lambda r: (r.table_id, -r.priority))
        for rule in rules:
            sec, nsec = rule.duration(now)
            entries.append(FlowStatsEntry(
                rule.table_id, sec, nsec, rule.priority, rule.idle_timeout,
                rule.hard_timeout, rule.flags, rule.cookie, rule.packet_count,
                rule.byte_count, rule.match, rule.instructions))
        return entries

    def table_stats(self) -> list[TableStats]:
        return [TableStats(t.table_id, len(t), t.lookup_count, t.matched_count)
                for t in self.tables]

    # ------------------------------------------------------------ timeouts
    def expire(self, now: float | None = None) -> list[tuple[Rule, int]]:
        """Remove rules whose hard or idle timeout has passed."""
        now = time.monotonic() if now is None else now
        expired: list[tuple[Rule, int]] = []
        for rule in list(self._timed):
            if self.tables[rule.table_id].find_strict(rule.match, rule.priority) is not rule:
                self._timed.discard(rule)  # already removed or replaced
            elif rule.hard_timeout and now - rule.created >= rule.hard_timeout:
                expired.append((rule, OFPRR_HARD_TIMEOUT))
            elif rule.idle_timeout and now - rule.last_used >= rule.idle_timeout:
                expired.append((rule, OFPRR_IDLE_TIMEOUT))
        for rule, _reason in expired:
            self.tables[rule.table_id].remove(rule)
            self._timed.discard(rule)
        return expired
