"""Meters: METER_MOD semantics and errors, the meter instruction enforced by
the datapath (drop above the rate, in packets and in kbit/s, on every
provider), METER / METER_CONFIG statistics, meters in use."""

from __future__ import annotations

import asyncio

import pytest

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.dpif.types import Meter, Output
from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.actions import ActOutput, InstApplyActions, InstMeter
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import (
    OFPET_METER_MOD_FAILED,
    OFPFC_ADD,
    OFPFC_DELETE,
    OFPFF_SEND_FLOW_REM,
    OFPM_ALL,
    OFPMBT_DROP,
    OFPMBT_DSCP_REMARK,
    OFPMC_ADD,
    OFPMC_DELETE,
    OFPMC_MODIFY,
    OFPMF_BURST,
    OFPMF_KBPS,
    OFPMF_PKTPS,
    OFPMF_STATS,
    FlowMod,
    MeterBand,
    MeterMod,
    OfpError,
)
from tests.dpif.harness import DatapathHarness
from tests.ofproto.core.rig import Rig, empty_rig, host_mac
from tests.ofproto.core.test_core_providers import SwitchUnderTest, run_scenario

H1, H2 = host_mac(1), host_mac(2)
PKTPS_BURST = OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS


@pytest.fixture
def rig():
    with empty_rig(3) as r:
        yield r


def frame(n: int, size: int = 0) -> bytes:
    return pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1000, 2000,
                        payload=n.to_bytes(4, "big") + bytes(size))


def metered_flow(meter_id: int, **kw) -> FlowMod:
    return FlowMod(OFPFC_ADD, Match(in_port=1), (InstMeter(meter_id), InstApplyActions(
        (ActOutput(2),))), priority=10, **kw)


def meter_error(rig: Rig, mm: MeterMod) -> tuple[int, int]:
    with pytest.raises(OfpError) as err:
        rig.bridge.meter_mod(mm)
    return err.value.type, err.value.code


def test_pktps_meter_drops_above_its_rate(rig: Rig) -> None:
    rig.bridge.meter_mod(MeterMod(OFPMC_ADD, PKTPS_BURST, 1, (MeterBand(OFPMBT_DROP, 5, 10),)))
    rig.bridge.flow_mod(metered_flow(1))
    for n in range(60):
        rig.send(1, frame(n))
    passed = len(rig.received(2))
    assert 10 <= passed <= 14, passed  # the burst, and a little refill at 5 pkt/s
    (stats,) = rig.bridge.meter_stats(1)
    assert stats.flow_count == 1 and stats.packet_in_count == 60
    ((dropped, dropped_bytes),) = stats.band_counts
    assert dropped == 60 - passed and dropped_bytes == dropped * len(frame(0))
    assert rig.misses() == 1  # metering happens in the datapath flow


def test_kbps_meter_counts_bits(rig: Rig) -> None:
    # 80 kbit/s with a 40 kbit bucket: five 1000-byte frames (8 kbit each) pass
    rig.bridge.meter_mod(MeterMod(OFPMC_ADD, OFPMF_KBPS | OFPMF_BURST, 2,
                                  (MeterBand(OFPMBT_DROP, 80, 40),)))
    rig.bridge.flow_mod(metered_flow(2))
    size = 1000 - len(frame(0))
    for n in range(30):
        rig.send(1, frame(n, size))
    assert 5 <= len(rig.received(2)) <= 6


def test_meter_instruction_becomes_the_datapath_meter_action(rig: Rig) -> None:
    rig.bridge.meter_mod(MeterMod(OFPMC_ADD, OFPMF_PKTPS, 3, (MeterBand(OFPMBT_DROP, 100),)))
    rig.bridge.flow_mod(metered_flow(3))
    key = parse_packet(frame(0), rig.dp_port(1))
    actions = rig.bridge.translate_key(key, 1, False).actions
    dp_id = rig.bridge.meters.get(3).dp_id
    assert actions == [Meter(dp_id), Output(rig.dp_port(2))]


def test_modify_changes_the_rate_and_keeps_totals(rig: Rig) -> None:
    rig.bridge.meter_mod(MeterMod(OFPMC_ADD, PKTPS_BURST, 1, (MeterBand(OFPMBT_DROP, 1, 1),)))
    rig.bridge.flow_mod(metered_flow(1))
    for n in range(10):
        rig.send(1, frame(n))
    assert len(rig.received(2)) <= 2
    rig.bridge.meter_mod(MeterMod(OFPMC_MODIFY, PKTPS_BURST, 1,
                                  (MeterBand(OFPMBT_DROP, 1000, 1000),)))
    for n in range(10):
        rig.send(1, frame(n))
    assert len(rig.received(2)) == 10
    (config,) = rig.bridge.meter_config(1)
    assert config.bands == (MeterBand(OFPMBT_DROP, 1000, 1000),)
    assert rig.bridge.meter_stats(1)[0].packet_in_count == 20


def test_deleting_a_meter_deletes_its_flows(rig: Rig) -> None:
    for meter_id in (1, 2):
        rig.bridge.meter_mod(MeterMod(OFPMC_ADD, OFPMF_PKTPS, meter_id,
                                      (MeterBand(OFPMBT_DROP, 10),)))
    rig.bridge.flow_mod(metered_flow(1, flags=OFPFF_SEND_FLOW_REM))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=2), (InstMeter(2),)))
    rig.bridge.meter_mod(MeterMod(OFPMC_DELETE, 0, 1))
    assert len(rig.bridge.pipeline) == 1 and len(rig.events.removed) == 1
    assert [m.meter_id for m in rig.bridge.meter_config(OFPM_ALL)] == [2]
    rig.bridge.meter_mod(MeterMod(OFPMC_DELETE, 0, 99))  # absent: no error
    rig.bridge.meter_mod(MeterMod(OFPMC_DELETE, 0, OFPM_ALL))
    assert rig.bridge.meter_config(OFPM_ALL) == [] and len(rig.bridge.pipeline) == 0
    assert rig.bridge.meter_stats(OFPM_ALL) == []


@pytest.mark.parametrize("mm, code", [
    (MeterMod(OFPMC_MODIFY, OFPMF_PKTPS, 9, (MeterBand(OFPMBT_DROP, 1),)),
     ec.OFPMMFC_UNKNOWN_METER),
    (MeterMod(OFPMC_ADD, OFPMF_PKTPS, 9, (MeterBand(OFPMBT_DSCP_REMARK, 1, 0, 1),)),
     ec.OFPMMFC_BAD_BAND),
    (MeterMod(OFPMC_ADD, OFPMF_PKTPS, 9, ()), ec.OFPMMFC_BAD_BAND),
    (MeterMod(OFPMC_ADD, OFPMF_STATS, 9, (MeterBand(OFPMBT_DROP, 1),)), ec.OFPMMFC_BAD_FLAGS),
    (MeterMod(OFPMC_ADD, OFPMF_PKTPS | OFPMF_KBPS, 9, (MeterBand(OFPMBT_DROP, 1),)),
     ec.OFPMMFC_BAD_FLAGS),
    (MeterMod(OFPMC_ADD, OFPMF_PKTPS, 0xFFFFFFFD, (MeterBand(OFPMBT_DROP, 1),)),
     ec.OFPMMFC_INVALID_METER),
    (MeterMod(OFPMC_ADD, OFPMF_PKTPS, 9, tuple(MeterBand(OFPMBT_DROP, r) for r in range(1, 9))),
     ec.OFPMMFC_OUT_OF_BANDS),
    (MeterMod(OFPMC_ADD, OFPMF_PKTPS, 1, (MeterBand(OFPMBT_DROP, 1),)), ec.OFPMMFC_METER_EXISTS),
    (MeterMod(7, OFPMF_PKTPS, 9, (MeterBand(OFPMBT_DROP, 1),)), ec.OFPMMFC_BAD_COMMAND),
])
def test_bad_meter_mods_change_nothing(rig: Rig, mm: MeterMod, code: int) -> None:
    rig.bridge.meter_mod(MeterMod(OFPMC_ADD, OFPMF_PKTPS, 1, (MeterBand(OFPMBT_DROP, 10),)))
    before = rig.bridge.meter_config(OFPM_ALL)
    assert meter_error(rig, mm) == (OFPET_METER_MOD_FAILED, code)
    assert rig.bridge.meter_config(OFPM_ALL) == before


def test_flow_mod_naming_a_missing_meter_is_refused(rig: Rig) -> None:
    with pytest.raises(OfpError) as err:
        rig.bridge.flow_mod(metered_flow(5))
    assert (err.value.type, err.value.code) == (OFPET_METER_MOD_FAILED,
                                                ec.OFPMMFC_UNKNOWN_METER)
    assert len(rig.bridge.pipeline) == 0


def test_bridges_share_the_datapath_meter_ids(rig: Rig) -> None:
    other = Rig(1, name="br1", backer=rig.backer)  # the rig fixture closes the datapath
    for bridge in (rig.bridge, other.bridge):
        bridge.meter_mod(MeterMod(OFPMC_ADD, OFPMF_PKTPS, 1, (MeterBand(OFPMBT_DROP, 10),)))
    first, second = rig.bridge.meters.get(1).dp_id, other.bridge.meters.get(1).dp_id
    assert first != second
    other.bridge.destroy()  # its meters leave the datapath with it
    rig.bridge.meter_mod(MeterMod(OFPMC_ADD, OFPMF_PKTPS, 2, (MeterBand(OFPMBT_DROP, 10),)))
    assert rig.bridge.meters.get(2).dp_id == second


# ------------------------------------------------------------ every provider
def test_core_meter_drops_above_rate_on_every_provider(harness: DatapathHarness) -> None:
    async def scenario(sw: SwitchUnderTest) -> None:
        await sw.flow_mod(FlowMod(OFPFC_DELETE, Match(), table_id=0xFF))
        sw.bridge.meter_mod(MeterMod(OFPMC_ADD, PKTPS_BURST, 1,
                                     (MeterBand(OFPMBT_DROP, 2, 5),)))
        await sw.flow_mod(FlowMod(OFPFC_ADD, Match(eth_type=0x0800), (
            InstMeter(1), InstApplyActions((ActOutput(2),))), priority=10))
        frames = [pb.udp_frame(H1, H2, "10.77.0.1", "10.77.0.2", 1000, 2000,
                               payload=n.to_bytes(4, "big")) for n in range(40)]
        for f in frames:
            await sw.send(1, f)
        got: list[bytes] = []
        for _ in range(5):
            out = await asyncio.to_thread(sw.harness.recv, sw.dp_ports[2], 0.2)
            got += [f for f in out if f in frames]
        assert 5 <= len(got) <= 9, len(got)
        (stats,) = sw.bridge.meter_stats(1)
        assert stats.packet_in_count == 40 and stats.band_counts[0][0] == 40 - len(got)

    run_scenario(harness, scenario)
