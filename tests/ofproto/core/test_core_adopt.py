"""Restart takeover over the dummy datapath: a second backer adopts the first's flows.

``DummyDpif.simulate_restart`` makes the datapath look freshly opened by a
new process (ports recovered, flows and counters kept); a new backer and
bridge then come up on it as a restarted daemon's would.
"""

from __future__ import annotations

import asyncio
import errno

import pytest

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.dummy import DummyDpif
from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import FlowKey, Output
from ovsbpfd.ofproto.actions import OFPP_NORMAL, ActOutput, InstApplyActions
from ovsbpfd.ofproto.backer import DatapathBacker
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.revalidator import mask_covers
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod
from tests.ofproto.core.rig import Rig, host_mac

H1, H2, H3 = host_mac(1), host_mac(2), host_mac(3)


def ping_pair(rig: Rig, count: int = 1) -> None:
    """Unicast both ways between H1 (port 1) and H2 (port 2), after ARP-ish learning."""
    rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
    rig.send(2, pb.arp_reply(H2, "10.0.0.2", H1, "10.0.0.1"))
    for _ in range(count):
        rig.send(1, pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"))
        rig.send(2, pb.icmp_frame(H2, H1, "10.0.0.2", "10.0.0.1"))
    rig.all_received()


def restart(old: Rig) -> Rig:
    """The same bridge, as a restarted daemon rebuilds it on the same datapath."""
    old.dpif.simulate_restart()
    return Rig(len(old.ofports), backer=DatapathBacker(old.dpif))


def take_over(rig: Rig):
    return asyncio.run(rig.backer.finish_takeover())


def flows(dpif: DummyDpif) -> dict[tuple[bytes, bytes], tuple]:
    return {(f.key.pack(), f.mask.pack()): f.actions for f in dpif.flow_dump()}


def add_flow(rig: Rig, priority: int, match: Match, actions: tuple) -> None:
    rig.bridge.flow_mod(FlowMod(command=OFPFC_ADD, priority=priority, match=match,
                                instructions=(InstApplyActions(actions),)))


@pytest.fixture
def old() -> Rig:
    rig = Rig(3)
    ping_pair(rig)
    return rig


def test_mask_covers() -> None:
    narrow = FlowKey(in_port=0xFFFFFFFF, eth_src=b"\xff" * 6)
    wide = FlowKey(in_port=0xFFFFFFFF)
    assert mask_covers(narrow, wide) and mask_covers(wide, wide)
    assert not mask_covers(wide, narrow)


def test_restart_keeps_every_flow_and_forwards_without_upcalls(old: Rig) -> None:
    before = flows(old.dpif)
    dp_ports = {p: old.dp_port(p) for p in old.ofports}
    assert len(before) == 3  # ARP flood, H1->H2, H2->H1
    new = restart(old)
    assert new.backer.takeover_pending
    assert {p: new.dp_port(p) for p in new.ofports} == dp_ports  # ports adopted
    assert new.dpif.recovered_ports() == []

    result = take_over(new)
    assert (result.kept, result.fixed, result.deleted) == (len(before), 0, 0)
    assert result.released_ports == () and result.relearned == 2
    assert flows(new.dpif) == before
    misses = new.misses()
    new.send(1, pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"))
    new.send(2, pb.icmp_frame(H2, H1, "10.0.0.2", "10.0.0.1"))
    assert new.misses() == misses
    got = {p: len(f) for p, f in new.all_received().items()}
    assert got == {1: 1, 2: 1, 3: 0}  # unicast, not flooded
    fdb = new.bridge.fdb_show()
    assert "02:00:00:00:00:01" in fdb and "02:00:00:00:00:02" in fdb


def test_counters_from_before_the_restart_are_not_credited_again(old: Rig) -> None:
    ping_pair(old, count=5)
    new = restart(old)
    take_over(new)
    new.backer.sweep()
    normal = new.bridge.pipeline.tables[0].find_strict(Match(), 0)
    assert normal is not None and normal.packet_count == 0
    for _ in range(3):
        new.send(1, pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"))
    new.backer.sweep()
    assert normal.packet_count == 3


def test_flows_are_left_alone_until_the_ports_are_back(old: Rig) -> None:
    before = flows(old.dpif)
    old.dpif.simulate_restart()
    backer = DatapathBacker(old.dpif)
    backer.sweep()  # no bridge, no port yet: nothing may be deleted
    backer.run_revalidation()
    assert flows(old.dpif) == before
    # the old flows keep forwarding meanwhile
    old.dpif.inject(old.dp_port(1), pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"))
    assert len(old.dpif.take_output(old.dp_port(2))) == 1
    assert old.dpif.stats().n_missed == old.misses()


def test_takeover_without_the_ports_removes_them_and_their_flows(old: Rig) -> None:
    old.dpif.simulate_restart()
    backer = DatapathBacker(old.dpif)
    result = asyncio.run(backer.finish_takeover())
    assert sorted(result.released_ports) == ["br0p1", "br0p2", "br0p3"]
    assert old.dpif.port_list() == [] and old.dpif.flow_dump() == []
    assert result.deleted > 0 and result.kept == 0


def test_only_unclaimed_ports_are_released(old: Rig) -> None:
    old.dpif.simulate_restart()
    new = Rig(2, backer=DatapathBacker(old.dpif))  # port 3 left the configuration
    result = take_over(new)
    assert result.released_ports == ("br0p3",)
    assert [p.name for p in new.dpif.port_list()] == ["br0p1", "br0p2"]
    # flows that flooded to the gone port no longer name it
    gone = old.dp_port(3)
    assert all(Output(gone) not in f.actions for f in new.dpif.flow_dump())


def test_stale_actions_are_fixed_in_place(old: Rig) -> None:
    before = flows(old.dpif)
    new = restart(old)
    add_flow(new, 10, Match(in_port=1), ())  # drop from port 1
    result = take_over(new)
    assert result.fixed >= 1 and result.deleted == 0
    assert set(flows(new.dpif)) == set(before)  # same megaflows, none disappeared
    misses = new.misses()
    new.send(1, pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"))
    assert new.received(2) == [] and new.misses() == misses


def test_flows_whose_mask_no_longer_fits_are_deleted(old: Rig) -> None:
    new = restart(old)
    add_flow(new, 10, Match(eth_type=0x0800, ipv4_dst=0x0A000002),
             (ActOutput(OFPP_NORMAL),))
    result = take_over(new)
    assert result.deleted >= 1
    misses = new.misses()
    new.send(1, pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"))
    assert new.misses() == misses + 1 and len(new.received(2)) == 1


def test_a_moved_mac_is_relearned_on_its_latest_port(old: Rig) -> None:
    old.send(3, pb.icmp_frame(H1, H3, "10.0.0.1", "10.0.0.3"))  # H1 now behind port 3
    old.all_received()
    new = restart(old)
    take_over(new)
    entry = new.bridge.mac.lookup(0, H1)
    assert entry is not None and entry.port == 3
    new.send(2, pb.icmp_frame(H2, H1, "10.0.0.2", "10.0.0.1"))
    assert {p: len(f) for p, f in new.all_received().items()} == {1: 0, 2: 0, 3: 1}


def test_fresh_datapath_needs_no_takeover() -> None:
    rig = Rig(2)
    try:
        assert not rig.backer.takeover_pending
        assert not rig.backer.revalidator.leave_unknown
    finally:
        rig.close()


def test_dummy_port_adoption_rules() -> None:
    dpif = DummyDpif()
    a = dpif.port_add("pa", 11)
    b = dpif.port_add("pb", 12)
    dpif.simulate_restart()
    assert [p.name for p in dpif.recovered_ports()] == ["pa", "pb"]
    assert dpif.port_add("pa", 11) == a  # adopted
    with pytest.raises(DpifError) as exc:
        dpif.port_add("pa", 11)  # a duplicate in this process
    assert exc.value.errno == errno.EEXIST
    # same name, new device: the stale port goes, a fresh one is added
    fresh = dpif.port_add("pb", 99)
    assert {(p.port_no, p.name, p.ifindex) for p in dpif.port_list()} == {
        (a, "pa", 11), (fresh, "pb", 99)}
    assert dpif.recovered_ports() == [] and fresh == b
