"""The ``dummy`` datapath: the bpf datapath's semantics in pure Python.

For unit tests and hosts without BPF.  Ports are names with the ifindex they
were given (no devices are touched); packets enter through ``inject`` and
leave into per-port queues read with ``take_output``.  Everything else —
tuple-space megaflow lookup over at most ``MAX_MASKS`` masks, actions, stats,
upcalls and the errno of every failure — behaves as the BPF datapath does, and
tests/dpif/test_dpif_conformance.py holds both to that.

Errors (``DpifError.errno``): EEXIST for a taken port number/name/ifindex or
an existing flow without ``modify``; ENOENT for an unknown port or a missing
flow without ``create``; EFBIG when a new mask would exceed ``MAX_MASKS`` or
the flow table is full; E2BIG for more than ``MAX_ACTIONS`` actions or more
than ``MAX_SET_ACTIONS`` SetMasked; EINVAL for malformed arguments (port number
out of range, unknown action, bad TPID, a SetMasked value with bits outside
its mask, a meter id out of range).  Meters follow ovsbpfd/dpif/meter.py on ``time.monotonic_ns``.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from ovsbpfd.dpif.meter import MAX_METER_BANDS, MAX_METERS, MeterTable, meter_packet
from ovsbpfd.dpif.packet import (
    ETH_HEADER_LEN,
    VLAN_TPIDS,
    parse_packet,
    pop_vlan,
    push_vlan,
    set_masked,
    tcp_flags,
)
from ovsbpfd.dpif.provider import Dpif, DpifError
from ovsbpfd.dpif.types import (
    MAX_ACTIONS,
    MAX_SET_ACTIONS,
    SET_FIELD_WIDTHS,
    SET_INT_FIELDS,
    UPCALL_ACTION,
    UPCALL_MISS,
    DpAction,
    DpFlow,
    DpPort,
    DpStats,
    FlowKey,
    FlowStats,
    Meter,
    MeterBand,
    MeterFeatures,
    MeterStats,
    Output,
    PopVlan,
    PortStats,
    PushVlan,
    SetMasked,
    Upcall,
    Userspace,
)

MAX_MASKS = 32
DEFAULT_MAX_FLOWS = 65536
DEFAULT_MAX_PORTS = 1024  # valid datapath port numbers are 1 .. max_ports-1
DEFAULT_UPCALL_QUEUE = 4096
DEFAULT_OUTPUT_QUEUE = 4096


@dataclass
class _Flow:
    key: FlowKey  # masked
    mask: FlowKey
    actions: tuple[DpAction, ...]
    stats: FlowStats = field(default_factory=FlowStats)

    def snapshot(self) -> DpFlow:
        return DpFlow(self.key, self.mask, self.actions, dataclasses.replace(self.stats))


@dataclass(eq=False)
class _MaskSlot:
    """One tuple of the tuple space: a mask and the flows that use it."""

    mask: FlowKey
    bits: int  # the packed mask as an integer, for fast masking
    flows: dict[int, _Flow] = field(default_factory=dict)  # masked key bits -> flow


def _bits(key: FlowKey) -> int:
    return int.from_bytes(key.pack(), "big")


def _is_uint(value: object, bits: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << bits


def validate_actions(actions: Sequence[DpAction]) -> tuple[DpAction, ...]:
    """The actions as a tuple, or DpifError(E2BIG/EINVAL) if the datapath can't run them."""
    try:
        actions = tuple(actions)
    except TypeError as exc:
        raise DpifError(errno.EINVAL, f"actions must be a sequence: {exc}") from exc
    if len(actions) > MAX_ACTIONS:
        raise DpifError(errno.E2BIG, f"{len(actions)} actions exceed the limit of {MAX_ACTIONS}")
    n_sets = sum(1 for act in actions if isinstance(act, SetMasked))
    if n_sets > MAX_SET_ACTIONS:
        raise DpifError(errno.E2BIG, f"{n_sets} set actions exceed the limit of {MAX_SET_ACTIONS}")
    for act in actions:
        if isinstance(act, Output):
            ok = _is_uint(act.port, 32)
        elif isinstance(act, PushVlan):
            ok = act.tpid in VLAN_TPIDS and _is_uint(act.tci, 16)
        elif isinstance(act, Userspace):
            ok = _is_uint(act.cookie, 64)
        elif isinstance(act, SetMasked):
            ok = valid_set_masked(act)
        elif isinstance(act, Meter):
            ok = _is_uint(act.meter_id, 32) and act.meter_id < MAX_METERS
        else:
            ok = isinstance(act, PopVlan)
        if not ok:
            raise DpifError(errno.EINVAL, f"bad datapath action {act!r}")
    return actions


def valid_set_masked(act: SetMasked) -> bool:
    """A known field, value and mask of its type and width, no value bit outside the mask."""
    width = SET_FIELD_WIDTHS.get(act.field) if isinstance(act.field, str) else None
    if width is None:
        return False
    value, mask = act.value, act.mask
    if act.field in SET_INT_FIELDS:
        return (_is_uint(value, 8 * width) and _is_uint(mask, 8 * width)
                and not value & ~mask)  # type: ignore[operator]
    if not isinstance(value, bytes) or not isinstance(mask, bytes):
        return False
    if len(value) != width or len(mask) != width:
        return False
    return not any(v & ~m for v, m in zip(value, mask, strict=True))


def check_key_and_mask(key: FlowKey, mask: FlowKey) -> None:
    """DpifError(EINVAL) unless both are FlowKeys whose fields fit their widths."""
    if not isinstance(key, FlowKey) or not isinstance(mask, FlowKey):
        raise DpifError(errno.EINVAL, "flow key and mask must be FlowKey")
    try:
        key.pack()
        mask.pack()
    except (ValueError, OverflowError, TypeError, struct.error) as exc:
        raise DpifError(errno.EINVAL, f"malformed flow key or mask: {exc}") from exc


def _packet_bytes(packet: object) -> bytes:
    if not isinstance(packet, bytes | bytearray | memoryview):
        raise DpifError(errno.EINVAL, f"a packet must be bytes, not {type(packet).__name__}")
    return bytes(packet)


class DummyDpif(Dpif):
    """A datapath held entirely in this process's memory."""

    type = "dummy"

    def __init__(
        self,
        *,
        max_flows: int = DEFAULT_MAX_FLOWS,
        max_ports: int = DEFAULT_MAX_PORTS,
        upcall_queue_len: int = DEFAULT_UPCALL_QUEUE,
        output_queue_len: int = DEFAULT_OUTPUT_QUEUE,
    ) -> None:
        self.max_flows = max_flows
        self.max_ports = max_ports
        self._ports: dict[int, DpPort] = {}
        self._recovered: set[int] = set()  # see simulate_restart
        self._port_stats: dict[int, PortStats] = {}
        self._outputs: dict[int, deque[bytes]] = {}
        self._output_queue_len = output_queue_len
        self._slots: list[_MaskSlot | None] = [None] * MAX_MASKS
        self._n_flows = 0
        self._upcalls: deque[Upcall] = deque()
        self._upcall_queue_len = upcall_queue_len
        self._dp_stats = DpStats()
        self._meters = MeterTable()
        self._event_fd: int | None = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    # ------------------------------------------------------------ ports
    def port_add(self, name: str, ifindex: int, port_no: int | None = None) -> int:
        if not name or not isinstance(name, str):
            raise DpifError(errno.EINVAL, f"bad port name {name!r}")
        if not _is_uint(ifindex, 32) or ifindex == 0:
            raise DpifError(errno.EINVAL, f"bad ifindex {ifindex!r}")
        adopted = self._adopt_recovered(name, ifindex, port_no)
        if adopted is not None:
            return adopted
        for port in self._ports.values():
            if port.name == name or port.ifindex == ifindex:
                raise DpifError(errno.EEXIST, f"{name} (ifindex {ifindex}) is already a port")
        if port_no is None:
            port_no = next((n for n in range(1, self.max_ports) if n not in self._ports), None)
            if port_no is None:
                raise DpifError(errno.EFBIG, "no free datapath port number")
        elif not _is_uint(port_no, 32) or not 1 <= port_no < self.max_ports:
            raise DpifError(errno.EINVAL, f"port number {port_no} out of range")
        elif port_no in self._ports:
            raise DpifError(errno.EEXIST, f"port number {port_no} is taken")
        self._ports[port_no] = DpPort(port_no, name, ifindex)
        self._port_stats[port_no] = PortStats()
        self._outputs[port_no] = deque(maxlen=self._output_queue_len)
        return port_no

    def _adopt_recovered(self, name: str, ifindex: int, port_no: int | None) -> int | None:
        """Take over a port from before simulate_restart (as the bpf provider does)."""
        for recovered in sorted(self._recovered):
            port = self._ports[recovered]
            same_name, same_device = port.name == name, port.ifindex == ifindex
            if same_name and same_device and port_no in (None, recovered):
                self._recovered.discard(recovered)
                return recovered
            if same_name or same_device:
                self.port_del(recovered)
        return None

    def port_del(self, port_no: int) -> None:
        if port_no not in self._ports:
            raise DpifError(errno.ENOENT, f"no datapath port {port_no}")
        del self._ports[port_no], self._port_stats[port_no], self._outputs[port_no]
        self._recovered.discard(port_no)

    def recovered_ports(self) -> list[DpPort]:
        return [self._ports[n] for n in sorted(self._recovered)]

    def simulate_restart(self) -> None:
        """Act as a datapath a new process has just opened (test API, like inject).

        Every port becomes recovered (adoptable by a matching port_add) while
        flows, counters and queued upcalls stay, as the bpf provider's pinned
        maps do across a daemon restart.
        """
        self._recovered = set(self._ports)

    def port_list(self) -> list[DpPort]:
        return [self._ports[n] for n in sorted(self._ports)]

    def port_stats(self, port_no: int) -> PortStats:
        if port_no not in self._port_stats:
            raise DpifError(errno.ENOENT, f"no datapath port {port_no}")
        return dataclasses.replace(self._port_stats[port_no])

    # ------------------------------------------------------------ flows
    def _find(self, key: FlowKey, mask: FlowKey) -> tuple[_MaskSlot | None, int]:
        check_key_and_mask(key, mask)
        mask_bits = _bits(mask)
        slot = next((s for s in self._slots if s is not None and s.bits == mask_bits), None)
        return slot, _bits(key) & mask_bits

    def flow_put(
        self,
        key: FlowKey,
        mask: FlowKey,
        actions: Sequence[DpAction],
        *,
        create: bool = True,
        modify: bool = True,
        reset_stats: bool = False,
    ) -> None:
        actions = validate_actions(actions)
        slot, masked = self._find(key, mask)
        flow = slot.flows.get(masked) if slot else None
        if flow is not None:
            if not modify:
                raise DpifError(errno.EEXIST, "flow exists")
            flow.actions = actions
            if reset_stats:
                flow.stats = FlowStats()
            return
        if not create:
            raise DpifError(errno.ENOENT, "no such flow")
        if self._n_flows >= self.max_flows:
            raise DpifError(errno.EFBIG, f"flow table full ({self.max_flows} flows)")
        if slot is None:
            free = next((i for i, s in enumerate(self._slots) if s is None), None)
            if free is None:
                raise DpifError(errno.EFBIG, f"mask table full ({MAX_MASKS} masks)")
            slot = self._slots[free] = _MaskSlot(mask, _bits(mask))
        slot.flows[masked] = _Flow(key.masked(mask), mask, actions)
        self._n_flows += 1

    def flow_get(self, key: FlowKey, mask: FlowKey) -> DpFlow | None:
        slot, masked = self._find(key, mask)
        flow = slot.flows.get(masked) if slot else None
        return flow.snapshot() if flow else None

    def flow_del(self, key: FlowKey, mask: FlowKey) -> FlowStats | None:
        slot, masked = self._find(key, mask)
        flow = slot.flows.pop(masked, None) if slot else None
        if slot is None or flow is None:
            return None
        self._n_flows -= 1
        if not slot.flows:
            self._slots = [None if s is slot else s for s in self._slots]
        return flow.stats

    def flow_dump(self) -> list[DpFlow]:
        return [f.snapshot() for s in self._slots if s is not None for f in s.flows.values()]

    def flow_limit(self) -> int:
        return self.max_flows

    def flow_flush(self) -> None:
        self._slots = [None] * MAX_MASKS
        self._n_flows = 0

    def _lookup(self, key: FlowKey) -> _Flow | None:
        key_bits = _bits(key)
        for slot in self._slots:
            if slot is not None:
                flow = slot.flows.get(key_bits & slot.bits)
                if flow is not None:
                    return flow
        return None

    # ------------------------------------------------------------ packets
    def inject(self, port_no: int, frame: bytes) -> None:
        """Receive ``frame`` on ``port_no``, as the device's ingress hook would."""
        if port_no not in self._ports:
            raise DpifError(errno.ENOENT, f"no datapath port {port_no}")
        frame = _packet_bytes(frame)
        rx = self._port_stats[port_no]
        rx.rx_packets += 1
        rx.rx_bytes += len(frame)
        if len(frame) < ETH_HEADER_LEN:
            rx.rx_dropped += 1  # no Ethernet header: nothing to match or report
            return
        key = parse_packet(frame, port_no)
        flow = self._lookup(key)
        if flow is None:
            self._dp_stats.n_missed += 1
            self._queue_upcall(Upcall(UPCALL_MISS, key, frame, len(frame)))
            return
        self._dp_stats.n_hit += 1
        stats = flow.stats
        stats.packets += 1
        stats.bytes += len(frame)
        stats.used_ns = self.now_ns()
        stats.tcp_flags |= tcp_flags(frame)
        self._run_actions(frame, key, flow.actions)

    def take_output(self, port_no: int) -> list[bytes]:
        """Frames sent out of ``port_no`` since the last call ([] for unknown ports)."""
        queue = self._outputs.get(port_no)
        if not queue:
            return []
        frames = list(queue)
        queue.clear()
        return frames

    def execute(self, packet: bytes, actions: Sequence[DpAction]) -> None:
        """Run ``actions`` on ``packet``; a Userspace action's upcall has in_port 0."""
        actions = validate_actions(actions)
        packet = _packet_bytes(packet)
        self._run_actions(packet, parse_packet(packet, 0), actions)

    def _run_actions(self, packet: bytes, key: FlowKey, actions: tuple[DpAction, ...]) -> None:
        for act in actions:
            if isinstance(act, Output):
                self._transmit(act.port, packet)
            elif isinstance(act, PushVlan):
                packet = push_vlan(packet, act.tci, act.tpid)
            elif isinstance(act, PopVlan):
                packet = pop_vlan(packet)
            elif isinstance(act, Userspace):
                self._queue_upcall(Upcall(UPCALL_ACTION, key, packet, len(packet), act.cookie))
            elif isinstance(act, SetMasked):
                packet = set_masked(packet, act.field, act.value, act.mask)
            elif isinstance(act, Meter):
                meter = self._meters.meters.get(act.meter_id)
                if meter is not None and meter_packet(meter, len(packet), self.now_ns()):
                    return

    def _transmit(self, port_no: int, packet: bytes) -> None:
        queue = self._outputs.get(port_no)
        if queue is None:
            return  # like a redirect to a vanished ifindex: dropped, counted nowhere
        tx = self._port_stats[port_no]
        if len(queue) == queue.maxlen:
            tx.tx_dropped += 1
            return
        queue.append(packet)
        tx.tx_packets += 1
        tx.tx_bytes += len(packet)

    # ------------------------------------------------------------ meters
    def meter_features(self) -> MeterFeatures:
        return MeterFeatures(max_meters=MAX_METERS, max_bands=MAX_METER_BANDS)

    def meter_set(self, meter_id: int, bands: Sequence[MeterBand], kbps: bool,
                  burst: bool = False) -> None:
        self._meters.set(meter_id, bands, kbps, burst, self.now_ns())

    def meter_get(self, meter_id: int) -> MeterStats:
        return self._meters.get(meter_id).stats()

    def meter_del(self, meter_id: int) -> MeterStats:
        return self._meters.delete(meter_id)

    # ------------------------------------------------------------ upcalls
    def _queue_upcall(self, upcall: Upcall) -> None:
        if len(self._upcalls) >= self._upcall_queue_len:
            self._dp_stats.n_lost += 1
            return
        self._upcalls.append(upcall)
        if len(self._upcalls) == 1 and self._event_fd is not None:
            os.eventfd_write(self._event_fd, 1)

    def recv(self, max_batch: int = 64) -> list[Upcall]:
        batch = [self._upcalls.popleft() for _ in range(min(max_batch, len(self._upcalls)))]
        if batch and not self._upcalls and self._event_fd is not None:
            try:
                os.eventfd_read(self._event_fd)
            except BlockingIOError:
                pass
        return batch

    def upcall_fd(self) -> int:
        if self._event_fd is None:
            raise DpifError(errno.EBADF, "datapath handle is closed")
        return self._event_fd

    def stats(self) -> DpStats:
        n_masks = sum(1 for s in self._slots if s is not None)
        return dataclasses.replace(self._dp_stats, n_flows=self._n_flows, n_masks=n_masks)

    def close(self) -> None:
        if self._event_fd is not None:
            os.close(self._event_fd)
            self._event_fd = None
