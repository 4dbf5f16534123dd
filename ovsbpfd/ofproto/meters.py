"""OpenFlow meters of one bridge, kept in the datapath's meter table.

A bridge's OpenFlow meter ids (1 .. OFPM_MAX) are its own; the datapath's
meter ids (0 .. max_meters-1) are shared by every bridge on the datapath, so
they come from one pool per datapath.  The datapath does the metering and
keeps the counters; this module turns METER_MOD into ``meter_set`` /
``meter_del`` with the spec's errors, and datapath counters into METER stats.
"""

from __future__ import annotations

import errno
import time
import weakref
from dataclasses import dataclass, field

from ovsbpfd.dpif.provider import Dpif, DpifError
from ovsbpfd.dpif.types import METER_BAND_DROP
from ovsbpfd.dpif.types import MeterBand as DpMeterBand
from ovsbpfd.dpif.types import MeterStats as DpMeterStats
from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.types import (
    OFPET_METER_MOD_FAILED,
    OFPM_ALL,
    OFPMBT_DROP,
    OFPMC_ADD,
    OFPMC_DELETE,
    OFPMC_MODIFY,
    OFPMF_BURST,
    OFPMF_KBPS,
    OFPMF_PKTPS,
    OFPMF_STATS,
    MeterMod,
    MeterStats,
    OfpError,
)

OFPM_MAX = 0xFFFF0000
_KNOWN_FLAGS = OFPMF_KBPS | OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS


def _error(code: int, message: str) -> OfpError:
    return OfpError(OFPET_METER_MOD_FAILED, code, message)


class DpMeterIds:
    """The free datapath meter ids of one datapath."""

    def __init__(self, max_meters: int) -> None:
        self.max_meters = max_meters
        self._used: set[int] = set()

    def allocate(self) -> int | None:
        return next((i for i in range(self.max_meters) if i not in self._used), None)

    def take(self, dp_id: int) -> None:
        self._used.add(dp_id)

    def release(self, dp_id: int) -> None:
        self._used.discard(dp_id)


_POOLS: weakref.WeakKeyDictionary[Dpif, DpMeterIds] = weakref.WeakKeyDictionary()


def meter_id_pool(dpif: Dpif) -> DpMeterIds | None:
    """The shared id pool of ``dpif``; None if the datapath has no meters."""
    pool = _POOLS.get(dpif)
    if pool is None:
        try:
            features = dpif.meter_features()
        except DpifError:
            return None
        pool = _POOLS[dpif] = DpMeterIds(features.max_meters)
    return pool


@dataclass(eq=False)
class Meter:
    meter_id: int
    dp_id: int
    config: MeterMod
    created: float = field(default_factory=time.monotonic)
    # counters of earlier incarnations (a modified meter starts over in the datapath)
    base_packets: int = 0
    base_bytes: int = 0


class MeterTable:
    def __init__(self, dpif: Dpif) -> None:
        self.dpif = dpif
        self.meters: dict[int, Meter] = {}

    def __contains__(self, meter_id: int) -> bool:
        return meter_id in self.meters

    def get(self, meter_id: int) -> Meter | None:
        return self.meters.get(meter_id)

    # ------------------------------------------------------------ METER_MOD
    def apply(self, mm: MeterMod) -> list[int]:
        """Apply ``mm``; return the meter ids it deleted (their flows must go)."""
        if mm.command == OFPMC_DELETE:
            return self._delete(mm.meter_id)
        if mm.command not in (OFPMC_ADD, OFPMC_MODIFY):
            raise _error(ec.OFPMMFC_BAD_COMMAND, f"command {mm.command}")
        if not 0 < mm.meter_id <= OFPM_MAX:
            raise _error(ec.OFPMMFC_INVALID_METER, f"meter id {mm.meter_id:#x}")
        old = self.meters.get(mm.meter_id)
        if mm.command == OFPMC_ADD and old is not None:
            raise _error(ec.OFPMMFC_METER_EXISTS, f"meter {mm.meter_id} exists")
        if mm.command == OFPMC_MODIFY and old is None:
            raise _error(ec.OFPMMFC_UNKNOWN_METER, f"meter {mm.meter_id} does not exist")
        bands, kbps = self._check(mm)
        pool = meter_id_pool(self.dpif)
        if pool is None:
            raise _error(ec.OFPMMFC_OUT_OF_METERS, "the datapath has no meters")
        dp_id = old.dp_id if old is not None else pool.allocate()
        if dp_id is None:
            raise _error(ec.OFPMMFC_OUT_OF_METERS, "every datapath meter is in use")
        final = self._stats_of(old) if old is not None else None
        try:
            self.dpif.meter_set(dp_id, bands, kbps, burst=bool(mm.flags & OFPMF_BURST))
        except DpifError as err:
            raise self._dp_error(err) from err
        pool.take(dp_id)
        meter = Meter(mm.meter_id, dp_id, MeterMod(OFPMC_ADD, mm.flags, mm.meter_id,
                                                   tuple(mm.bands)))
        if old is not None and final is not None:
            meter.created = old.created
            meter.base_packets = old.base_packets + final.packets_in
            meter.base_bytes = old.base_bytes + final.bytes_in
        self.meters[mm.meter_id] = meter
        return []

    def _check(self, mm: MeterMod) -> tuple[list[DpMeterBand], bool]:
        if mm.flags & ~_KNOWN_FLAGS:
            raise _error(ec.OFPMMFC_BAD_FLAGS, f"flags {mm.flags:#x}")
        kbps, pktps = bool(mm.flags & OFPMF_KBPS), bool(mm.flags & OFPMF_PKTPS)
        if kbps == pktps:
            raise _error(ec.OFPMMFC_BAD_FLAGS, "a meter is either kbps or pktps")
        if not mm.bands:
            raise _error(ec.OFPMMFC_BAD_BAND, "a meter needs a band")
        pool = meter_id_pool(self.dpif)
        max_bands = self.dpif.meter_features().max_bands if pool is not None else 0
        if len(mm.bands) > max_bands:
            raise _error(ec.OFPMMFC_OUT_OF_BANDS, f"{len(mm.bands)} bands")
        bands = []
        for band in mm.bands:
            if band.type != OFPMBT_DROP:
                raise _error(ec.OFPMMFC_BAD_BAND, f"band type {band.type} (only drop)")
            if band.rate == 0:
                raise _error(ec.OFPMMFC_BAD_RATE, "band rate 0")
            burst = band.burst_size if mm.flags & OFPMF_BURST else 0
            bands.append(DpMeterBand(band.rate, burst))
        return bands, kbps

    @staticmethod
    def _dp_error(err: DpifError) -> OfpError:
        if err.errno == errno.EOPNOTSUPP:
            return _error(ec.OFPMMFC_BAD_BAND, str(err))
        return _error(ec.OFPMMFC_BAD_BAND_VALUE, str(err))

    def _delete(self, meter_id: int) -> list[int]:
        if meter_id == OFPM_ALL:
            victims = sorted(self.meters)
        elif meter_id in self.meters:
            victims = [meter_id]
        else:
            return []  # the spec: no error, nothing deleted
        pool = meter_id_pool(self.dpif)
        for mid in victims:
            meter = self.meters.pop(mid)
            try:
                self.dpif.meter_del(meter.dp_id)
            except DpifError:
                pass  # already gone from the datapath
            if pool is not None:
                pool.release(meter.dp_id)
        return victims

    def destroy(self) -> None:
        self._delete(OFPM_ALL)

    # ------------------------------------------------------------ queries
    def features(self) -> tuple[int, int, int, int, int]:
        """OFPMP_METER_FEATURES as the datapath allows it: (max_meter,
        band_types bitmap, capabilities, max_bands, max_color)."""
        try:
            dp = self.dpif.meter_features()
        except DpifError:
            return (0, 0, 0, 0, 0)
        band_types = 1 << OFPMBT_DROP if METER_BAND_DROP in dp.band_types else 0
        capabilities = ((OFPMF_KBPS if dp.kbps else 0) | (OFPMF_PKTPS if dp.pktps else 0)
                        | (OFPMF_BURST if dp.burst else 0) | (OFPMF_STATS if dp.stats else 0))
        return (dp.max_meters, band_types, capabilities, dp.max_bands, 0)

    def _stats_of(self, meter: Meter) -> DpMeterStats | None:
        try:
            return self.dpif.meter_get(meter.dp_id)
        except DpifError:
            return None

    def selected(self, meter_id: int) -> list[Meter]:
        if meter_id == OFPM_ALL:
            return [self.meters[m] for m in sorted(self.meters)]
        meter = self.meters.get(meter_id)
        return [meter] if meter is not None else []

    def stats(self, meter_id: int, flow_count: dict[int, int]) -> list[MeterStats]:
        now = time.monotonic()
        out = []
        for meter in self.selected(meter_id):
            dp = self._stats_of(meter) or DpMeterStats()
            elapsed = now - meter.created
            bands = tuple(zip(dp.band_packets, dp.band_bytes, strict=False))
            if len(bands) != len(meter.config.bands):
                bands = tuple((0, 0) for _ in meter.config.bands)
            out.append(MeterStats(meter.meter_id, flow_count.get(meter.meter_id, 0),
                                  meter.base_packets + dp.packets_in,
                                  meter.base_bytes + dp.bytes_in, int(elapsed),
                                  int((elapsed % 1) * 1e9), bands))
        return out
