"""The ``bpf`` datapath provider: TC ingress programs, pinned maps, a ring buffer.

Ports are devices with our filter on their clsact ingress; megaflows live in
the pinned ``flows``/``masks`` maps; misses arrive on the ``upcalls`` ring
buffer; ``execute`` transmits through AF_PACKET.  All state is in the pinned
maps, so a new ``BpfDpif`` on the same ``pin_root`` (a restarted daemon) finds
the ports and flows that kept forwarding meanwhile: it re-points their filters
at its own program (an in-place replace) and lets port_add adopt the ports
(see ``Dpif.port_add``).  Error numbers follow the dummy provider (see
ovsbpfd/dpif/dummy.py).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import struct
import sys
from collections import deque
from collections.abc import Sequence

from ovsbpfd.dpif.bpf import codec, structs
from ovsbpfd.dpif.bpf.libbpf import (
    BPF_EXIST,
    BPF_NOEXIST,
    LibbpfError,
    RingBuffer,
    tc_attach_ingress,
    tc_destroy_clsact,
    tc_detach_ingress,
    tc_ensure_clsact,
)
from ovsbpfd.dpif.bpf.loader import LoadedDatapath, load_datapath, remove_pins
from ovsbpfd.dpif.bpf.meters import BpfMeters
from ovsbpfd.dpif.bpf.packet_io import PacketSender
from ovsbpfd.dpif.bpf.tc_filters import has_other_filters
from ovsbpfd.dpif.dummy import validate_actions
from ovsbpfd.dpif.packet import parse_packet, pop_vlan, push_vlan, set_masked
from ovsbpfd.dpif.provider import Dpif, DpifError
from ovsbpfd.dpif.types import (
    UPCALL_ACTION,
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

DEFAULT_PIN_ROOT = "/sys/fs/bpf/ovsbpfd"
# Our filter's identity on every port's ingress: only this one is ever detached.
TC_HANDLE = 0x0B5F
TC_PRIORITY = 0x0B5F
_U32 = ctypes.c_uint32
_NO_STATS = FlowStats()  # the counters of a new flow (only ever read)


def _u32(value: int) -> bytes:
    return bytes(_U32(value))


def _dpif_error(exc: LibbpfError, what: str) -> DpifError:
    return DpifError(exc.errno or errno.EIO, f"{what}: {exc}")


class BpfDpif(Dpif):
    """One BPF datapath whose state is pinned under ``<pin_root>/<layout version>/``."""

    type = "bpf"

    def __init__(self, pin_root: str = DEFAULT_PIN_ROOT, name: str = "ovs-system") -> None:
        self.name = name
        self.pin_root = pin_root
        try:
            self._dp: LoadedDatapath | None = load_datapath(pin_root)
        except OSError as exc:  # LibbpfError included
            raise DpifError(exc.errno or errno.EIO, f"loading the BPF datapath: {exc}") from exc
        self._maps = self._dp.maps
        self._meters = BpfMeters(self._maps["meters"])
        self._local_upcalls: deque[Upcall] = deque()
        try:
            self._sender = PacketSender()
            self._ring = RingBuffer(self._maps["upcalls"].fd)
        except OSError as exc:
            self._dp.close()
            raise DpifError(exc.errno or errno.EIO, f"opening the BPF datapath: {exc}") from exc
        self._event_fd: int | None = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._event_signalled = False  # written since last read
        self._watch_event_fd()
        self._exec_tx: dict[int, PortStats] = {}
        self._ports = self._read_ports()
        # Ports a previous process added: adoptable by a matching port_add.
        self._recovered: set[int] = set(self._ports)
        self._unattached: set[int] = set()  # recovered ports whose filter is missing
        self._masks: list[bytes | None] = self._read_masks()
        # packed mask -> slot, so a flow_put finds its slot without a scan
        self._mask_slots = {m: i for i, m in enumerate(self._masks) if m is not None}
        self._mask_refs = self._count_flows_per_mask()
        self._write_config()
        if self._dp.reused_pins:
            self._reattach_ports()

    # ------------------------------------------------------------ state on open
    def _watch_event_fd(self) -> None:
        """Add our eventfd (local upcalls from execute) to libbpf's epoll set."""
        ep = select.epoll.fromfd(os.dup(self._ring.epoll_fd()))
        try:
            ep.register(self._event_fd, select.EPOLLIN)
        finally:
            ep.close()

    def _read_ports(self) -> dict[int, DpPort]:
        ports = {}
        for port_no in range(structs.MAX_PORTS):
            raw = self._maps["ports"].lookup(_u32(port_no))
            entry = structs.Port.from_buffer_copy(raw) if raw else None
            if entry and entry.ifindex:
                ports[port_no] = DpPort(port_no, entry.name.decode(errors="replace"),
                                        entry.ifindex)
        return ports

    def _read_masks(self) -> list[bytes | None]:
        masks: list[bytes | None] = []
        for slot in range(structs.MAX_MASKS):
            raw = self._maps["masks"].lookup(_u32(slot))
            mask = codec.decode_mask(raw) if raw else None
            masks.append(mask.pack() if mask else None)
        return masks

    def _count_flows_per_mask(self) -> list[int]:
        refs = [0] * structs.MAX_MASKS
        for raw_key in self._maps["flows"].keys():
            mask_id, _ = codec.decode_flow_map_key(raw_key)
            if mask_id < structs.MAX_MASKS:
                refs[mask_id] += 1
        return refs

    def _reattach_ports(self) -> None:
        """Point every existing port's filter at the program this process loaded.

        The filter is replaced in place (one netlink request), so the device
        never goes without one and forwarding does not pause.
        """
        for port in self._ports.values():
            try:
                tc_attach_ingress(port.ifindex, self._prog_fd(), TC_HANDLE, TC_PRIORITY)
            except LibbpfError:
                # The device or its clsact is gone: a port_add that adopts it
                # attaches again; otherwise the owner port_dels it.
                self._unattached.add(port.port_no)

    @property
    def pin_dir(self) -> str | None:
        """Where this datapath's maps are pinned (None once closed)."""
        return self._dp.pin_dir if self._dp else None

    def _prog_fd(self) -> int:
        if self._dp is None:
            raise DpifError(errno.EBADF, "datapath handle is closed")
        return self._dp.prog_fd

    # ------------------------------------------------------------ ports
    def port_add(self, name: str, ifindex: int, port_no: int | None = None) -> int:
        if not isinstance(name, str) or not name or len(name.encode()) > structs.PORT_NAME_MAX:
            raise DpifError(errno.EINVAL, f"bad port name {name!r}")
        if not isinstance(ifindex, int) or not 0 < ifindex < 1 << 31:
            raise DpifError(errno.EINVAL, f"bad ifindex {ifindex!r}")
        adopted = self._adopt_recovered(name, ifindex, port_no)
        if adopted is not None:
            return adopted
        for port in self._ports.values():
            if port.name == name or port.ifindex == ifindex:
                raise DpifError(errno.EEXIST, f"{name} (ifindex {ifindex}) is already a port")
        port_no = self._choose_port_no(port_no)
        try:
            socket.if_indextoname(ifindex)
        except OSError as exc:
            raise DpifError(errno.ENODEV, f"no device with ifindex {ifindex}") from exc
        try:
            own_clsact = tc_ensure_clsact(ifindex)
        except LibbpfError as exc:
            raise _dpif_error(exc, f"clsact on {name}") from exc
        entry = structs.Port(ifindex=ifindex, name=name.encode(),
                             flags=structs.PORT_F_OWN_CLSACT if own_clsact else 0)
        try:
            self._maps["ports"].update(_u32(port_no), bytes(entry))
            self._maps["port_stats"].update(_u32(port_no), bytes(structs.PortStatsStruct()))
            self._maps["port_by_ifindex"].update(_u32(ifindex), _u32(port_no))
            tc_attach_ingress(ifindex, self._prog_fd(), TC_HANDLE, TC_PRIORITY)
        except LibbpfError as exc:
            self._forget_port(port_no, ifindex, own_clsact)
            raise _dpif_error(exc, f"attaching {name}") from exc
        self._ports[port_no] = DpPort(port_no, name, ifindex)
        self._exec_tx[port_no] = PortStats()
        return port_no

    def _adopt_recovered(self, name: str, ifindex: int, port_no: int | None) -> int | None:
        """Take over a port a previous process left (see Dpif.port_add); None if none fits.

        Its map entries, counters and filter stay as they are.  A recovered
        port that matches only by name or only by device is stale and goes.
        """
        for recovered in sorted(self._recovered):
            port = self._ports[recovered]
            same_name, same_device = port.name == name, port.ifindex == ifindex
            if same_name and same_device and port_no in (None, recovered):
                if recovered in self._unattached:
                    self._attach_filter(port)
                self._recovered.discard(recovered)
                self._exec_tx.setdefault(recovered, PortStats())
                return recovered
            if same_name or same_device:
                self.port_del(recovered)
        return None

    def _attach_filter(self, port: DpPort) -> None:
        """(Re)attach our filter to a recovered port whose filter was missing on open."""
        try:
            if tc_ensure_clsact(port.ifindex):
                raw = self._maps["ports"].lookup(_u32(port.port_no))
                entry = structs.Port.from_buffer_copy(raw) if raw else structs.Port(
                    ifindex=port.ifindex, name=port.name.encode())
                entry.flags |= structs.PORT_F_OWN_CLSACT
                self._maps["ports"].update(_u32(port.port_no), bytes(entry))
            tc_attach_ingress(port.ifindex, self._prog_fd(), TC_HANDLE, TC_PRIORITY)
        except LibbpfError as exc:
            raise _dpif_error(exc, f"attaching {port.name}") from exc
        self._unattached.discard(port.port_no)

    def recovered_ports(self) -> list[DpPort]:
        return [self._ports[n] for n in sorted(self._recovered)]

    def _choose_port_no(self, port_no: int | None) -> int:
        if port_no is None:
            free = next((n for n in range(1, structs.MAX_PORTS) if n not in self._ports), None)
            if free is None:
                raise DpifError(errno.EFBIG, "no free datapath port number")
            return free
        if not isinstance(port_no, int) or not 1 <= port_no < structs.MAX_PORTS:
            raise DpifError(errno.EINVAL, f"port number {port_no!r} out of range")
        if port_no in self._ports:
            raise DpifError(errno.EEXIST, f"port number {port_no} is taken")
        return port_no

    def _forget_port(self, port_no: int, ifindex: int, own_clsact: bool) -> None:
        """Undo port_add's map entries and filter (best effort: the device may be gone)."""
        self._maps["port_by_ifindex"].delete(_u32(ifindex))
        self._maps["ports"].update(_u32(port_no), bytes(structs.Port()))
        try:
            tc_detach_ingress(ifindex, TC_HANDLE, TC_PRIORITY)
            if own_clsact and not has_other_filters(ifindex):
                tc_destroy_clsact(ifindex)
        except LibbpfError:
            pass

    def port_del(self, port_no: int) -> None:
        port = self._ports.get(port_no)
        if port is None:
            raise DpifError(errno.ENOENT, f"no datapath port {port_no}")
        self._sender.wait_idle()  # frames queued for it are sent and counted first
        raw = self._maps["ports"].lookup(_u32(port_no))
        flags = structs.Port.from_buffer_copy(raw).flags if raw else 0
        self._forget_port(port_no, port.ifindex, bool(flags & structs.PORT_F_OWN_CLSACT))
        del self._ports[port_no]
        self._recovered.discard(port_no)
        self._unattached.discard(port_no)
        self._exec_tx.pop(port_no, None)

    def port_list(self) -> list[DpPort]:
        return [self._ports[n] for n in sorted(self._ports)]

    def port_stats(self, port_no: int) -> PortStats:
        if port_no not in self._ports:
            raise DpifError(errno.ENOENT, f"no datapath port {port_no}")
        self._sender.wait_idle()  # frames still queued are counted once sent
        total = PortStats()
        for raw in self._maps["port_stats"].percpu_values(_u32(port_no)):
            cpu = structs.PortStatsStruct.from_buffer_copy(raw)
            for field in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes",
                          "rx_dropped", "tx_dropped"):
                setattr(total, field, getattr(total, field) + getattr(cpu, field))
        sent = self._exec_tx.get(port_no, PortStats())
        total.tx_packets += sent.tx_packets
        total.tx_bytes += sent.tx_bytes
        total.tx_dropped += sent.tx_dropped
        return total

    # ------------------------------------------------------------ masks
    def _find_mask(self, mask: FlowKey) -> int | None:
        return self._mask_slots.get(mask.pack())

    def _allocate_mask(self, mask: FlowKey) -> int:
        slot = next((i for i, m in enumerate(self._masks) if m is None), None)
        if slot is None:
            raise DpifError(errno.EFBIG, f"mask table full ({structs.MAX_MASKS} masks)")
        self._maps["masks"].update(_u32(slot), codec.encode_mask(mask))
        self._masks[slot] = mask.pack()
        self._mask_slots[mask.pack()] = slot
        self._mask_refs[slot] = 0
        self._write_config()
        return slot

    def _release_mask(self, slot: int) -> None:
        self._maps["masks"].update(_u32(slot), bytes(structs.Mask()))
        packed = self._masks[slot]
        if packed is not None and self._mask_slots.get(packed) == slot:
            del self._mask_slots[packed]
        self._masks[slot] = None
        self._mask_refs[slot] = 0
        self._write_config()

    def _write_config(self) -> None:
        used = [i for i, m in enumerate(self._masks) if m is not None]
        config = structs.Config(n_mask_slots=used[-1] + 1 if used else 0)
        self._maps["config"].update(_u32(0), bytes(config))

    # ------------------------------------------------------------ flows
    @staticmethod
    def _check_key(key: FlowKey, mask: FlowKey) -> None:
        if not isinstance(key, FlowKey) or not isinstance(mask, FlowKey):
            raise DpifError(errno.EINVAL, "flow key and mask must be FlowKey")
        try:
            key.pack()
            mask.pack()
        except (ValueError, OverflowError, TypeError, struct.error) as exc:
            raise DpifError(errno.EINVAL, f"malformed flow key or mask: {exc}") from exc

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
        self._check_key(key, mask)
        masked = key.masked_bytes(mask)
        slot = self._find_mask(mask)
        if slot is not None:
            map_key = codec.encode_flow_map_key_packed(slot, masked)
            if create:  # most puts add a new flow: one syscall when it is new
                value = codec.encode_flow(actions, _NO_STATS)
                if self._try_add_flow(map_key, value):
                    self._mask_refs[slot] += 1
                    return
            old = self._maps["flows"].lookup(map_key)
            if old is not None:
                if not modify:
                    raise DpifError(errno.EEXIST, "flow exists")
                stats = FlowStats() if reset_stats else codec.flow_stats(old)
                self._update_flow(map_key, codec.encode_flow(actions, stats), BPF_EXIST)
                return
            if create:  # deleted between the two calls: add it after all
                self._update_flow(map_key, codec.encode_flow(actions, _NO_STATS),
                                  BPF_NOEXIST)
                self._mask_refs[slot] += 1
                return
        if not create:
            raise DpifError(errno.ENOENT, "no such flow")
        value = codec.encode_flow(actions, _NO_STATS)
        slot = self._allocate_mask(mask)
        try:
            self._update_flow(codec.encode_flow_map_key_packed(slot, masked), value, BPF_NOEXIST)
        except DpifError:
            self._release_mask(slot)
            raise
        self._mask_refs[slot] += 1

    def flow_add_many(
        self, flows: Sequence[tuple[FlowKey, FlowKey, Sequence[DpAction]]],
    ) -> list[DpifError | None]:
        """As ``Dpif.flow_add_many``: flows of known masks go to the map in
        one BPF_MAP_UPDATE_BATCH (a system call costs as much as the insert
        itself); a flow with a new mask takes the one-by-one path, which
        allocates the mask slot; a flow the map refuses gets its error and
        the batch goes on after it."""
        results: list[DpifError | None] = [None] * len(flows)
        batch: list[tuple[int, bytes, bytes, int]] = []  # (index, map key, value, slot)
        for i, (key, mask, actions) in enumerate(flows):
            try:
                actions = validate_actions(actions)
                self._check_key(key, mask)
                slot = self._find_mask(mask)
                if slot is None:
                    self.flow_put(key, mask, actions)
                    continue
                batch.append((i, codec.encode_flow_map_key_packed(slot, key.masked_bytes(mask)),
                              codec.encode_flow(actions, _NO_STATS), slot))
            except DpifError as err:
                results[i] = err
        start = 0
        while start < len(batch):
            rest = batch[start:]
            done, err = self._maps["flows"].update_batch(
                b"".join(item[1] for item in rest), b"".join(item[2] for item in rest),
                len(rest))
            for item in rest[:done]:
                self._mask_refs[item[3]] += 1
            start += done
            if not err:
                break
            # The one that failed (or, if nothing was written, say a kernel
            # without batch updates, every one left) goes one by one, which
            # reports its own error.
            for index, _map_key, _value, _slot in batch[start:start + 1 if done else None]:
                key, mask, actions = flows[index]
                try:
                    self.flow_put(key, mask, actions)
                except DpifError as exc:
                    results[index] = exc
            start = start + 1 if done else len(batch)
        return results

    def _try_add_flow(self, map_key: bytes, value: bytes) -> bool:
        """Add a flow that should be new; False (nothing changed) if it exists."""
        try:
            self._maps["flows"].update(map_key, value, BPF_NOEXIST)
        except LibbpfError as exc:
            if exc.errno == errno.EEXIST:
                return False
            if exc.errno == errno.E2BIG:  # hash map full
                raise DpifError(errno.EFBIG, "flow table full") from exc
            raise _dpif_error(exc, "flow_put") from exc
        return True

    def _update_flow(self, map_key: bytes, value: bytes, flags: int) -> None:
        try:
            self._maps["flows"].update(map_key, value, flags)
        except LibbpfError as exc:
            if exc.errno == errno.E2BIG:  # hash map full
                raise DpifError(errno.EFBIG, "flow table full") from exc
            raise _dpif_error(exc, "flow_put") from exc

    def _lookup(self, key: FlowKey, mask: FlowKey) -> tuple[int, bytes, bytes] | None:
        self._check_key(key, mask)
        slot = self._find_mask(mask)
        if slot is None:
            return None
        map_key = codec.encode_flow_map_key(slot, key.masked(mask))
        raw = self._maps["flows"].lookup(map_key)
        return (slot, map_key, raw) if raw is not None else None

    def flow_get(self, key: FlowKey, mask: FlowKey) -> DpFlow | None:
        found = self._lookup(key, mask)
        if found is None:
            return None
        actions, stats = codec.decode_flow(found[2])
        return DpFlow(key.masked(mask), mask, actions, stats)

    def flow_del(self, key: FlowKey, mask: FlowKey) -> FlowStats | None:
        found = self._lookup(key, mask)
        if found is None:
            return None
        slot, map_key, raw = found
        if not self._maps["flows"].delete(map_key):
            return None
        self._mask_refs[slot] -= 1
        if self._mask_refs[slot] <= 0:
            self._release_mask(slot)
        return codec.flow_stats(raw)

    def flow_dump(self) -> list[DpFlow]:
        """Every flow, read a thousand at a time (BPF_MAP_LOOKUP_BATCH): the
        once-a-second sweep dumps them all, so one system call per flow
        (and a mask decoded per flow) would cost more than the rest."""
        flows = []
        masks: dict[int, FlowKey | None] = {}
        for map_key, raw in self._flow_items():
            mask_id, masked = codec.decode_flow_map_key(map_key)
            mask = masks.get(mask_id, False)
            if mask is False:
                packed = self._masks[mask_id] if mask_id < structs.MAX_MASKS else None
                mask = masks[mask_id] = FlowKey.unpack(packed) if packed else None
            if mask is None:
                continue
            actions, stats = codec.decode_flow(raw)
            flows.append(DpFlow(masked, mask, actions, stats))
        return flows

    def flow_dump_stats(self) -> list[tuple[bytes, bytes, FlowStats]]:
        dump = []
        prefix = codec.FLOW_MAP_KEY_PREFIX
        for map_key, raw in self._flow_items():
            mask_id = int.from_bytes(map_key[:prefix], sys.byteorder)
            mask = self._masks[mask_id] if mask_id < structs.MAX_MASKS else None
            if mask is not None:
                dump.append((map_key[prefix:], mask, codec.flow_stats(raw)))
        return dump

    def _flow_items(self) -> list[tuple[bytes, bytes]]:
        flows = self._maps["flows"]
        try:
            return list(flows.items_batch())
        except LibbpfError:  # a kernel without batch lookups: one entry at a time
            items = []
            for map_key in list(flows.keys()):
                raw = flows.lookup(map_key)
                if raw is not None:
                    items.append((map_key, raw))
            return items

    def flow_limit(self) -> int:
        return self._maps["flows"].max_entries

    def flow_flush(self) -> None:
        for map_key in list(self._maps["flows"].keys()):
            self._maps["flows"].delete(map_key)
        for slot, mask in enumerate(self._masks):
            if mask is not None:
                self._release_mask(slot)

    # ------------------------------------------------------------ packets
    def execute(self, packet: bytes, actions: Sequence[DpAction]) -> None:
        actions = validate_actions(actions)
        packet = original = bytes(packet)
        key: FlowKey | None = None  # of the packet as received; only a userspace action needs it
        for act in actions:
            if isinstance(act, Output):
                self._transmit(act.port, packet)
            elif isinstance(act, PushVlan):
                packet = push_vlan(packet, act.tci, act.tpid)
            elif isinstance(act, PopVlan):
                packet = pop_vlan(packet)
            elif isinstance(act, Userspace):
                if key is None:
                    key = parse_packet(original, 0)
                self._queue_local_upcall(
                    Upcall(UPCALL_ACTION, key, packet, len(packet), act.cookie))
            elif isinstance(act, SetMasked):
                packet = set_masked(packet, act.field, act.value, act.mask)
            elif isinstance(act, Meter):
                if self._meters.packet(act.meter_id, len(packet)):
                    return

    def execute_many(
        self, batch: Sequence[tuple[bytes, Sequence[DpAction]]],
    ) -> list[DpifError | None]:
        """As ``Dpif.execute_many``: packets whose actions only output are
        sent together with one sendmmsg per run of them; any other action
        list is executed on its own, in its place in the order."""
        results: list[DpifError | None] = [None] * len(batch)
        sends: list[tuple[int, bytes]] = []
        port_nos: list[int] = []
        for i, (packet, actions) in enumerate(batch):
            try:
                actions = validate_actions(actions)
                if all(type(act) is Output for act in actions):
                    frame = bytes(packet)
                    for act in actions:
                        port = self._ports.get(act.port)
                        if port is not None:  # else dropped, counted nowhere (as BPF)
                            sends.append((port.ifindex, frame))
                            port_nos.append(act.port)
                    continue
                self._send_all(sends, port_nos)
                self.execute(packet, actions)
            except DpifError as err:
                results[i] = err
        self._send_all(sends, port_nos)
        return results

    def _send_all(self, sends: list[tuple[int, bytes]], port_nos: list[int]) -> None:
        """Hand the frames to the sender thread (counted when sent); empties
        both lists.  The upcall handler translates the next batch meanwhile."""
        if not sends:
            return
        frames, ports = list(sends), list(port_nos)
        exec_tx = self._exec_tx

        def count(results: list[bool]) -> None:
            for port_no, (_ifindex, frame), ok in zip(ports, frames, results, strict=True):
                sent = exec_tx.setdefault(port_no, PortStats())
                if ok:
                    sent.tx_packets += 1
                    sent.tx_bytes += len(frame)
                else:
                    sent.tx_dropped += 1

        self._sender.send_many_later(frames, count)
        sends.clear()
        port_nos.clear()

    def _transmit(self, port_no: int, packet: bytes) -> None:
        port = self._ports.get(port_no)
        if port is None:
            return  # as in BPF: output to a missing port is dropped, counted nowhere
        sent = self._exec_tx.setdefault(port_no, PortStats())
        if self._sender.send(port.ifindex, packet):
            sent.tx_packets += 1
            sent.tx_bytes += len(packet)
        else:
            sent.tx_dropped += 1

    def _queue_local_upcall(self, upcall: Upcall) -> None:
        self._local_upcalls.append(upcall)
        if self._event_fd is not None:
            os.eventfd_write(self._event_fd, 1)
            self._event_signalled = True

    def recv(self, max_batch: int = 64) -> list[Upcall]:
        batch = [self._local_upcalls.popleft()
                 for _ in range(min(max_batch, len(self._local_upcalls)))]
        if not self._local_upcalls and self._event_signalled and self._event_fd is not None:
            self._event_signalled = False  # read only when written: a system call per batch
            try:
                os.eventfd_read(self._event_fd)
            except BlockingIOError:
                pass
        for record in self._ring.consume(max_batch - len(batch)):
            kind, key, data, packet_len, cookie = codec.decode_upcall(record)
            batch.append(Upcall(kind, key, data, packet_len, cookie))
        return batch

    def upcall_fd(self) -> int:
        if self._dp is None:
            raise DpifError(errno.EBADF, "datapath handle is closed")
        return self._ring.epoll_fd()

    # ------------------------------------------------------------ meters
    def meter_features(self) -> MeterFeatures:
        return self._meters.features()

    def meter_set(self, meter_id: int, bands: Sequence[MeterBand], kbps: bool,
                  burst: bool = False) -> None:
        self._meters.set(meter_id, bands, kbps, burst)

    def meter_get(self, meter_id: int) -> MeterStats:
        return self._meters.get(meter_id)

    def meter_del(self, meter_id: int) -> MeterStats:
        return self._meters.delete(meter_id)

    def stats(self) -> DpStats:
        total = DpStats()
        for raw in self._maps["dp_stats"].percpu_values(_u32(0)):
            cpu = structs.DpStatsStruct.from_buffer_copy(raw)
            total.n_hit += cpu.n_hit
            total.n_missed += cpu.n_missed
            total.n_lost += cpu.n_lost
        total.n_flows = sum(self._mask_refs)
        total.n_masks = sum(1 for m in self._masks if m is not None)
        return total

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Drop this process's handles; pinned maps and attached filters stay."""
        if self._dp is None:
            return
        self._ring.close()
        self._sender.close()
        if self._event_fd is not None:
            os.close(self._event_fd)
            self._event_fd = None
        for bpf_map in self._maps.values():
            bpf_map.forget()
        self._dp.close()
        self._dp = None

    def destroy(self) -> None:
        """Detach every port, drop all flows and remove the pinned maps."""
        if self._dp is None:
            raise DpifError(errno.EBADF, "datapath handle is closed")
        for port in self.port_list():
            self.port_del(port.port_no)
        self.flow_flush()
        dp = self._dp
        try:
            remove_pins(dp, self.pin_root)
        finally:
            self.close()
