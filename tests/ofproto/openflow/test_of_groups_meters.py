"""GROUP_MOD / METER_MOD and the group and meter multiparts: codec, os-ken,
and ovs-ofctl against cores with and without group/meter support."""

from __future__ import annotations

import asyncio
import struct

import pytest

from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto import ofp_errors as e
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import group_meter_codec as gmc
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.types import (
    OFPGC_ADD,
    OFPGC_DELETE,
    OFPGT_FF,
    OFPGT_SELECT,
    OFPMBT_DROP,
    OFPMBT_DSCP_REMARK,
    OFPMC_ADD,
    OFPMC_DELETE,
    OFPMF_KBPS,
    OFPMF_STATS,
    Bucket,
    GroupMod,
    GroupStats,
    MeterBand,
    MeterMod,
    MeterStats,
    OfpError,
)
from tests.ofproto.openflow.of_client import running_manager
from tests.ofproto.openflow.of_recorder import ofctl
from tests.ofproto.openflow.of_stub_core import StubCore, StubGroupMeterCore

SELECT = GroupMod(OFPGC_ADD, OFPGT_SELECT, 1, (
    Bucket((a.ActOutput(1),), weight=3), Bucket((a.ActSetField("eth_dst", 5),
                                                 a.ActOutput(2)), weight=1)))
FAILOVER = GroupMod(OFPGC_ADD, OFPGT_FF, 2, (Bucket((a.ActOutput(1),), watch_port=1),
                                             Bucket((a.ActGroup(1),), watch_group=1)))
METER = MeterMod(OFPMC_ADD, OFPMF_KBPS | OFPMF_STATS, 3, (
    MeterBand(OFPMBT_DROP, 1000, 100), MeterBand(OFPMBT_DSCP_REMARK, 500, 0, 2)))


def expect_error(data: bytes, type_: int, code: int) -> None:
    with pytest.raises(OfpError) as info:
        m.decode_message(data)
    assert (info.value.type, info.value.code) == (type_, code), e.error_name(
        info.value.type, info.value.code)


@pytest.mark.parametrize("msg", [
    m.GroupModMessage(SELECT, xid=4), m.GroupModMessage(FAILOVER),
    m.GroupModMessage(GroupMod(OFPGC_DELETE, 0, a.OFPG_ALL)),
    m.MeterModMessage(METER, xid=5), m.MeterModMessage(MeterMod(OFPMC_DELETE, 0, 0xFFFFFFFF)),
])
def test_group_and_meter_mods_round_trip(msg) -> None:
    data = m.encode_message(msg)
    assert m.decode_message(data) == msg


def test_group_and_meter_multipart_bodies_round_trip() -> None:
    assert gmc.decode_group_descs(b"".join(map(gmc.encode_group_desc, [SELECT, FAILOVER]))) \
        == [SELECT, FAILOVER]
    stats = [GroupStats(1, 2, 3, 4, 5, 6, ((1, 2), (3, 4))), GroupStats(9)]
    assert gmc.decode_group_stats(b"".join(map(gmc.encode_group_stats, stats))) == stats
    assert gmc.decode_meter_configs(gmc.encode_meter_config(METER)) == [METER]
    mstats = [MeterStats(3, 1, 2, 3, 4, 5, ((6, 7), (8, 9)))]
    assert gmc.decode_meter_stats(b"".join(map(gmc.encode_meter_stats, mstats))) == mstats
    assert gmc.decode_id_request(gmc.encode_id_request(7)) == 7


def test_bad_group_mods() -> None:
    def raw(command=0, gtype=0, gid=1, buckets=b""):
        body = struct.pack("!HBxI", command, gtype, gid) + buckets
        return struct.pack("!BBHI", 4, c.OFPT_GROUP_MOD, 8 + len(body), 1) + body

    expect_error(raw(command=7), e.OFPET_GROUP_MOD_FAILED, e.OFPGMFC_BAD_COMMAND)
    expect_error(raw(gtype=9), e.OFPET_GROUP_MOD_FAILED, e.OFPGMFC_BAD_TYPE)
    expect_error(raw(gid=0xFFFFFFFC), e.OFPET_GROUP_MOD_FAILED, e.OFPGMFC_INVALID_GROUP)
    expect_error(raw(buckets=struct.pack("!HHII4x", 12, 0, 0, 0)), e.OFPET_GROUP_MOD_FAILED,
                 e.OFPGMFC_BAD_BUCKET)
    expect_error(raw(gtype=OFPGT_FF, buckets=struct.pack("!HHII4x", 16, 0, 0xFFFFFFFF,
                                                         0xFFFFFFFF)),
                 e.OFPET_GROUP_MOD_FAILED, e.OFPGMFC_BAD_WATCH)
    expect_error(raw(buckets=struct.pack("!HHII4x", 24, 0, 0, 0) + struct.pack("!HH4x", 99, 8)),
                 e.OFPET_BAD_ACTION, e.OFPBAC_BAD_TYPE)


def test_bad_meter_mods() -> None:
    def raw(command=0, flags=1, mid=1, bands=b""):
        body = struct.pack("!HHI", command, flags, mid) + bands
        return struct.pack("!BBHI", 4, c.OFPT_METER_MOD, 8 + len(body), 1) + body

    band = struct.pack("!HHII4x", OFPMBT_DROP, 16, 100, 0)
    expect_error(raw(command=5, bands=band), e.OFPET_METER_MOD_FAILED, e.OFPMMFC_BAD_COMMAND)
    expect_error(raw(flags=0x40, bands=band), e.OFPET_METER_MOD_FAILED, e.OFPMMFC_BAD_FLAGS)
    expect_error(raw(mid=0, bands=band), e.OFPET_METER_MOD_FAILED, e.OFPMMFC_INVALID_METER)
    expect_error(raw(bands=struct.pack("!HHII4x", 7, 16, 100, 0)), e.OFPET_METER_MOD_FAILED,
                 e.OFPMMFC_BAD_BAND)
    expect_error(raw(bands=struct.pack("!HHII4x", OFPMBT_DROP, 16, 0, 0)),
                 e.OFPET_METER_MOD_FAILED, e.OFPMMFC_BAD_RATE)


# ---------------------------------------------------------------- os-ken oracle
def test_group_and_meter_mods_from_and_to_osken() -> None:
    pytest.importorskip("os_ken", reason="os-ken==3.1.1 is the wire oracle")
    from tests.ofproto.openflow.test_of_osken import DP, o, osken_bytes, osken_parse, p

    raw = osken_bytes(p.OFPGroupMod(DP, o.OFPGC_ADD, o.OFPGT_SELECT, 1, [
        p.OFPBucket(3, o.OFPP_ANY, o.OFPG_ANY, [p.OFPActionOutput(1, 0xFFFF)]),
        p.OFPBucket(1, o.OFPP_ANY, o.OFPG_ANY, [p.OFPActionSetField(eth_dst=5),
                                                p.OFPActionOutput(2, 0xFFFF)])]))
    assert m.decode_message(raw).gm == SELECT
    raw = osken_bytes(p.OFPMeterMod(DP, o.OFPMC_ADD, o.OFPMF_KBPS | o.OFPMF_STATS, 3, [
        p.OFPMeterBandDrop(1000, 100), p.OFPMeterBandDscpRemark(500, 0, 2)]))
    assert m.decode_message(raw).mm == METER

    from ovsbpfd.ofproto.openflow import multipart as mp
    (reply,) = mp.split_reply(c.OFPMP_GROUP_DESC, [gmc.encode_group_desc(SELECT)], 1)
    got = osken_parse(m.encode_message(reply))
    assert got.body[0].group_id == 1 and got.body[0].buckets[0].weight == 3
    (reply,) = mp.split_reply(c.OFPMP_METER_CONFIG, [gmc.encode_meter_config(METER)], 1)
    got = osken_parse(m.encode_message(reply))
    assert got.body[0].meter_id == 3 and got.body[0].bands[1].prec_level == 2
    (reply,) = mp.split_reply(c.OFPMP_GROUP, [gmc.encode_group_stats(
        GroupStats(1, 0, 5, 6, 1, 0, ((2, 3),)))], 1)
    got = osken_parse(m.encode_message(reply))
    assert got.body[0].packet_count == 5 and got.body[0].bucket_stats[0].byte_count == 3
    (reply,) = mp.split_reply(c.OFPMP_METER, [gmc.encode_meter_stats(
        MeterStats(3, 1, 2, 3, 4, 5, ((6, 7),)))], 1)
    got = osken_parse(m.encode_message(reply))
    assert got.body[0].meter_id == 3 and got.body[0].band_stats[0].byte_band_count == 7


# ---------------------------------------------------------------- ovs-ofctl
def test_ovs_ofctl_group_and_meter_commands() -> None:
    async def main() -> None:
        async with running_manager(StubGroupMeterCore()) as mgr:
            sock = mgr.mgmt_path

            async def ok(*args: str) -> str:
                status, out, err = await ofctl(args[0], sock, *args[1:])
                assert status == 0, err
                return out

            await ok("add-group", "group_id=1,type=select,bucket=weight:3,output:1,"
                                  "bucket=weight:1,output:2")
            await ok("add-group", "group_id=2,type=ff,bucket=watch_port:1,output:1")
            status, _, err = await ofctl("add-group", sock, "group_id=1,type=all,bucket=output:1")
            assert status != 0 and "OFPGMFC_GROUP_EXISTS" in err
            groups = await ok("dump-groups")
            assert "group_id=1,type=select,bucket=weight:3,actions=output:1," \
                   "bucket=actions=output:2" in groups  # weight 1 is not printed
            assert "group_id=2,type=ff,bucket=watch_port:1,actions=output:1" in groups
            stats = await ok("dump-group-stats")
            assert "group_id=1,duration=1s,ref_count=0,packet_count=5,byte_count=300" in stats
            assert "Types:  0xf" in await ok("dump-group-features")
            await ok("add-meter", "meter=1,kbps,burst,stats,"
                                  "bands=type=drop,rate=1000,burst_size=100")
            assert "type=drop rate=1000 burst_size=100" in await ok("dump-meters")
            assert "meter:1 flow_count:1" in await ok("meter-stats")
            assert "band_types: drop dscp_remark" in await ok("meter-features")
            await ok("del-groups")
            await ok("del-meter", "meter=1")
            assert "group_id" not in await ok("dump-groups")
            assert "meter=1" not in await ok("dump-meters")

        async with running_manager(StubCore()) as mgr:  # a core without groups/meters
            status, _, err = await ofctl("add-group", mgr.mgmt_path,
                                         "group_id=1,type=all,bucket=output:1")
            assert status != 0 and "OFPGMFC_OUT_OF_GROUPS" in err
            status, _, err = await ofctl("add-meter", mgr.mgmt_path,
                                         "meter=1,kbps,bands=type=drop,rate=10")
            assert status != 0 and "OFPMMFC_OUT_OF_METERS" in err
            for command in ("del-groups", "dump-groups", "dump-meters", "meter-stats"):
                status, _, err = await ofctl(command, mgr.mgmt_path)
                assert status == 0, err

    asyncio.run(main())
