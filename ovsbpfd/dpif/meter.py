"""Token-bucket meters: the arithmetic every provider shares.

It is the kernel datapath's meter (net/openvswitch/meter.c) in integer
nanosecond units, written once here for the dummy provider and for the bpf
provider's ``execute``; bpf/datapath.bpf.c runs the same steps on the same
numbers (struct ovsbpf_meter).  A bucket holds ``rate x ns`` units: one packet
costs 10^9 of them (rate in pkts/s), one bit 10^6 (rate in kbit/s), so a bucket
of ``burst`` packets or kbits is ``burst x 10^9`` and a band refills
``elapsed_ns x rate``.  Every band takes its cost from its own bucket; the
packet belongs to the band with the highest rate whose bucket could not pay,
and a drop band drops it.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, field

from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import METER_BAND_DROP, MeterBand, MeterStats

MAX_METERS = 4096
MAX_METER_BANDS = 4
UNITS_PER_PACKET = 10**9
UNITS_PER_BIT = 10**6
_U32_MAX = (1 << 32) - 1


@dataclass
class BandState:
    rate: int
    capacity: int  # bucket size in units
    fill_ns: int  # idle time after which the bucket is full again
    bucket: int
    packets: int = 0
    bytes: int = 0


@dataclass
class MeterState:
    kbps: bool
    bands: list[BandState]
    last_ns: int
    packets_in: int = 0
    bytes_in: int = 0

    def stats(self) -> MeterStats:
        return MeterStats(self.packets_in, self.bytes_in, [b.packets for b in self.bands],
                          [b.bytes for b in self.bands])


def _is_u32(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U32_MAX


def check_meter_id(meter_id: object, max_meters: int = MAX_METERS) -> int:
    if not isinstance(meter_id, int) or isinstance(meter_id, bool) or not (
            0 <= meter_id < max_meters):
        raise DpifError(errno.EINVAL, f"meter id {meter_id!r} out of range 0..{max_meters - 1}")
    return meter_id


def check_bands(bands: Sequence[MeterBand], max_bands: int = MAX_METER_BANDS) -> list[MeterBand]:
    """The bands as a list; EINVAL if malformed, EOPNOTSUPP for non-drop bands."""
    try:
        bands = list(bands)
    except TypeError as exc:
        raise DpifError(errno.EINVAL, f"bands must be a sequence: {exc}") from exc
    if not 1 <= len(bands) <= max_bands:
        raise DpifError(errno.EINVAL, f"a meter needs 1..{max_bands} bands, got {len(bands)}")
    for band in bands:
        if not isinstance(band, MeterBand):
            raise DpifError(errno.EINVAL, f"not a meter band: {band!r}")
        if not _is_u32(band.rate) or band.rate == 0 or not _is_u32(band.burst_size):
            raise DpifError(errno.EINVAL, f"bad meter band {band!r}")
        if band.type != METER_BAND_DROP:
            raise DpifError(errno.EOPNOTSUPP, f"meter band type {band.type!r} not supported")
    return bands


def band_capacity(band: MeterBand, burst: bool) -> int:
    """Bucket size in units: burst_size when asked for and given, else 1 s of rate."""
    size = band.burst_size if burst and band.burst_size else band.rate
    return size * UNITS_PER_PACKET  # a kbit is 10^9 units too


def new_meter(bands: Sequence[MeterBand], kbps: bool, burst: bool, now_ns: int) -> MeterState:
    states = []
    for band in bands:
        capacity = band_capacity(band, burst)
        states.append(BandState(band.rate, capacity, capacity // band.rate, capacity))
    return MeterState(bool(kbps), states, now_ns)


def packet_cost(kbps: bool, length: int) -> int:
    return length * 8 * UNITS_PER_BIT if kbps else UNITS_PER_PACKET


def meter_packet(meter: MeterState, length: int, now_ns: int) -> bool:
    """Account one packet of ``length`` bytes at ``now_ns``; True if it is dropped."""
    elapsed = now_ns - meter.last_ns if now_ns > meter.last_ns else 0
    meter.last_ns = max(meter.last_ns, now_ns)
    meter.packets_in += 1
    meter.bytes_in += length
    cost = packet_cost(meter.kbps, length)
    exceeded: BandState | None = None
    for band in meter.bands:
        if elapsed >= band.fill_ns:
            band.bucket = band.capacity
        else:
            band.bucket = min(band.capacity, band.bucket + elapsed * band.rate)
        if band.bucket >= cost:
            band.bucket -= cost
        elif exceeded is None or band.rate > exceeded.rate:
            exceeded = band
    if exceeded is None:
        return False
    exceeded.packets += 1
    exceeded.bytes += length
    return True  # every band is a drop band


@dataclass
class MeterTable:
    """Meters by id, for providers that keep them in Python."""

    max_meters: int = MAX_METERS
    max_bands: int = MAX_METER_BANDS
    meters: dict[int, MeterState] = field(default_factory=dict)

    def set(self, meter_id: int, bands: Sequence[MeterBand], kbps: bool, burst: bool,
            now_ns: int) -> None:
        meter_id = check_meter_id(meter_id, self.max_meters)
        bands = check_bands(bands, self.max_bands)
        self.meters[meter_id] = new_meter(bands, kbps, burst, now_ns)

    def get(self, meter_id: int) -> MeterState:
        meter = self.meters.get(check_meter_id(meter_id, self.max_meters))
        if meter is None:
            raise DpifError(errno.ENOENT, f"no meter {meter_id}")
        return meter

    def delete(self, meter_id: int) -> MeterStats:
        stats = self.get(meter_id).stats()
        del self.meters[meter_id]
        return stats
