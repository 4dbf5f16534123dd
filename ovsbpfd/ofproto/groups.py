"""The group table of one bridge and the GROUP_MOD rules of OpenFlow 1.3.

Pure bookkeeping: which groups exist, what a GROUP_MOD may change and which
errors it gets.  Which bucket a packet takes is ``group_xlate``'s job; the
flows a deleted group takes with it are the bridge's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.actions import OFPG_ALL, OFPG_ANY, OFPP_ANY, ActGroup, Action
from ovsbpfd.ofproto.types import (
    OFPET_BAD_ACTION,
    OFPET_GROUP_MOD_FAILED,
    OFPGC_ADD,
    OFPGC_DELETE,
    OFPGC_MODIFY,
    OFPGT_ALL,
    OFPGT_FF,
    OFPGT_INDIRECT,
    OFPGT_SELECT,
    Bucket,
    GroupMod,
    GroupStats,
    OfpError,
)

OFPG_MAX = 0xFFFFFF00
MAX_GROUPS = 65536
MAX_BUCKETS = 256
GROUP_TYPES = (OFPGT_ALL, OFPGT_SELECT, OFPGT_INDIRECT, OFPGT_FF)


def _error(code: int, message: str) -> OfpError:
    return OfpError(OFPET_GROUP_MOD_FAILED, code, message)


@dataclass
class Counter:
    """Packet and byte counts fed from upcalls and datapath flow statistics."""

    packets: int = 0
    bytes: int = 0

    def credit(self, packets: int, nbytes: int, when: float | None = None) -> None:
        self.packets += max(packets, 0)
        self.bytes += max(nbytes, 0)


def has_liveness(bucket: Bucket) -> bool:
    return bucket.watch_port != OFPP_ANY or bucket.watch_group != OFPG_ANY


def forwards_to(actions: Iterable[Action]) -> set[int]:
    """Group ids that ``actions`` send the packet to."""
    return {a.group_id for a in actions if isinstance(a, ActGroup)}


@dataclass(eq=False)
class Group:
    group_id: int
    type: int
    buckets: tuple[Bucket, ...]
    created: float = field(default_factory=time.monotonic)
    counter: Counter = field(default_factory=Counter)
    bucket_counters: list[Counter] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.bucket_counters) != len(self.buckets):
            self.bucket_counters = [Counter() for _ in self.buckets]

    def targets(self) -> set[int]:
        """Groups this group's buckets forward to (chaining)."""
        found: set[int] = set()
        for bucket in self.buckets:
            found |= forwards_to(bucket.actions)
        return found

    def describe(self) -> GroupMod:
        return GroupMod(OFPGC_ADD, self.type, self.group_id, self.buckets)

    def stats(self, ref_count: int, now: float | None = None) -> GroupStats:
        elapsed = (time.monotonic() if now is None else now) - self.created
        return GroupStats(self.group_id, ref_count, self.counter.packets, self.counter.bytes,
                          int(elapsed), int((elapsed % 1) * 1e9),
                          tuple((c.packets, c.bytes) for c in self.bucket_counters))


@dataclass
class GroupModOutcome:
    """What a GROUP_MOD did: the ids it deleted (their flows must go too)."""

    deleted: list[int] = field(default_factory=list)
    changed: bool = False


class GroupTable:
    def __init__(self) -> None:
        self.groups: dict[int, Group] = {}

    def __len__(self) -> int:
        return len(self.groups)

    def __contains__(self, group_id: int) -> bool:
        return group_id in self.groups

    def get(self, group_id: int) -> Group | None:
        return self.groups.get(group_id)

    def sorted(self) -> list[Group]:
        return [self.groups[g] for g in sorted(self.groups)]

    # ------------------------------------------------------------ GROUP_MOD
    def apply(self, gm: GroupMod,
              check_actions: Callable[[tuple[Action, ...]], None]) -> GroupModOutcome:
        """Apply ``gm`` or raise ``OfpError`` leaving the table unchanged.

        ``check_actions`` refuses bucket actions the datapath cannot perform
        (the spec's BAD_ACTION errors, as for flow mods)."""
        if gm.command == OFPGC_DELETE:
            return self._delete(gm.group_id)
        if gm.command not in (OFPGC_ADD, OFPGC_MODIFY):
            raise _error(ec.OFPGMFC_BAD_COMMAND, f"command {gm.command}")
        if not 0 <= gm.group_id <= OFPG_MAX:
            raise _error(ec.OFPGMFC_INVALID_GROUP, f"group id {gm.group_id:#x}")
        exists = gm.group_id in self.groups
        if gm.command == OFPGC_ADD and exists:
            raise _error(ec.OFPGMFC_GROUP_EXISTS, f"group {gm.group_id} exists")
        if gm.command == OFPGC_MODIFY and not exists:
            raise _error(ec.OFPGMFC_UNKNOWN_GROUP, f"group {gm.group_id} does not exist")
        if not exists and len(self.groups) >= MAX_GROUPS:
            raise _error(ec.OFPGMFC_OUT_OF_GROUPS, "group table full")
        self._check_structure(gm)
        for bucket in gm.buckets:
            check_actions(bucket.actions)
        self._check_chaining(gm)
        old = self.groups.get(gm.group_id)
        group = Group(gm.group_id, gm.type, tuple(gm.buckets))
        if old is not None:  # a modified group keeps its age and totals
            group.created, group.counter = old.created, old.counter
        self.groups[gm.group_id] = group
        return GroupModOutcome(changed=True)

    def _check_structure(self, gm: GroupMod) -> None:
        if gm.type not in GROUP_TYPES:
            raise _error(ec.OFPGMFC_BAD_TYPE, f"group type {gm.type}")
        if len(gm.buckets) > MAX_BUCKETS:
            raise _error(ec.OFPGMFC_OUT_OF_BUCKETS, f"{len(gm.buckets)} buckets")
        if gm.type == OFPGT_INDIRECT and len(gm.buckets) != 1:
            raise _error(ec.OFPGMFC_INVALID_GROUP, "an indirect group has exactly one bucket")
        for bucket in gm.buckets:
            if bucket.weight and gm.type != OFPGT_SELECT:
                raise _error(ec.OFPGMFC_INVALID_GROUP, "only select groups have bucket weights")
            if gm.type in (OFPGT_ALL, OFPGT_INDIRECT) and has_liveness(bucket):
                raise _error(ec.OFPGMFC_WATCH_UNSUPPORTED,
                             "all and indirect groups watch no port or group")
            if gm.type == OFPGT_FF and not has_liveness(bucket):
                raise _error(ec.OFPGMFC_INVALID_GROUP, "a fast failover bucket must watch")

    def _check_chaining(self, gm: GroupMod) -> None:
        """Chained groups must exist and must not lead back to ``gm``."""
        targets: set[int] = set()
        for bucket in gm.buckets:
            targets |= forwards_to(bucket.actions)
        for target in sorted(targets):
            if target == gm.group_id:
                raise _error(ec.OFPGMFC_LOOP, f"group {gm.group_id} forwards to itself")
            if target not in self.groups:
                # a bucket's group action naming no group: BAD_ACTION, as in flows
                raise OfpError(OFPET_BAD_ACTION, ec.OFPBAC_BAD_OUT_GROUP,
                              f"group {target} does not exist")
        if gm.group_id in self.groups and self._reaches(targets, gm.group_id):
            raise _error(ec.OFPGMFC_LOOP, f"group {gm.group_id} would forward to itself")

    def _reaches(self, start: set[int], goal: int) -> bool:
        seen: set[int] = set()
        todo = list(start)
        while todo:
            gid = todo.pop()
            if gid == goal:
                return True
            if gid in seen or gid not in self.groups:
                continue
            seen.add(gid)
            todo.extend(self.groups[gid].targets())
        return False

    def _delete(self, group_id: int) -> GroupModOutcome:
        if group_id == OFPG_ALL:
            deleted = sorted(self.groups)
            self.groups.clear()
            return GroupModOutcome(deleted, bool(deleted))
        if group_id not in self.groups:
            return GroupModOutcome()  # the spec: no error, nothing deleted
        users = [g.group_id for g in self.groups.values()
                 if g.group_id != group_id and group_id in g.targets()]
        if users:
            raise _error(ec.OFPGMFC_CHAINED_GROUP,
                         f"group {group_id} is forwarded to by group {users[0]}")
        del self.groups[group_id]
        return GroupModOutcome([group_id], True)

    # ------------------------------------------------------------ queries
    def referrers(self, group_id: int) -> int:
        """How many groups forward to ``group_id`` (its ref_count from groups)."""
        return sum(1 for g in self.groups.values() if group_id in g.targets())
