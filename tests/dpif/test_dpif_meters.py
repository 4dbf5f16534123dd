"""Meters: the token-bucket arithmetic (unit tests on a made-up clock) and the
Meter action on both datapaths (real time, real packets)."""

from __future__ import annotations

import errno
import time

import pytest

from ovsbpfd.dpif.meter import (
    MAX_METER_BANDS,
    MAX_METERS,
    meter_packet,
    new_meter,
)
from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.dpif.packet_build import udp_frame
from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import FlowKey, Meter, MeterBand, MeterStats, Output, format_actions
from tests.dpif.harness import DatapathHarness, collect, eventually

MAC_A, MAC_B = "02:0c:00:00:00:01", "02:0c:00:00:00:02"
EXACT = FlowKey.all_ones()
SECOND = 10**9


def frame(sport: int, size: int = 0) -> bytes:
    base = udp_frame(MAC_A, MAC_B, "10.79.0.1", "10.79.0.2", sport, 9, b"")
    return udp_frame(MAC_A, MAC_B, "10.79.0.1", "10.79.0.2", sport, 9,
                     b"m" * max(0, size - len(base)))


# ------------------------------------------------------------------ arithmetic


def test_meter_bucket_starts_full_then_refills_at_rate() -> None:
    meter = new_meter([MeterBand(rate=10, burst_size=5)], kbps=False, burst=True, now_ns=0)
    passed = [not meter_packet(meter, 100, 0) for _ in range(8)]
    assert passed == [True] * 5 + [False] * 3
    assert not meter_packet(meter, 100, SECOND // 10)  # 100 ms at 10/s = one packet
    assert meter_packet(meter, 100, SECOND // 10)
    assert not meter_packet(meter, 100, 10 * SECOND)  # long idle: full again, not more
    stats = meter.stats()
    assert (stats.packets_in, stats.bytes_in) == (11, 1100)
    assert (stats.band_packets, stats.band_bytes) == ([4], [400])
    assert sum(not meter_packet(meter, 100, 10 * SECOND) for _ in range(10)) == 4


def test_meter_without_burst_flag_holds_one_second_of_rate() -> None:
    meter = new_meter([MeterBand(rate=20, burst_size=3)], kbps=False, burst=False, now_ns=0)
    assert sum(not meter_packet(meter, 64, 0) for _ in range(50)) == 20


def test_meter_kbps_costs_bits() -> None:
    # 80 kbit/s with an 8 kbit bucket: 1000-byte frames, 1 per 100 ms.
    meter = new_meter([MeterBand(rate=80, burst_size=8)], kbps=True, burst=True, now_ns=0)
    assert not meter_packet(meter, 1000, 0)
    assert meter_packet(meter, 1000, 0)
    assert meter_packet(meter, 1000, SECOND // 20)
    assert not meter_packet(meter, 1000, SECOND // 10 + SECOND // 20)
    assert meter.stats().band_bytes == [2000]


def test_meter_highest_exceeded_band_takes_the_packet() -> None:
    meter = new_meter([MeterBand(rate=5, burst_size=1), MeterBand(rate=50, burst_size=3)],
                      kbps=False, burst=True, now_ns=0)
    assert not meter_packet(meter, 10, 0)  # both buckets pay
    assert meter_packet(meter, 10, 0)  # band 0 empty, band 1 pays: band 0 drops
    assert meter_packet(meter, 10, 0)  # likewise
    assert meter_packet(meter, 10, 0)  # both empty: the 50/s band drops
    assert meter.stats().band_packets == [2, 1]


def test_meter_clock_going_back_refills_nothing() -> None:
    meter = new_meter([MeterBand(rate=1, burst_size=1)], kbps=False, burst=True,
                      now_ns=5 * SECOND)
    assert not meter_packet(meter, 1, 5 * SECOND)
    assert meter_packet(meter, 1, 4 * SECOND)
    assert meter.last_ns == 5 * SECOND


# ------------------------------------------------------------------ both datapaths


def send_paced(harness: DatapathHarness, port: int, frames: list[bytes],
               seconds: float) -> float:
    """Send ``frames`` evenly over ``seconds``; return how long it really took."""
    start = time.monotonic()
    for i, data in enumerate(frames):
        delay = start + i * seconds / len(frames) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        harness.send(port, data)
    return time.monotonic() - start


def metered_flow(harness: DatapathHarness, meter_id: int, sport: int,
                 size: int = 0) -> tuple[int, int, bytes, FlowKey]:
    a, b = harness.add_port("dpm-a"), harness.add_port("dpm-b")
    data = frame(sport, size)
    key = parse_packet(data, a)
    harness.dpif.flow_put(key, EXACT, [Meter(meter_id), Output(b)])
    return a, b, data, key


def test_dpif_meter_pktps_limits_rate_and_counts_band_drops(harness: DatapathHarness) -> None:
    dpif = harness.dpif
    dpif.meter_set(7, [MeterBand(rate=100, burst_size=10)], kbps=False, burst=True)
    a, b, data, key = metered_flow(harness, 7, 100)
    tx_before = dpif.port_stats(b).tx_packets
    took = send_paced(harness, a, [data] * 1000, 1.0)
    assert eventually(lambda: dpif.meter_get(7).packets_in == 1000, timeout=3.0)
    stats = dpif.meter_get(7)
    passed = dpif.port_stats(b).tx_packets - tx_before
    expected = 10 + 100 * took
    assert 0.8 * expected - 5 <= passed <= 1.2 * expected + 5, (passed, took)
    assert stats.band_packets == [1000 - passed]
    assert stats.bytes_in == 1000 * len(data) and stats.band_bytes == [(1000 - passed) * len(data)]
    assert eventually(lambda: dpif.flow_get(key, EXACT).stats.packets == 1000)


def test_dpif_meter_kbps_limits_bit_rate(harness: DatapathHarness) -> None:
    dpif = harness.dpif
    # 400 kbit/s, 4 kbit bucket; 500-byte frames = 4 kbit: 100 frames/s, burst 1.
    dpif.meter_set(7, [MeterBand(rate=400, burst_size=4)], kbps=True, burst=True)
    a, b, data, _ = metered_flow(harness, 7, 101, size=500)
    assert len(data) == 500
    tx_before = dpif.port_stats(b).tx_packets
    took = send_paced(harness, a, [data] * 500, 1.0)
    assert eventually(lambda: dpif.meter_get(7).packets_in == 500, timeout=3.0)
    passed = dpif.port_stats(b).tx_packets - tx_before
    expected = 1 + 100 * took
    assert 0.8 * expected - 5 <= passed <= 1.2 * expected + 5, (passed, took)
    stats = dpif.meter_get(7)
    assert stats.band_packets == [500 - passed] and stats.band_bytes == [(500 - passed) * 500]


def test_dpif_meter_drop_skips_later_actions_only(harness: DatapathHarness) -> None:
    dpif = harness.dpif
    dpif.meter_set(7, [MeterBand(rate=1, burst_size=1)], kbps=False, burst=True)
    a, b = harness.add_port("dpm-a"), harness.add_port("dpm-b")
    c = harness.add_port("dpm-c")
    data = frame(102)
    dpif.flow_put(parse_packet(data, a), EXACT, [Output(b), Meter(7), Output(c)])
    for _ in range(3):
        harness.send(a, data)
    assert collect(harness, b, data, count=3) == 3
    assert collect(harness, c, data, count=3, timeout=0.5) == 1
    assert dpif.meter_get(7).band_packets == [2]


def test_dpif_execute_runs_meters(harness: DatapathHarness) -> None:
    dpif = harness.dpif
    dpif.meter_set(7, [MeterBand(rate=1, burst_size=3)], kbps=False, burst=True)
    b = harness.add_port("dpm-b")
    data = frame(103)
    harness.recv(b, timeout=0.0)
    for _ in range(10):
        dpif.execute(data, [Meter(7), Output(b)])
    assert collect(harness, b, data, count=10, timeout=0.5) == 3
    stats = dpif.meter_get(7)
    assert (stats.packets_in, stats.band_packets) == (10, [7])


def test_dpif_missing_meter_lets_packets_through(harness: DatapathHarness) -> None:
    dpif = harness.dpif
    dpif.meter_set(7, [MeterBand(rate=1, burst_size=1)], kbps=False, burst=True)
    dpif.meter_del(7)
    a, b, data, _ = metered_flow(harness, 7, 104)
    for _ in range(5):
        harness.send(a, data)
    assert collect(harness, b, data, count=5) == 5


def test_dpif_meter_get_del_and_replace(harness: DatapathHarness) -> None:
    dpif = harness.dpif
    dpif.meter_set(7, [MeterBand(rate=1, burst_size=2)], kbps=False, burst=True)
    assert dpif.meter_get(7) == MeterStats(0, 0, [0], [0])
    b = harness.add_port("dpm-b")
    data = frame(105)
    for _ in range(4):
        dpif.execute(data, [Meter(7), Output(b)])
    assert dpif.meter_get(7) == MeterStats(4, 4 * len(data), [2], [2 * len(data)])
    # Replacing starts over: full buckets, zero counters, the new bands.
    dpif.meter_set(7, [MeterBand(rate=1, burst_size=1), MeterBand(rate=2, burst_size=1)],
                   kbps=False, burst=True)
    assert dpif.meter_get(7) == MeterStats(0, 0, [0, 0], [0, 0])
    dpif.execute(data, [Meter(7), Output(b)])
    final = dpif.meter_del(7)
    assert final == MeterStats(1, len(data), [0, 0], [0, 0])
    for call in (dpif.meter_get, dpif.meter_del):
        with pytest.raises(DpifError) as exc:
            call(7)
        assert exc.value.errno == errno.ENOENT


BAD_METERS = [
    (errno.EINVAL, -1, [MeterBand(10)]),
    (errno.EINVAL, MAX_METERS, [MeterBand(10)]),
    (errno.EINVAL, "7", [MeterBand(10)]),
    (errno.EINVAL, 7, []),
    (errno.EINVAL, 7, [MeterBand(10)] * (MAX_METER_BANDS + 1)),
    (errno.EINVAL, 7, [MeterBand(0)]),
    (errno.EINVAL, 7, [MeterBand(1 << 32)]),
    (errno.EINVAL, 7, [MeterBand(10, burst_size=-1)]),
    (errno.EINVAL, 7, ["drop:10"]),
    (errno.EOPNOTSUPP, 7, [MeterBand(10, type="dscp_remark")]),
]


@pytest.mark.parametrize("err,meter_id,bands", BAD_METERS)
def test_dpif_bad_meter_set_is_refused_and_changes_nothing(
        harness: DatapathHarness, err: int, meter_id: object, bands: list) -> None:
    dpif = harness.dpif
    dpif.meter_set(7, [MeterBand(rate=1, burst_size=1)], kbps=False, burst=True)
    b = harness.add_port("dpm-b")
    dpif.execute(frame(106), [Meter(7), Output(b)])
    dpif.execute(frame(106), [Meter(7), Output(b)])
    before = dpif.meter_get(7)
    with pytest.raises(DpifError) as exc:
        dpif.meter_set(meter_id, bands, kbps=False)  # type: ignore[arg-type]
    assert exc.value.errno == err
    assert dpif.meter_get(7) == before == MeterStats(2, 2 * len(frame(106)), [1],
                                                      [len(frame(106))])
    for bad_id in (-1, MAX_METERS):
        for call in (dpif.meter_get, dpif.meter_del):
            with pytest.raises(DpifError) as exc:
                call(bad_id)
            assert exc.value.errno == errno.EINVAL


def test_dpif_meter_action_id_out_of_range_is_einval(harness: DatapathHarness) -> None:
    a, b = harness.add_port("dpm-a"), harness.add_port("dpm-b")
    key = parse_packet(frame(107), a)
    for bad in (Meter(MAX_METERS), Meter(-1), Meter("1")):  # type: ignore[arg-type]
        with pytest.raises(DpifError) as exc:
            harness.dpif.flow_put(key, EXACT, [bad, Output(b)])
        assert exc.value.errno == errno.EINVAL
    assert harness.dpif.flow_dump() == []
    harness.dpif.flow_put(key, EXACT, [Meter(MAX_METERS - 1), Output(b)])
    assert harness.dpif.flow_get(key, EXACT).actions == (Meter(MAX_METERS - 1), Output(b))
    assert format_actions((Meter(3), Output(b))) == f"meter(3),{b}"


def test_dpif_meter_features(harness: DatapathHarness) -> None:
    features = harness.dpif.meter_features()
    assert (features.max_meters, features.max_bands) == (MAX_METERS, MAX_METER_BANDS)
    assert features.band_types == ("drop",)
    assert features.kbps and features.pktps and features.burst and features.stats
