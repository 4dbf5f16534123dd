"""NORMAL: MAC learning, flooding, VLAN access/trunk ports, megaflow shape."""

from __future__ import annotations

import pytest

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.ofproto.actions import OFPP_NORMAL, ActOutput
from ovsbpfd.ofproto.mac_learning import MacLearning
from ovsbpfd.ofproto.types import OFPPC_NO_FWD
from tests.ofproto.core.rig import Rig, count_translations, host_mac

H1, H2, H3, H4 = (host_mac(n) for n in (1, 2, 3, 4))


@pytest.fixture
def rig():
    r = Rig(4)
    try:
        yield r
    finally:
        r.close()


def counts(rig: Rig) -> dict[int, int]:
    return {p: len(f) for p, f in rig.all_received().items()}


def test_learning_then_unicast_and_no_echo(rig: Rig) -> None:
    rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
    assert counts(rig) == {1: 0, 2: 1, 3: 1, 4: 1}
    rig.send(2, pb.arp_reply(H2, "10.0.0.2", H1, "10.0.0.1"))
    assert counts(rig) == {1: 1, 2: 0, 3: 0, 4: 0}
    rig.send(1, pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"))
    assert counts(rig) == {1: 0, 2: 1, 3: 0, 4: 0}
    # a frame for a host learned on the input port is dropped
    rig.send(2, pb.icmp_frame(H3, H2, "10.0.0.3", "10.0.0.2"))
    assert counts(rig) == {1: 0, 2: 0, 3: 0, 4: 0}
    assert "02:00:00:00:00:01" in rig.bridge.fdb_show()


def test_megaflow_covers_all_traffic_between_two_hosts(rig: Rig) -> None:
    rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
    rig.send(2, pb.arp_reply(H2, "10.0.0.2", H1, "10.0.0.1"))
    rig.all_received()
    misses = rig.misses()
    rig.send(1, pb.icmp_frame(H1, H2, "10.0.0.1", "10.0.0.2"))
    for port in range(1000, 1010):
        rig.send(1, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", port, 53))
        rig.send(1, pb.tcp_frame(H1, H2, "10.0.0.1", "10.0.0.2", port, 80))
    assert rig.misses() == misses + 1
    assert len(rig.received(2)) == 21
    mask = next(f.mask for f in rig.dpif.flow_dump() if f.key.eth_dst == H2)
    assert mask.eth_type == 0 and mask.ip_src == bytes(16) and mask.tp_dst == 0


def test_mac_move_is_revalidated(rig: Rig) -> None:
    rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
    rig.send(2, pb.icmp_frame(H2, H1, "10.0.0.2", "10.0.0.1"))
    assert counts(rig)[1] == 1
    rig.send(3, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))  # H1 moved to port 3
    counts(rig)
    rig.send(2, pb.icmp_frame(H2, H1, "10.0.0.2", "10.0.0.1"))
    assert counts(rig) == {1: 0, 2: 0, 3: 1, 4: 0}


def test_no_fwd_port_is_not_flooded(rig: Rig) -> None:
    rig.bridge.port_mod(3, rig.bridge.port_map[3].hw_addr, OFPPC_NO_FWD, OFPPC_NO_FWD)
    rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
    assert counts(rig) == {1: 0, 2: 1, 3: 0, 4: 1}


def test_access_and_trunk_vlans(rig: Rig) -> None:
    rig.bridge.set_port_vlan(1, 10, [])
    rig.bridge.set_port_vlan(2, 10, [])
    rig.bridge.set_port_vlan(3, 20, [])
    rig.bridge.set_port_vlan(4, None, [10, 20])
    rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))
    out = rig.all_received()
    assert len(out[2]) == 1 and out[3] == [] and len(out[4]) == 1
    assert parse_packet(out[2][0], 0).vlan_tci == 0
    assert parse_packet(out[4][0], 0).vlan_tci == 0x1000 | 10
    # tagged VLAN 20 from the trunk reaches only the VLAN 20 access port, untagged
    rig.send(4, pb.arp_request(H4, "10.0.0.4", "10.0.0.3", vlan=20))
    out = rig.all_received()
    assert out[1] == [] and out[2] == [] and len(out[3]) == 1
    assert parse_packet(out[3][0], 0).vlan_tci == 0
    # VLAN 30 is not trunked on port 4; tagged frames on access ports are dropped
    rig.send(4, pb.arp_request(H4, "10.0.0.4", "10.0.0.3", vlan=30))
    rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.3", vlan=10))
    assert counts(rig) == {1: 0, 2: 0, 3: 0, 4: 0}
    # unicast back to H1 from the trunk in VLAN 10 is untagged on the access port
    rig.send(4, pb.icmp_frame(H4, H1, "10.0.0.4", "10.0.0.1", vlan=10))
    out = rig.all_received()
    assert len(out[1]) == 1 and parse_packet(out[1][0], 0).vlan_tci == 0
    assert {(e.vlan, e.port) for e in rig.bridge.mac.entries()} >= {(10, 1), (20, 4), (10, 4)}


def test_mac_table_aging_and_limit() -> None:
    table = MacLearning(aging_s=10, max_entries=2)
    assert table.learn(0, H1, 1, now=0)
    assert not table.learn(0, H1, 1, now=1)
    assert table.learn(0, H1, 2, now=2)  # moved
    table.learn(0, H2, 1, now=3)
    table.learn(0, H3, 1, now=4)  # evicts the least recently seen (H1)
    assert table.lookup(0, H1) is None and len(table) == 2
    assert not table.learn(0, b"\x01" + bytes(5), 1)  # multicast sources never learned
    table.refresh(0, H3, 1, now=12)
    assert table.expire(now=13.5) == [(0, H2)]  # H2 aged out, H3 refreshed
    assert table.lookup(0, H3) is not None and table.lookup(0, H2) is None


def test_mac_aging_retranslates_only_the_flows_that_looked_the_entry_up(rig: Rig) -> None:
    rig.send(1, pb.arp_request(H1, "10.0.0.1", "10.0.0.2"))  # H1 learned on port 1
    rig.send(2, pb.icmp_frame(H2, H1, "10.0.0.2", "10.0.0.1"))  # to H1, learned: unicast
    rig.send(3, pb.icmp_frame(H3, H2, "10.0.0.3", "10.0.0.2"))  # to H2: unicast
    rig.all_received()
    (h1_entry,) = [e for e in rig.bridge.mac.entries() if e.mac == H1]
    h1_entry.last_seen -= rig.bridge.mac.aging_s + 1
    translations = count_translations(rig)
    full_passes = rig.backer.revalidator.n_revalidations
    rig.bridge.periodic()
    rig.settle()
    assert rig.backer.revalidator.n_revalidations == full_passes
    assert translations == [1]  # the flow to H1 only
    # that flow now floods, still in the datapath (no new miss)
    misses = rig.misses()
    rig.send(2, pb.icmp_frame(H2, H1, "10.0.0.2", "10.0.0.1"))
    rig.send(3, pb.icmp_frame(H3, H2, "10.0.0.3", "10.0.0.2"))
    assert rig.misses() == misses
    assert counts(rig) == {1: 1, 2: 1, 3: 1, 4: 1}


def test_packet_out_learning_retranslates_only_the_flows_for_that_address(rig: Rig) -> None:
    rig.send(1, pb.icmp_frame(H1, H3, "10.0.0.1", "10.0.0.3"))  # H3 unknown: flood
    rig.send(2, pb.icmp_frame(H2, H4, "10.0.0.2", "10.0.0.4"))  # H4 unknown: flood
    rig.all_received()
    translations = count_translations(rig)
    full_passes = rig.backer.revalidator.n_revalidations
    rig.bridge.packet_out(3, (ActOutput(OFPP_NORMAL),),
                          pb.icmp_frame(H3, H1, "10.0.0.3", "10.0.0.1"))  # learns H3 on 3
    assert counts(rig) == {1: 1, 2: 0, 3: 0, 4: 0}
    rig.settle()
    assert rig.backer.revalidator.n_revalidations == full_passes
    assert translations == [1]  # the flow to H3 only
    misses = rig.misses()
    rig.send(1, pb.icmp_frame(H1, H3, "10.0.0.1", "10.0.0.3"))
    assert rig.misses() == misses
    assert counts(rig) == {1: 0, 2: 0, 3: 1, 4: 0}
