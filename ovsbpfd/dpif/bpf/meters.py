"""The bpf datapath's meters: the pinned ``meters`` array, read and written
under each value's bpf_spin_lock (BPF_F_LOCK), with the arithmetic of
ovsbpfd/dpif/meter.py.

The BPF program meters forwarded packets itself; ``meter_packet`` here is for
packets userspace executes.  Its read-compute-write is two syscalls, so a
packet the program meters in between may be accounted as if it came first;
the counters stay close, and nothing crashes or leaks.
"""

from __future__ import annotations

import ctypes
import errno
import time
from collections.abc import Sequence

from ovsbpfd.dpif.bpf import codec, structs
from ovsbpfd.dpif.bpf.libbpf import BPF_F_LOCK, BpfMap, LibbpfError
from ovsbpfd.dpif.meter import (
    MeterState,
    check_bands,
    check_meter_id,
    meter_packet,
    new_meter,
)
from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import MeterBand, MeterFeatures, MeterStats


def _key(meter_id: int) -> bytes:
    return bytes(ctypes.c_uint32(meter_id))


class BpfMeters:
    """Meter table operations over the ``meters`` map."""

    def __init__(self, meters: BpfMap) -> None:
        self._map = meters
        self.max_meters = min(meters.max_entries, structs.MAX_METERS)

    def features(self) -> MeterFeatures:
        return MeterFeatures(max_meters=self.max_meters, max_bands=structs.METER_MAX_BANDS)

    def _read(self, meter_id: int) -> MeterState | None:
        try:
            raw = self._map.lookup(_key(meter_id), BPF_F_LOCK)
        except LibbpfError as exc:
            raise DpifError(exc.errno or errno.EIO, f"reading meter {meter_id}: {exc}") from exc
        return codec.decode_meter(raw) if raw is not None else None

    def _write(self, meter_id: int, meter: MeterState | None) -> None:
        try:
            self._map.update(_key(meter_id), codec.encode_meter(meter), BPF_F_LOCK)
        except LibbpfError as exc:
            raise DpifError(exc.errno or errno.EIO, f"writing meter {meter_id}: {exc}") from exc

    def set(self, meter_id: int, bands: Sequence[MeterBand], kbps: bool, burst: bool) -> None:
        meter_id = check_meter_id(meter_id, self.max_meters)
        bands = check_bands(bands, structs.METER_MAX_BANDS)
        self._write(meter_id, new_meter(bands, kbps, burst, time.monotonic_ns()))

    def get(self, meter_id: int) -> MeterStats:
        meter = self._read(check_meter_id(meter_id, self.max_meters))
        if meter is None:
            raise DpifError(errno.ENOENT, f"no meter {meter_id}")
        return meter.stats()

    def delete(self, meter_id: int) -> MeterStats:
        stats = self.get(meter_id)
        self._write(meter_id, None)
        return stats

    def packet(self, meter_id: int, length: int) -> bool:
        """Meter one executed packet; True if it is dropped."""
        if not 0 <= meter_id < self.max_meters:
            return False
        meter = self._read(meter_id)
        if meter is None:
            return False
        dropped = meter_packet(meter, length, time.monotonic_ns())
        self._write(meter_id, meter)
        return dropped
