"""The one datapath all bridges share, and the userspace half of forwarding.

Like OVS's ``ofproto-dpif`` backer: it owns the datapath port space (dp port
-> bridge and OpenFlow port), handles upcalls on the event loop (a miss is
translated, installed as a megaflow and executed; a ``userspace`` action
becomes a PACKET_IN), schedules revalidation after changes and runs the
once-a-second sweep (counters, idle flows, timeouts, MAC aging).

Restart takeover: a backer opened on a datapath that already holds flows (a
previous daemon's, still forwarding) leaves them alone until its bridges and
ports are back (``finish_takeover``); then it re-learns MAC addresses from
them, adopts the ones that still translate the same, fixes or deletes the
rest, and removes datapath ports no bridge claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ovsbpfd import coverage
from ovsbpfd.dpif.format import format_flow
from ovsbpfd.dpif.provider import Dpif
from ovsbpfd.dpif.types import (
    UPCALL_ACTION,
    UPCALL_MISS,
    DpAction,
    DpFlow,
    DpPort,
    FlowKey,
    Upcall,
)
from ovsbpfd.ofproto.mac_learning import MacLearning
from ovsbpfd.ofproto.reval_index import RuleChange
from ovsbpfd.ofproto.revalidator import (
    DELETED,
    FIXED,
    KEPT,
    FlowOwner,
    Revalidator,
    flow_ident,
    mask_covers,
)
from ovsbpfd.ofproto.upcall_stats import format_upcall_show
from ovsbpfd.ofproto.xlate import PacketInSpec, XlateResult

log = logging.getLogger(__name__)

UPCALL_BATCH = 64
BATCHES_PER_WAKEUP = 8  # bound the work per event-loop callback
REVALIDATE_DELAY_S = 0.02  # coalesce bursts of changes that need a full pass
# Rule changes queued beyond this many are cheaper to handle with one full pass.
MAX_SCOPED_CHANGES = 256
SWEEP_INTERVAL_S = 1.0
TAKEOVER_CHUNK = 256  # flows handled between yields to the event loop
_FULL_MAC = b"\xff" * 6
# datapath calls this process makes, as OVS's dpif.c counts them
_PORT_ADD = coverage.counter("dpif_port_add")
_PORT_DEL = coverage.counter("dpif_port_del")
_EXECUTE = coverage.counter("dpif_execute")
_FLOW_FLUSH = coverage.counter("dpif_flow_flush")


class BackedBridge(FlowOwner, Protocol):
    """What the backer needs from a bridge (``OfprotoBridge``)."""

    name: str
    mac: MacLearning

    def translate_key(self, key: FlowKey, in_ofport: int, side_effects: bool) -> XlateResult: ...

    def emit_packet_in(self, spec: PacketInSpec, data: bytes, total_len: int) -> None: ...

    def periodic(self) -> None: ...


@dataclass
class TakeoverResult:
    """What ``finish_takeover`` did with a previous process's datapath state."""

    kept: int = 0
    fixed: int = 0
    deleted: int = 0
    relearned: int = 0  # MAC entries re-learned from adopted flows
    released_ports: tuple[str, ...] = ()


class DatapathBacker:
    def __init__(self, dpif: Dpif) -> None:
        self.dpif = dpif
        self.bridges: dict[str, BackedBridge] = {}
        self._ports: dict[int, tuple[BackedBridge, int]] = {}  # dp port -> (bridge, ofport)
        self._internal: set[int] = set()
        self.revalidator = Revalidator(dpif, self._translate_for_revalidation)
        self._cookies: dict[PacketInSpec, int] = {}
        self._specs: dict[int, PacketInSpec] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task | None = None
        self._reval_handle: asyncio.TimerHandle | None = None
        self._reval_pending = False
        # Rule changes not yet revalidated (a pending full pass covers them).
        self._rule_changes: list[RuleChange] = []
        # MAC-learning entries added or moved since, as (bridge, vlan, mac).
        self._mac_changes: list[tuple[BackedBridge, int, bytes]] = []
        self.upcall_batch = UPCALL_BATCH
        self._scoped_handle: asyncio.Handle | None = None
        self.n_upcalls = 0
        self.n_action_upcalls = 0
        # Flows already in the datapath belong to a previous process: keep
        # them untouched until finish_takeover (their ports are not back yet).
        self.takeover_pending = dpif.stats().n_flows > 0
        self.revalidator.leave_unknown = self.takeover_pending

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.dpif.upcall_fd(), self._on_upcall_fd)
        self._sweeper = self._loop.create_task(self._sweep_forever())
        if self._reval_pending:
            self._schedule_revalidation()
        if self._rule_changes or self._mac_changes:
            self._schedule_scoped()

    async def stop(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.dpif.upcall_fd())
        if self._reval_handle is not None:
            self._reval_handle.cancel()
            self._reval_handle = None
        if self._scoped_handle is not None:
            self._scoped_handle.cancel()
            self._scoped_handle = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._loop = None

    # ------------------------------------------------------------ bridges and ports
    def add_bridge(self, bridge: BackedBridge) -> None:
        if bridge.name in self.bridges:
            raise ValueError(f"bridge {bridge.name} already exists")
        self.bridges[bridge.name] = bridge

    def remove_bridge(self, bridge: BackedBridge) -> None:
        for dp_port, (owner, _ofport) in list(self._ports.items()):
            if owner is bridge:
                self.detach_port(dp_port)
        self.revalidator.forget_owner(bridge)
        self.bridges.pop(bridge.name, None)
        for spec in [s for s in self._cookies if s.bridge == bridge.name]:
            self._specs.pop(self._cookies.pop(spec), None)

    def attach_port(self, bridge: BackedBridge, ofport: int, name: str, ifindex: int,
                    internal: bool = False) -> int:
        """Add the netdev to the datapath; return its datapath port number."""
        _PORT_ADD.inc()
        dp_port = self.dpif.port_add(name, ifindex)
        self._ports[dp_port] = (bridge, ofport)
        if internal:
            self._internal.add(dp_port)
        return dp_port

    def detach_port(self, dp_port: int) -> None:
        self._ports.pop(dp_port, None)
        self._internal.discard(dp_port)
        _PORT_DEL.inc()
        with contextlib.suppress(Exception):
            self.dpif.port_del(dp_port)
        self.request_revalidation()

    def port_owner(self, dp_port: int) -> tuple[BackedBridge, int] | None:
        return self._ports.get(dp_port)

    # ------------------------------------------------------------ restart takeover
    def release_unclaimed_ports(self) -> list[DpPort]:
        """Remove datapath ports a previous process left that no bridge adopted."""
        released = []
        for port in self.dpif.recovered_ports():
            if port.port_no in self._ports:
                continue
            try:
                self.dpif.port_del(port.port_no)
            except Exception as exc:
                log.warning("cannot release datapath port %s: %s", port.name, exc)
                continue
            released.append(port)
        if released:
            self.request_revalidation()
        return released

    async def finish_takeover(self) -> TakeoverResult:
        """The bridges and ports are back: take over the datapath's flows.

        Called once the configuration has been applied.  Ports nobody claimed
        go first (their flows then translate to nothing and are deleted).
        MAC learning state died with the old process, but the old NORMAL
        flows still say where each source address was seen: it is learned
        again from them first, so they translate to the same unicast
        actions and are kept instead of flooding.  Yields every
        ``TAKEOVER_CHUNK`` flows so a big table does not stall the loop.
        """
        outcome = TakeoverResult()
        outcome.released_ports = tuple(p.name for p in self.release_unclaimed_ports())
        if self.takeover_pending:
            unknown = [f for f in self.dpif.flow_dump()
                       if flow_ident(f.key, f.mask) not in self.revalidator.records]
            outcome.relearned = await self._relearn_macs(unknown)
            counts = {KEPT: 0, FIXED: 0, DELETED: 0}
            for i, flow in enumerate(unknown):
                if i and i % TAKEOVER_CHUNK == 0:
                    await asyncio.sleep(0)
                if flow_ident(flow.key, flow.mask) in self.revalidator.records:
                    continue  # re-installed by an upcall meanwhile
                try:
                    counts[self.revalidator.adopt(flow)] += 1
                except Exception:
                    log.exception("adopting a datapath flow failed")
            outcome.kept, outcome.fixed, outcome.deleted = counts[KEPT], counts[FIXED], \
                counts[DELETED]
        self.takeover_pending = False
        self.revalidator.leave_unknown = False
        if outcome.relearned:
            self.request_revalidation()  # flows installed meanwhile may have flooded
        log.info("datapath takeover: %d flow(s) kept, %d fixed, %d deleted, %d MAC(s) "
                 "re-learned, %d stale port(s) removed", outcome.kept, outcome.fixed,
                 outcome.deleted, outcome.relearned, len(outcome.released_ports))
        return outcome

    async def _relearn_macs(self, flows: list[DpFlow]) -> int:
        """Learn every source MAC the adoptable NORMAL flows were created for.

        Oldest use first, so where a MAC moved, its latest port wins.
        """
        learned = 0
        ordered = sorted(flows, key=lambda f: f.stats.used_ns)
        for i, flow in enumerate(ordered):
            if i and i % TAKEOVER_CHUNK == 0:
                await asyncio.sleep(0)
            owner = self._ports.get(flow.key.in_port)
            if owner is None or flow.mask.eth_src != _FULL_MAC:
                continue
            bridge, ofport = owner
            try:
                result = bridge.translate_key(flow.key, ofport, False)
            except Exception:
                log.exception("translating a datapath flow failed")
                continue
            if not mask_covers(flow.mask, result.mask):
                continue
            for vlan, mac, port in result.learned:
                if bridge.mac.learn(vlan, mac, port):
                    learned += 1
        return learned

    # ------------------------------------------------------------ packet-in cookies
    def packet_in_cookie(self, spec: PacketInSpec) -> int:
        """The ``userspace`` action cookie that stands for ``spec``."""
        cookie = self._cookies.get(spec)
        if cookie is None:
            cookie = len(self._specs) + 1
            while cookie in self._specs:
                cookie += 1
            self._cookies[spec] = cookie
            self._specs[cookie] = spec
        return cookie

    # ------------------------------------------------------------ upcalls
    def _on_upcall_fd(self) -> None:
        for _ in range(BATCHES_PER_WAKEUP):
            if self.handle_upcalls() < self.upcall_batch:
                break

    def handle_upcalls(self) -> int:
        """Drain one batch of upcalls; return how many there were.

        Every miss of the batch is translated first (in arrival order, so
        each sees what the ones before it learned), then all their megaflows
        are installed together, then all their packets executed together:
        the same per-packet outcome as one at a time, with the datapath
        calls batched.  No flow-table change can come in between: it is all
        one event-loop callback."""
        batch = self.dpif.recv(self.upcall_batch)
        mac_changes: list[tuple[BackedBridge, int, bytes]] = []
        evicted = False
        misses: list[tuple[Upcall, BackedBridge, XlateResult]] = []
        for upcall in batch:
            try:
                translated = self._translate_upcall(upcall)
            except Exception:  # one bad packet must not stop forwarding
                log.exception("upcall handling failed")
                continue
            if translated is not None:
                bridge, result = translated
                misses.append((upcall, bridge, result))
                mac_changes.extend((bridge, vlan, mac) for vlan, mac in result.mac_changes)
                evicted |= result.mac_evicted
        if misses:
            self._install_and_execute(misses)
        self.mac_table_changed(mac_changes, evicted)
        return len(batch)

    def _translate_upcall(self, upcall: Upcall) -> tuple[BackedBridge, XlateResult] | None:
        """A PACKET_IN goes out at once; a miss is translated (rules and
        groups credited) and returned to be installed and executed."""
        if upcall.kind == UPCALL_ACTION:
            self.n_action_upcalls += 1
            spec = self._specs.get(upcall.cookie)
            bridge = self.bridges.get(spec.bridge) if spec is not None else None
            if bridge is not None:
                bridge.emit_packet_in(spec, upcall.packet, upcall.packet_len)
            return None
        if upcall.kind != UPCALL_MISS:
            return None
        self.n_upcalls += 1
        owner = self._ports.get(upcall.key.in_port)
        if owner is None:
            return None
        bridge, ofport = owner
        result = bridge.translate_key(upcall.key, ofport, True)
        for rule in result.rules:
            rule.credit(1, upcall.packet_len)
        for counter in result.counters:
            counter.credit(1, upcall.packet_len)
        return bridge, result

    def _install_and_execute(self, misses: list[tuple[Upcall, BackedBridge, XlateResult]]
                             ) -> None:
        try:
            self.revalidator.install_many([(u.key, bridge, result)
                                           for u, bridge, result in misses])
        except Exception:
            log.exception("installing datapath flows failed")
        runs = [(u.packet, result.actions) for u, _bridge, result in misses
                if not u.truncated and result.actions]
        try:
            _EXECUTE.inc(len(runs))
            errors = self.dpif.execute_many(runs)
        except Exception:
            log.exception("executing upcalled packets failed")
            return
        for error in errors:
            if error is not None:
                log.warning("executing an upcalled packet failed: %s", error)

    def execute(self, packet: bytes, actions: Sequence[DpAction]) -> None:
        if actions:
            _EXECUTE.inc()
            self.dpif.execute(packet, actions)

    def _translate_for_revalidation(self, key: FlowKey):
        owner = self._ports.get(key.in_port)
        if owner is None:
            return None
        bridge, ofport = owner
        return bridge, bridge.translate_key(key, ofport, False)

    # ------------------------------------------------------------ revalidation
    def request_revalidation(self) -> None:
        """Re-translate every installed flow soon (coalescing bursts of changes).

        For what may touch any flow: ports, MAC learning, groups, meters."""
        self._reval_pending = True
        self._rule_changes.clear()  # the full pass covers them
        self._mac_changes.clear()
        self._schedule_revalidation()

    def revalidate_rules(self, changes: list[RuleChange]) -> None:
        """Rules were added, removed or modified: fix the flows they may affect.

        Done once the OpenFlow channel has handled the read that brought the
        FLOW_MOD (``settle``), else on the next turn of the event loop, and
        only for the flows the change index names; a long queue of changes
        becomes one full pass instead."""
        if not changes or not self.revalidator.records:
            return  # nothing installed that they could affect
        self._rule_changes.extend(changes)
        if len(self._rule_changes) > MAX_SCOPED_CHANGES:
            self.request_revalidation()
            return
        self._schedule_scoped()

    def mac_table_changed(self, changes: list[tuple[BackedBridge, int, bytes]],
                          evicted: bool = False) -> None:
        """MAC learning added, moved or removed these (bridge, vlan, mac)
        entries; ``evicted``: a full table also dropped its oldest entry to
        make room, and which one that was is not known, so every flow is
        revalidated."""
        if evicted:
            self.request_revalidation()
        elif changes:
            self.revalidate_macs(changes)

    def revalidate_macs(self, changes: list[tuple[BackedBridge, int, bytes]]) -> None:
        """MAC learning added, moved or removed these (bridge, vlan, mac) entries: fix
        the flows whose NORMAL looked them up, on the next turn of the loop
        (a pending full pass covers them; a long queue becomes one)."""
        if not changes or not self.revalidator.records or self._reval_pending:
            return
        self._mac_changes.extend(changes)
        if len(self._mac_changes) > MAX_SCOPED_CHANGES:
            self.request_revalidation()
            return
        self._schedule_scoped()

    def _schedule_revalidation(self) -> None:
        if self._loop is not None and self._reval_handle is None:
            self._reval_handle = self._loop.call_later(REVALIDATE_DELAY_S, self.run_revalidation)

    def _schedule_scoped(self) -> None:
        if self._loop is not None and self._scoped_handle is None:
            self._scoped_handle = self._loop.call_soon(self._run_scoped)

    def settle(self) -> None:
        """Bring the datapath up to the rule and MAC changes queued so far, now
        rather than on the next loop turn: the OpenFlow channel calls this once
        it has handled all the input of a read, so a FLOW_MOD's megaflows are
        fixed in the same callback (one pass for a chunk of many FLOW_MODs),
        and nothing else the loop has queued can run first."""
        if self._scoped_handle is not None:
            self._scoped_handle.cancel()
            self._run_scoped()

    def _run_scoped(self) -> None:
        """The queued rule changes now (a pending full pass keeps its own time)."""
        self._scoped_handle = None
        changes, self._rule_changes = self._rule_changes, []
        macs, self._mac_changes = self._mac_changes, []
        try:
            if changes:
                self.revalidator.revalidate_changes(changes)
            if macs:
                self.revalidator.revalidate_macs(macs)
        except Exception:
            log.exception("revalidation failed")

    def run_revalidation(self) -> int:
        """Revalidate now whatever is pending; return flows changed."""
        for handle in (self._reval_handle, self._scoped_handle):
            if handle is not None:
                handle.cancel()
        self._reval_handle = self._scoped_handle = None
        changes, self._rule_changes = self._rule_changes, []
        macs, self._mac_changes = self._mac_changes, []
        try:
            if self._reval_pending:
                self._reval_pending = False
                return self.revalidator.revalidate()
            changed = 0
            if changes:
                changed += self.revalidator.revalidate_changes(changes)
            if macs:
                changed += self.revalidator.revalidate_macs(macs)
            return changed
        except Exception:
            log.exception("revalidation failed")
        return 0

    async def wait_revalidated(self) -> None:
        """Barrier: every change so far has reached the datapath."""
        self.run_revalidation()

    # ------------------------------------------------------------ periodic sweep
    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            self.sweep()

    def sweep(self) -> None:
        """Once a second: counters to rules, idle flows out, timeouts, aging."""
        try:
            self.revalidator.sweep()
            for bridge in list(self.bridges.values()):
                bridge.periodic()
        except Exception:
            log.exception("periodic sweep failed")

    # ------------------------------------------------------------ appctl views
    def upcall_count(self) -> int:
        """Datapath misses handled by userspace so far."""
        return self.n_upcalls

    def datapath_name(self) -> str:
        """``type@name`` as dpctl names a datapath (``bpf@ovs-system``)."""
        return f"{self.dpif.type}@{self.dpif.name}"

    def dump_datapath_flows(self, verbose: bool = False, names: bool = False) -> str:
        """``dpctl/dump-flows``: every datapath flow, ports by name when ``names``."""
        return self._format_flows(self.dpif.flow_dump(), verbose, names)

    def dump_bridge_flows(self, bridge: BackedBridge, verbose: bool = False,
                          names: bool = False) -> str:
        """The datapath flows that come in on ``bridge``'s ports, as OVS's
        ``dpif/dump-flows`` shows them."""
        flows = [f for f in self.dpif.flow_dump()
                 if (owner := self._ports.get(f.key.in_port)) is not None and owner[0] is bridge]
        return self._format_flows(flows, verbose, names)

    def _format_flows(self, flows: list[DpFlow], verbose: bool, names: bool) -> str:
        """One line each; port names, as OVS takes them, from the datapath's port list."""
        port_names = {p.port_no: p.name for p in self.dpif.port_list()} if names else None
        now = self.dpif.now_ns()
        return "".join(format_flow(f, now, verbose, port_names) + "\n" for f in flows)

    def flush_datapath_flows(self) -> None:
        """``dpctl/del-flows``: empty the datapath; the revalidator forgets
        its flows, and the next packets upcall and install them again."""
        _FLOW_FLUSH.inc()
        self.dpif.flow_flush()
        self.revalidator.forget_all()

    def purge_flows(self) -> int:
        """``revalidator/purge``: delete every flow userspace tracks, counters
        credited to the rules first; returns how many."""
        return self.revalidator.purge()

    def upcall_show(self) -> str:
        revalidator = self.revalidator
        return format_upcall_show(self.datapath_name(), self.dpif.stats().n_flows,
                                  revalidator.dump_stats, self.dpif.flow_limit(),
                                  len(revalidator))

    def datapath_show(self) -> str:
        stats = self.dpif.stats()
        lines = [
            f"{self.datapath_name()}:",
            f"  lookups: hit:{stats.n_hit} missed:{stats.n_missed} lost:{stats.n_lost}",
            f"  flows: {stats.n_flows}",
            f"  masks: hit:0 total:{stats.n_masks} hit/pkt:0.00",
        ]
        for port in self.dpif.port_list():
            suffix = " (internal)" if port.port_no in self._internal else ""
            lines.append(f"  port {port.port_no}: {port.name}{suffix}")
        return "\n".join(lines) + "\n"
