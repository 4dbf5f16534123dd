"""Groups over the dummy datapath: each type forwards as the spec says,
SELECT spreads flows and keeps each on one bucket, fast failover follows
port liveness, chaining, GROUP_MOD errors, in-use semantics and counters."""

from __future__ import annotations

import pytest

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.ofproto import error_codes as ec
from ovsbpfd.ofproto.actions import (
    OFPG_ALL,
    OFPG_ANY,
    ActGroup,
    ActOutput,
    ActSetField,
    InstApplyActions,
    InstWriteActions,
)
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import (
    OFPET_BAD_ACTION,
    OFPET_GROUP_MOD_FAILED,
    OFPFC_ADD,
    OFPFC_DELETE,
    OFPFF_SEND_FLOW_REM,
    OFPGC_ADD,
    OFPGC_DELETE,
    OFPGC_MODIFY,
    OFPGT_ALL,
    OFPGT_FF,
    OFPGT_INDIRECT,
    OFPGT_SELECT,
    OFPPC_PORT_DOWN,
    OFPRR_GROUP_DELETE,
    Bucket,
    FlowMod,
    FlowStatsRequest,
    GroupMod,
    OfpError,
)
from tests.ofproto.core.rig import Rig, empty_rig, host_mac

H1, H2 = host_mac(1), host_mac(2)


@pytest.fixture
def rig():
    with empty_rig(5) as r:
        yield r


def out(*ports: int) -> tuple:
    return tuple(ActOutput(p) for p in ports)


def add_group(rig: Rig, group_id: int, gtype: int, *buckets: Bucket) -> None:
    rig.bridge.group_mod(GroupMod(OFPGC_ADD, gtype, group_id, buckets))


def steer_to_group(rig: Rig, group_id: int, priority: int = 10, **match) -> None:
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1, **match),
                                (InstApplyActions((ActGroup(group_id),)),), priority=priority,
                                flags=OFPFF_SEND_FLOW_REM))


def udp(sport: int, dport: int = 80) -> bytes:
    return pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", sport, dport)


def group_error(rig: Rig, gm: GroupMod) -> tuple[int, int]:
    with pytest.raises(OfpError) as err:
        rig.bridge.group_mod(gm)
    return err.value.type, err.value.code


def counts(rig: Rig) -> dict[int, int]:
    return {p: len(frames) for p, frames in rig.all_received().items()}


def test_all_group_sends_a_copy_out_of_every_bucket(rig: Rig) -> None:
    add_group(rig, 1, OFPGT_ALL, Bucket(out(2)), Bucket(out(3)), Bucket(out(4)))
    steer_to_group(rig, 1)
    rig.send(1, udp(1000))
    rig.send(1, udp(1000))
    assert counts(rig) == {1: 0, 2: 2, 3: 2, 4: 2, 5: 0}
    assert rig.misses() == 1  # the second packet stayed in the datapath


def test_all_group_buckets_each_rewrite_a_clone(rig: Rig) -> None:
    """A rewrite in one bucket is not seen by the next bucket or after the group."""
    mac9 = int.from_bytes(host_mac(9), "big")
    add_group(rig, 1, OFPGT_ALL, Bucket((ActSetField("eth_dst", mac9), ActOutput(2))),
              Bucket(out(3)))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1), (InstApplyActions(
        (ActGroup(1), ActOutput(4))),), priority=10))
    frame = udp(1000)
    rig.send(1, frame)
    (to2,), (to3,), (to4,) = rig.received(2), rig.received(3), rig.received(4)
    assert to2[:6] == host_mac(9) and to2[6:] == frame[6:]
    assert to3 == frame and to4 == frame


def test_indirect_group_and_write_actions_group(rig: Rig) -> None:
    add_group(rig, 7, OFPGT_INDIRECT, Bucket(out(5)))
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=1), (
        InstWriteActions((ActGroup(7), ActOutput(2))),), priority=10))
    rig.send(1, udp(1))
    assert counts(rig) == {1: 0, 2: 0, 3: 0, 4: 0, 5: 1}  # group wins over output


def test_select_spreads_flows_and_keeps_each_flow_on_one_bucket(rig: Rig) -> None:
    add_group(rig, 2, OFPGT_SELECT, *(Bucket(out(p), weight=1) for p in (2, 3, 4)))
    steer_to_group(rig, 2)
    seen: dict[int, int] = {}
    for sport in range(2000, 2060):
        for _ in range(3):
            rig.send(1, udp(sport))
        got = {p: n for p, n in counts(rig).items() if n}
        assert len(got) == 1 and list(got.values()) == [3], got  # one bucket per flow
        port = next(iter(got))
        seen[port] = seen.get(port, 0) + 1
    assert set(seen) == {2, 3, 4} and min(seen.values()) >= 8, seen
    # the hashed L4 fields are in the megaflow: one datapath flow per flow
    assert rig.misses() == 60 and len(rig.dpif.flow_dump()) == 60


def test_select_hash_is_symmetric_and_in_the_mask(rig: Rig) -> None:
    add_group(rig, 2, OFPGT_SELECT, *(Bucket(out(p), weight=1) for p in (2, 3, 4)))
    steer_to_group(rig, 2)
    forward = parse_packet(udp(4321, 80), rig.dp_port(1))
    result = rig.bridge.translate_key(forward, 1, False)
    mask = result.mask
    assert mask.tp_src == mask.tp_dst == 0xFFFF and mask.ip_src[:4] == b"\xff" * 4
    assert mask.eth_src == b"\xff" * 6
    reverse = parse_packet(pb.udp_frame(H2, H1, "10.0.0.2", "10.0.0.1", 80, 4321),
                           rig.dp_port(1))
    assert rig.bridge.translate_key(reverse, 1, False).actions == result.actions


def test_select_weights_share_flows_in_proportion(rig: Rig) -> None:
    add_group(rig, 3, OFPGT_SELECT, Bucket(out(2), weight=3), Bucket(out(3), weight=1),
              Bucket(out(4), weight=0))
    steer_to_group(rig, 3)
    hits = {2: 0, 3: 0, 4: 0}
    for sport in range(400):
        key = parse_packet(udp(10000 + sport), rig.dp_port(1))
        (action,) = rig.bridge.translate_key(key, 1, False).actions
        hits[next(p for p in hits if rig.dp_port(p) == action.port)] += 1
    assert hits[4] == 0 and 240 <= hits[2] <= 360, hits


def test_select_uses_only_live_buckets(rig: Rig) -> None:
    add_group(rig, 2, OFPGT_SELECT, Bucket(out(2), weight=1, watch_port=2),
              Bucket(out(3), weight=1, watch_port=3))
    steer_to_group(rig, 2)
    rig.bridge.set_port_state(2, link_up=False, admin_up=True)
    for sport in range(20):
        rig.send(1, udp(3000 + sport))
    assert counts(rig)[3] == 20


def test_fast_failover_follows_the_watched_port_down_and_back(rig: Rig) -> None:
    add_group(rig, 4, OFPGT_FF, Bucket(out(2), watch_port=2), Bucket(out(3), watch_port=3))
    steer_to_group(rig, 4)
    rig.send(1, udp(1))
    assert counts(rig)[2] == 1
    rig.bridge.set_port_state(2, link_up=False, admin_up=True)
    rig.settle()  # the liveness change revalidated the installed flow
    rig.send(1, udp(1))
    assert counts(rig) == {1: 0, 2: 0, 3: 1, 4: 0, 5: 0}
    rig.bridge.port_mod(3, rig.bridge.port_map[3].hw_addr, OFPPC_PORT_DOWN, OFPPC_PORT_DOWN)
    rig.settle()
    rig.send(1, udp(1))
    assert counts(rig) == {p: 0 for p in rig.ofports}  # no live bucket: drop
    rig.bridge.set_port_state(2, link_up=True, admin_up=True)
    rig.settle()
    rig.send(1, udp(1))
    assert counts(rig)[2] == 1
    assert rig.misses() == 1  # the one datapath flow was fixed in place every time


def test_fast_failover_watch_group(rig: Rig) -> None:
    add_group(rig, 1, OFPGT_FF, Bucket(out(2), watch_port=2))
    add_group(rig, 2, OFPGT_FF, Bucket((ActGroup(1),), watch_group=1),
              Bucket(out(3), watch_port=3, watch_group=OFPG_ANY))
    steer_to_group(rig, 2)
    rig.send(1, udp(1))
    assert counts(rig)[2] == 1
    rig.bridge.set_port_state(2, link_up=False, admin_up=True)
    rig.settle()
    rig.send(1, udp(1))
    assert counts(rig)[3] == 1


def test_chained_groups_and_loops(rig: Rig) -> None:
    add_group(rig, 1, OFPGT_INDIRECT, Bucket(out(2)))
    add_group(rig, 2, OFPGT_ALL, Bucket((ActGroup(1),)), Bucket(out(3)))
    steer_to_group(rig, 2)
    rig.send(1, udp(1))
    assert counts(rig) == {1: 0, 2: 1, 3: 1, 4: 0, 5: 0}
    # group 1 may not be changed to forward to 2 (2 -> 1 -> 2), nor to itself
    assert group_error(rig, GroupMod(OFPGC_MODIFY, OFPGT_INDIRECT, 1, (
        Bucket((ActGroup(2),)),))) == (OFPET_GROUP_MOD_FAILED, ec.OFPGMFC_LOOP)
    assert group_error(rig, GroupMod(OFPGC_MODIFY, OFPGT_INDIRECT, 1, (
        Bucket((ActGroup(1),)),))) == (OFPET_GROUP_MOD_FAILED, ec.OFPGMFC_LOOP)
    # a group another group forwards to cannot be deleted alone
    assert group_error(rig, GroupMod(OFPGC_DELETE, 0, 1)) == (
        OFPET_GROUP_MOD_FAILED, ec.OFPGMFC_CHAINED_GROUP)
    assert [g.group_id for g in rig.bridge.group_desc()] == [1, 2]
    rig.send(1, udp(1))
    assert counts(rig)[2] == 1  # nothing changed


@pytest.mark.parametrize("gm, expected", [
    (GroupMod(OFPGC_MODIFY, OFPGT_ALL, 9, ()), ec.OFPGMFC_UNKNOWN_GROUP),
    (GroupMod(OFPGC_ADD, OFPGT_INDIRECT, 9, (Bucket(out(2)), Bucket(out(3)))),
     ec.OFPGMFC_INVALID_GROUP),
    (GroupMod(OFPGC_ADD, OFPGT_INDIRECT, 9, ()), ec.OFPGMFC_INVALID_GROUP),
    (GroupMod(OFPGC_ADD, OFPGT_ALL, 9, (Bucket(out(2), weight=2),)), ec.OFPGMFC_INVALID_GROUP),
    (GroupMod(OFPGC_ADD, OFPGT_ALL, 9, (Bucket(out(2), watch_port=2),)),
     ec.OFPGMFC_WATCH_UNSUPPORTED),
    (GroupMod(OFPGC_ADD, OFPGT_FF, 9, (Bucket(out(2)),)), ec.OFPGMFC_INVALID_GROUP),
    (GroupMod(OFPGC_ADD, 7, 9, ()), ec.OFPGMFC_BAD_TYPE),
    (GroupMod(5, OFPGT_ALL, 9, ()), ec.OFPGMFC_BAD_COMMAND),
    (GroupMod(OFPGC_ADD, OFPGT_ALL, 0xFFFFFF01, ()), ec.OFPGMFC_INVALID_GROUP),
])
def test_bad_group_mods_change_nothing(rig: Rig, gm: GroupMod, expected: int) -> None:
    add_group(rig, 1, OFPGT_ALL, Bucket(out(2)))
    before = rig.bridge.group_desc()
    assert group_error(rig, gm) == (OFPET_GROUP_MOD_FAILED, expected)
    assert rig.bridge.group_desc() == before


def test_group_exists_and_bad_bucket_actions(rig: Rig) -> None:
    add_group(rig, 1, OFPGT_ALL, Bucket(out(2)))
    assert group_error(rig, GroupMod(OFPGC_ADD, OFPGT_ALL, 1, ())) == (
        OFPET_GROUP_MOD_FAILED, ec.OFPGMFC_GROUP_EXISTS)
    assert group_error(rig, GroupMod(OFPGC_ADD, OFPGT_ALL, 2, (Bucket((ActGroup(5),)),))) == (
        OFPET_BAD_ACTION, ec.OFPBAC_BAD_OUT_GROUP)
    assert group_error(rig, GroupMod(OFPGC_ADD, OFPGT_ALL, 2, (Bucket(out(0)),))) == (
        OFPET_BAD_ACTION, ec.OFPBAC_BAD_OUT_PORT)
    assert group_error(rig, GroupMod(OFPGC_ADD, OFPGT_ALL, 2, (
        Bucket((ActSetField("ipv6_flabel", 1),)),))) == (OFPET_BAD_ACTION,
                                                         ec.OFPBAC_BAD_SET_TYPE)
    assert [g.group_id for g in rig.bridge.group_desc()] == [1]


def test_flow_mod_naming_a_missing_group_is_refused(rig: Rig) -> None:
    with pytest.raises(OfpError) as err:
        steer_to_group(rig, 42)
    assert (err.value.type, err.value.code) == (OFPET_BAD_ACTION, ec.OFPBAC_BAD_OUT_GROUP)
    assert len(rig.bridge.pipeline) == 0


def test_deleting_a_group_deletes_its_flows(rig: Rig) -> None:
    add_group(rig, 1, OFPGT_ALL, Bucket(out(2)))
    add_group(rig, 2, OFPGT_ALL, Bucket(out(3)))
    steer_to_group(rig, 1, eth_type=0x0800)
    steer_to_group(rig, 2, eth_type=0x0806)
    rig.bridge.flow_mod(FlowMod(OFPFC_ADD, Match(in_port=2), (InstApplyActions(out(1)),)))
    rig.send(1, udp(1))
    assert counts(rig)[2] == 1
    rig.bridge.group_mod(GroupMod(OFPGC_DELETE, 0, 1))
    assert [r.reason for r in rig.events.removed] == [OFPRR_GROUP_DELETE]
    assert len(rig.bridge.pipeline) == 2
    rig.settle()
    rig.send(1, udp(1))
    assert counts(rig)[2] == 0  # the megaflow went with the rule
    rig.bridge.group_mod(GroupMod(OFPGC_DELETE, 0, 77))  # absent: no error, no change
    rig.bridge.group_mod(GroupMod(OFPGC_DELETE, 0, OFPG_ALL))
    assert rig.bridge.group_desc() == [] and len(rig.bridge.pipeline) == 1


def test_out_group_filters_flow_stats_and_deletes(rig: Rig) -> None:
    add_group(rig, 1, OFPGT_ALL, Bucket(out(2)))
    add_group(rig, 2, OFPGT_ALL, Bucket(out(3)))
    steer_to_group(rig, 1, eth_type=0x0800)
    steer_to_group(rig, 2, eth_type=0x0806)
    assert [e.match["eth_type"][0] for e in rig.bridge.flow_stats(
        FlowStatsRequest(out_group=2))] == [0x0806]
    rig.bridge.flow_mod(FlowMod(OFPFC_DELETE, Match(), table_id=0xFF, out_group=1))
    assert [e.match["eth_type"][0] for e in rig.bridge.flow_stats(FlowStatsRequest())] == [0x0806]


def test_group_and_bucket_counters_follow_datapath_traffic(rig: Rig) -> None:
    add_group(rig, 1, OFPGT_ALL, Bucket(out(2)), Bucket(out(3)))
    add_group(rig, 2, OFPGT_SELECT, Bucket(out(4), weight=1), Bucket(out(5), weight=1))
    steer_to_group(rig, 1, eth_type=0x0800)
    steer_to_group(rig, 2, eth_type=0x0806)
    frame = udp(5)
    for _ in range(4):
        rig.send(1, frame)
    arp = pb.arp_request(H1, "10.0.0.1", "10.0.0.2")
    rig.send(1, arp)
    rig.backer.sweep()  # datapath counters -> rules and groups
    stats = {s.group_id: s for s in rig.bridge.group_stats(OFPG_ALL)}
    assert (stats[1].packet_count, stats[1].byte_count) == (4, 4 * len(frame))
    assert stats[1].bucket_counts == ((4, 4 * len(frame)), (4, 4 * len(frame)))
    assert stats[1].ref_count == 1
    assert stats[2].packet_count == 1 and sorted(stats[2].bucket_counts) == [
        (0, 0), (1, len(arp))]
    assert rig.bridge.group_stats(2)[0].group_id == 2 and rig.bridge.group_stats(99) == []


def test_modify_replaces_type_and_buckets(rig: Rig) -> None:
    add_group(rig, 1, OFPGT_ALL, Bucket(out(2)), Bucket(out(3)))
    steer_to_group(rig, 1)
    rig.send(1, udp(1))
    assert counts(rig) == {1: 0, 2: 1, 3: 1, 4: 0, 5: 0}
    rig.bridge.group_mod(GroupMod(OFPGC_MODIFY, OFPGT_INDIRECT, 1, (Bucket(out(4)),)))
    (desc,) = rig.bridge.group_desc()
    assert (desc.type, desc.buckets) == (OFPGT_INDIRECT, (Bucket(out(4)),))
    rig.settle()
    rig.send(1, udp(1))
    assert counts(rig) == {1: 0, 2: 0, 3: 0, 4: 1, 5: 0}


def test_packet_out_through_a_group(rig: Rig) -> None:
    add_group(rig, 1, OFPGT_ALL, Bucket(out(2)), Bucket(out(3)))
    rig.bridge.packet_out(1, (ActGroup(1),), udp(1))
    assert counts(rig) == {1: 0, 2: 1, 3: 1, 4: 0, 5: 0}
    with pytest.raises(OfpError) as err:
        rig.bridge.packet_out(1, (ActGroup(8),), udp(1))
    assert (err.value.type, err.value.code) == (OFPET_BAD_ACTION, ec.OFPBAC_BAD_OUT_GROUP)
