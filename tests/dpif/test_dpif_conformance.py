"""One behaviour, two datapaths: every test here runs on dummy and on bpf.

Frames carry made-up unicast MACs and 10.x / fd0a:: addresses and stay on the
harness's ports.  Assertions look for the frames a test sent (a real port may
also carry stray frames the kernel sends) and wait where a real datapath is
asynchronous.
"""

from __future__ import annotations

import errno
import select

import pytest

from ovsbpfd.dpif.packet import parse_packet, push_vlan
from ovsbpfd.dpif.packet_build import (
    TCP_ACK,
    TCP_SYN,
    arp_reply,
    arp_request,
    eth,
    icmp_echo,
    icmp_frame,
    icmpv6_echo,
    ipv4,
    ipv6,
    ipv6_fragment_header,
    ipv6_options_header,
    tcp,
    tcp_frame,
    udp,
    udp_frame,
)
from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import (
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    ETH_TYPE_VLAN_8021AD,
    MAX_ACTIONS,
    UPCALL_ACTION,
    UPCALL_MISS,
    VLAN_TAG_PRESENT,
    FlowKey,
    Output,
    PopVlan,
    PushVlan,
    Upcall,
    Userspace,
)
from tests.dpif.harness import (
    DatapathHarness,
    collect,
    collect_many,
    eventually,
    gather_upcalls,
    upcall_fd_readable,
    upcalls_for,
)

MAC_A, MAC_B, MAC_C = "02:0a:00:00:00:01", "02:0a:00:00:00:02", "02:0a:00:00:00:03"
IP_A, IP_B = "10.77.0.1", "10.77.0.2"
IP6_A, IP6_B = "fd0a::1", "fd0a::2"
MAX_MASKS = 32

# Fields a NORMAL-style flow consults; in_port always.
L2_MASK = FlowKey(in_port=0xFFFFFFFF, eth_src=b"\xff" * 6, eth_dst=b"\xff" * 6)
L2_TYPE_MASK = L2_MASK.replace(eth_type=0xFFFF, vlan_tci=0xFFFF)
EXACT = FlowKey.all_ones()


def udp_ab(sport: int = 1000, dport: int = 2000, payload: bytes = b"payload") -> bytes:
    return udp_frame(MAC_A, MAC_B, IP_A, IP_B, sport, dport, payload)


def ip6_frame(next_header: int, payload: bytes, **kw: int) -> bytes:
    return eth(MAC_B, MAC_A, ETH_TYPE_IPV6, ipv6(IP6_A, IP6_B, next_header, payload, **kw))


def sample_frames() -> dict[str, bytes]:
    """Every kind of frame whose upcall key must equal the reference parser's."""
    icmp_body = icmp_echo(7, 1, b"abcdefgh")
    return {
        "arp_request": arp_request(MAC_A, IP_A, IP_B, dst_mac=MAC_B),
        "arp_reply": arp_reply(MAC_B, IP_B, MAC_A, IP_A),
        "ipv4_tcp": tcp_frame(MAC_A, MAC_B, IP_A, IP_B, 40000, 80, b"GET /"),
        "ipv4_udp": udp_ab(),
        "ipv4_icmp": icmp_frame(MAC_A, MAC_B, IP_A, IP_B, seq=3),
        "ipv4_tos_ttl": eth(MAC_B, MAC_A, ETH_TYPE_IP,
                            ipv4(IP_A, IP_B, 17, udp(5, 6, b"x"), tos=0xB9, ttl=3)),
        "ipv4_options": eth(MAC_B, MAC_A, ETH_TYPE_IP,
                            ipv4(IP_A, IP_B, 17, udp(7, 8, b"o"), options=b"\x01" * 4)),
        "ipv4_frag_first": eth(MAC_B, MAC_A, ETH_TYPE_IP,
                               ipv4(IP_A, IP_B, 17, udp(9, 10, b"f" * 16), more_fragments=True)),
        "ipv4_frag_later": eth(MAC_B, MAC_A, ETH_TYPE_IP,
                               ipv4(IP_A, IP_B, 17, b"later-fragment!!", frag_offset=3)),
        "ipv4_sctp": eth(MAC_B, MAC_A, ETH_TYPE_IP,
                         ipv4(IP_A, IP_B, 132, bytes.fromhex("0b0c0d0e") + bytes(8))),
        "ipv4_icmp_unreachable": eth(MAC_B, MAC_A, ETH_TYPE_IP,
                                     ipv4(IP_A, IP_B, 1, bytes([3, 1, 0, 0]) + icmp_body[4:])),
        "ipv4_padded_to_60": udp_ab(payload=b"").ljust(60, b"\x00"),
        "ipv6_udp": ip6_frame(17, udp(1111, 2222, b"six"), tclass=0x2C, hop_limit=9),
        "ipv6_tcp": ip6_frame(6, tcp(3333, 443, flags=TCP_SYN)),
        "ipv6_icmpv6": ip6_frame(58, icmpv6_echo(1, 2, b"ping6")),
        "ipv6_ext_headers": ip6_frame(
            0, ipv6_options_header(60) + ipv6_options_header(17, 1) + udp(4444, 5555, b"e")),
        "ipv6_frag_first": ip6_frame(
            44, ipv6_fragment_header(17, 0, more=True, ident=5) + udp(6666, 7777, b"f" * 8)),
        "ipv6_frag_later": ip6_frame(
            44, ipv6_fragment_header(17, 2, more=False, ident=5) + b"tail-of-datagram"),
        "vlan_8021q_udp": udp_frame(MAC_A, MAC_B, IP_A, IP_B, 1, 2, b"v", vlan=(5 << 13) | 42),
        "vlan_8021ad_arp": eth(MAC_B, MAC_A, 0x0806, arp_reply(MAC_A, IP_A, MAC_B, IP_B)[14:],
                               vlan=100, tpid=ETH_TYPE_VLAN_8021AD),
        "vlan_8021q_ipv6": eth(MAC_B, MAC_A, ETH_TYPE_IPV6,
                               ipv6(IP6_A, IP6_B, 17, udp(1, 2, b"t")), vlan=7),
        "other_ethertype": eth(MAC_B, MAC_A, 0x88B5, b"local experimental payload"),
    }


def drain(harness: DatapathHarness, *ports: int) -> None:
    """Forget upcalls and output frames left over from earlier steps."""
    harness.dpif.recv(1 << 16)
    for port in ports:
        harness.recv(port, timeout=0.0)


def two_ports(harness: DatapathHarness) -> tuple[int, int]:
    return harness.add_port("dpt-a"), harness.add_port("dpt-b")


def key_of(frame: bytes, port: int) -> FlowKey:
    return parse_packet(frame, port)


# ------------------------------------------------------------------ ports


def test_dpif_ports_are_listed_with_names_and_numbers(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    assert a != b and a >= 1 and b >= 1
    listed = {p.port_no: p.name for p in harness.dpif.port_list()}
    assert listed.get(a) == "dpt-a" and listed.get(b) == "dpt-b"


def test_dpif_port_errors_change_nothing(harness: DatapathHarness) -> None:
    a, _ = two_ports(harness)
    port_a = next(p for p in harness.dpif.port_list() if p.port_no == a)
    before = harness.dpif.port_list()
    with pytest.raises(DpifError) as exc:
        harness.dpif.port_add(port_a.name, port_a.ifindex, a)
    assert exc.value.errno == errno.EEXIST
    unused = max(p.port_no for p in before) + 17
    with pytest.raises(DpifError) as exc:
        harness.dpif.port_del(unused)
    assert exc.value.errno == errno.ENOENT
    with pytest.raises(DpifError) as exc:
        harness.dpif.port_stats(unused)
    assert exc.value.errno == errno.ENOENT
    assert harness.dpif.port_list() == before


def test_dpif_deleted_port_stops_sending_and_receiving(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    frame = udp_ab()
    key = key_of(frame, a)
    dpif.flow_put(key, EXACT, [Output(b)])
    dpif.port_del(b)
    assert [p.port_no for p in dpif.port_list()] == [a]
    drain(harness, b)
    harness.send(a, frame)
    assert eventually(lambda: dpif.flow_get(key, EXACT).stats.packets == 1)
    assert frame not in harness.recv(b, timeout=0.2)
    back = udp_frame(MAC_B, MAC_A, IP_B, IP_A, 2000, 1000)
    harness.send(b, back)  # b is no datapath port now: its frames never reach it
    assert upcalls_for(dpif, back, timeout=0.3) == []


# ------------------------------------------------------------------ flow table


def test_dpif_flow_put_get_stores_masked_key(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    key = key_of(udp_ab(), a)
    dpif.flow_put(key, L2_TYPE_MASK, [Output(b)])
    flow = dpif.flow_get(key, L2_TYPE_MASK)
    assert flow is not None
    assert flow.key == key.masked(L2_TYPE_MASK)
    assert flow.key.tp_src == 0 and flow.key.eth_src == key.eth_src
    assert flow.mask == L2_TYPE_MASK
    assert flow.actions == (Output(b),)
    assert (flow.stats.packets, flow.stats.bytes, flow.stats.used_ns) == (0, 0, 0)
    # Any key with the same masked value names the same flow.
    other = key.replace(tp_src=9, ip_dst=bytes(16))
    assert dpif.flow_get(other, L2_TYPE_MASK) == flow
    assert dpif.flow_get(key, EXACT) is None
    stats = dpif.stats()
    assert (stats.n_flows, stats.n_masks) == (1, 1)


def test_dpif_flow_put_create_and_modify_flags(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    key = key_of(udp_ab(), a)
    with pytest.raises(DpifError) as exc:
        dpif.flow_put(key, EXACT, [Output(b)], create=False)
    assert exc.value.errno == errno.ENOENT
    assert dpif.flow_dump() == []
    dpif.flow_put(key, EXACT, [Output(b)], modify=False)
    with pytest.raises(DpifError) as exc:
        dpif.flow_put(key, EXACT, [], modify=False)
    assert exc.value.errno == errno.EEXIST
    assert dpif.flow_get(key, EXACT).actions == (Output(b),)
    dpif.flow_put(key, EXACT, [PushVlan(10), Output(b)], create=False)
    assert dpif.flow_get(key, EXACT).actions == (PushVlan(10), Output(b))
    assert len(dpif.flow_dump()) == 1


def test_dpif_flow_modify_keeps_stats_unless_reset(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    frame = udp_ab()
    key = key_of(frame, a)
    dpif.flow_put(key, EXACT, [Output(b)])
    harness.send(a, frame)
    assert collect(harness, b, frame) == 1
    assert eventually(lambda: dpif.flow_get(key, EXACT).stats.packets == 1)
    dpif.flow_put(key, EXACT, [])
    assert dpif.flow_get(key, EXACT).stats.packets == 1
    dpif.flow_put(key, EXACT, [Output(b)], reset_stats=True)
    stats = dpif.flow_get(key, EXACT).stats
    assert (stats.packets, stats.bytes) == (0, 0)


def test_dpif_flow_del_returns_final_stats(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    frame = udp_ab()
    key = key_of(frame, a)
    dpif.flow_put(key, EXACT, [Output(b)])
    for _ in range(3):
        harness.send(a, frame)
    assert collect(harness, b, frame, count=3) == 3
    assert eventually(lambda: dpif.flow_get(key, EXACT).stats.packets == 3)
    final = dpif.flow_del(key, EXACT)
    assert final is not None
    assert (final.packets, final.bytes) == (3, 3 * len(frame))
    assert dpif.flow_get(key, EXACT) is None
    assert dpif.flow_del(key, EXACT) is None
    assert dpif.stats().n_flows == 0 and dpif.stats().n_masks == 0


def test_dpif_flow_dump_and_flush(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    keys = [key_of(udp_ab(sport=s), a) for s in range(100, 110)]
    for key in keys:
        dpif.flow_put(key, EXACT, [Output(b)])
    dpif.flow_put(keys[0], L2_MASK, [])
    dumped = dpif.flow_dump()
    assert len(dumped) == 11
    assert {(f.key, f.mask) for f in dumped} == (
        {(k, EXACT) for k in keys} | {(keys[0].masked(L2_MASK), L2_MASK)})
    assert (dpif.stats().n_flows, dpif.stats().n_masks) == (11, 2)
    dpif.flow_flush()
    assert dpif.flow_dump() == []
    assert (dpif.stats().n_flows, dpif.stats().n_masks) == (0, 0)


def distinct_masks(count: int) -> list[FlowKey]:
    """``count`` different masks: L2 plus one distinct bit of ip_src each."""
    return [L2_MASK.replace(ip_src=(1 << i).to_bytes(16, "big")) for i in range(count)]


def test_dpif_mask_table_full_is_efbig_and_changes_nothing(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    key = key_of(udp_ab(), a)
    masks = distinct_masks(MAX_MASKS + 1)
    for mask in masks[:MAX_MASKS]:
        dpif.flow_put(key, mask, [Output(b)])
    # A second flow under an existing mask still fits.
    dpif.flow_put(key.replace(eth_src=b"\x02" * 6), masks[0], [])
    before = dpif.flow_dump()
    with pytest.raises(DpifError) as exc:
        dpif.flow_put(key, masks[MAX_MASKS], [Output(b)])
    assert exc.value.errno == errno.EFBIG
    assert len(dpif.flow_dump()) == len(before) == MAX_MASKS + 1
    assert dpif.stats().n_masks == MAX_MASKS
    # Freeing a mask (its last flow goes) makes room again.
    dpif.flow_del(key, masks[5])
    dpif.flow_put(key, masks[MAX_MASKS], [Output(b)])
    assert dpif.stats().n_masks == MAX_MASKS


def test_dpif_too_many_actions_is_e2big(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    key = key_of(udp_ab(), a)
    with pytest.raises(DpifError) as exc:
        dpif.flow_put(key, EXACT, [Output(b)] * (MAX_ACTIONS + 1))
    assert exc.value.errno == errno.E2BIG
    assert dpif.flow_dump() == []
    dpif.flow_put(key, EXACT, [Output(b)] * MAX_ACTIONS)
    assert len(dpif.flow_get(key, EXACT).actions) == MAX_ACTIONS


def test_dpif_malformed_action_is_einval(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    key = key_of(udp_ab(), a)
    for bad in ([PushVlan(10, tpid=0x0800), Output(b)], [Output(b), "output:2"]):
        with pytest.raises(DpifError) as exc:
            dpif.flow_put(key, EXACT, bad)  # type: ignore[arg-type]
        assert exc.value.errno == errno.EINVAL
    assert dpif.flow_dump() == []


def test_dpif_malformed_key_is_einval(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    key = key_of(udp_ab(), a)
    for bad_key, bad_mask in [(key.replace(tp_src=1 << 16), EXACT),
                              (key, EXACT.replace(nw_ttl=256)),
                              ("in_port=1", EXACT)]:
        with pytest.raises(DpifError) as exc:
            dpif.flow_put(bad_key, bad_mask, [Output(b)])  # type: ignore[arg-type]
        assert exc.value.errno == errno.EINVAL
    assert dpif.flow_dump() == [] and dpif.stats().n_masks == 0


# ------------------------------------------------------------------ misses


def test_dpif_miss_upcall_key_equals_reference_parser(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    frames = sample_frames()
    missed_before = dpif.stats().n_missed
    mismatches: dict[str, object] = {}
    for name, frame in frames.items():
        harness.send(a, frame)
        got = upcalls_for(dpif, frame)
        if len(got) != 1:
            mismatches[name] = f"{len(got)} upcalls"
            continue
        upcall = got[0]
        expected = key_of(frame, a)
        if upcall.kind != UPCALL_MISS or upcall.key != expected or upcall.packet != frame:
            mismatches[name] = diff_keys(expected, upcall.key) or upcall
    assert mismatches == {}
    assert dpif.stats().n_missed - missed_before >= len(frames)
    assert dpif.stats().n_hit == 0
    assert harness.recv(b, timeout=0.2) == []  # misses are dropped


def diff_keys(expected: FlowKey, got: FlowKey) -> dict[str, tuple[object, object]]:
    return {f: (getattr(expected, f), getattr(got, f)) for f in expected.__dataclass_fields__
            if getattr(expected, f) != getattr(got, f)}


def test_dpif_upcall_fd_is_readable_exactly_while_upcalls_wait(harness: DatapathHarness) -> None:
    a, _ = two_ports(harness)
    dpif = harness.dpif
    drain(harness)
    assert not upcall_fd_readable(dpif)
    frames = [udp_ab(sport=s) for s in (1, 2, 3)]
    for frame in frames:
        harness.send(a, frame)
    assert upcall_fd_readable(dpif, timeout=2.0)
    assert eventually(lambda: dpif.stats().n_missed >= 3)
    first = dpif.recv(max_batch=1)
    assert len(first) == 1
    assert upcall_fd_readable(dpif, timeout=0.5)  # two still wait
    rest = gather_upcalls(dpif, lambda u: u.packet in frames, count=2)
    assert sorted(u.packet for u in first + rest) == sorted(frames)
    assert dpif.recv() == []
    assert not upcall_fd_readable(dpif)
    poller = select.poll()
    poller.register(dpif.upcall_fd(), select.POLLIN)
    assert poller.poll(0) == []


# ------------------------------------------------------------------ forwarding


def test_dpif_flow_forwards_without_upcall_and_counts(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    frame = udp_ab(payload=b"x" * 100)
    key = key_of(frame, a)
    dpif.flow_put(key, EXACT, [Output(b)])
    drain(harness, b)
    before = dpif.stats()
    rx_before, tx_before = dpif.port_stats(a), dpif.port_stats(b)
    for _ in range(5):
        harness.send(a, frame)
    assert collect(harness, b, frame, count=5) == 5
    assert upcalls_for(dpif, frame, timeout=0.2) == []
    assert eventually(lambda: dpif.flow_get(key, EXACT).stats.packets == 5)
    stats = dpif.flow_get(key, EXACT).stats
    assert stats.bytes == 5 * len(frame)
    assert 0 < stats.used_ns <= dpif.now_ns()
    assert dpif.stats().n_hit - before.n_hit == 5
    rx, tx = dpif.port_stats(a), dpif.port_stats(b)
    assert rx.rx_packets - rx_before.rx_packets >= 5
    assert rx.rx_bytes - rx_before.rx_bytes >= 5 * len(frame)
    assert (tx.tx_packets - tx_before.tx_packets, tx.tx_bytes - tx_before.tx_bytes) == (
        5, 5 * len(frame))


def test_dpif_mask_wildcards_unconsulted_fields(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    first, second = udp_ab(sport=1111, dport=53), udp_ab(sport=2222, dport=54)
    dpif.flow_put(key_of(first, a), L2_TYPE_MASK, [Output(b)])
    harness.send(a, first)
    harness.send(a, second)
    assert collect_many(harness, b, [first, second]) == [first, second]
    assert upcalls_for(dpif, second, timeout=0.2) == []
    flows = dpif.flow_dump()
    assert len(flows) == 1
    assert eventually(lambda: dpif.flow_dump()[0].stats.packets == 2)
    # A packet that differs in a consulted field misses.
    third = udp_frame(MAC_C, MAC_B, IP_A, IP_B, 1111, 53)
    harness.send(a, third)
    assert len(upcalls_for(dpif, third)) == 1


def test_dpif_tcp_flags_accumulate(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    syn = tcp_frame(MAC_A, MAC_B, IP_A, IP_B, 40000, 80, flags=TCP_SYN)
    ack = tcp_frame(MAC_A, MAC_B, IP_A, IP_B, 40000, 80, b"data", flags=TCP_ACK)
    dpif.flow_put(key_of(syn, a), L2_TYPE_MASK, [Output(b)])
    harness.send(a, syn)
    harness.send(a, ack)
    assert len(collect_many(harness, b, [syn, ack])) == 2
    assert eventually(lambda: dpif.flow_dump()[0].stats.tcp_flags == TCP_SYN | TCP_ACK)


def test_dpif_push_vlan(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    frame = udp_ab()
    tci = (3 << 13) | 101
    harness.dpif.flow_put(key_of(frame, a), EXACT, [PushVlan(tci), Output(b)])
    harness.send(a, frame)
    assert collect(harness, b, push_vlan(frame, tci)) == 1


def test_dpif_pop_vlan(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    untagged = udp_ab()
    tagged = push_vlan(untagged, 101)
    key = key_of(tagged, a)
    assert key.vlan_tci == 101 | VLAN_TAG_PRESENT
    harness.dpif.flow_put(key, EXACT, [PopVlan(), Output(b)])
    harness.send(a, tagged)
    assert collect(harness, b, untagged) == 1


def test_dpif_tagged_frames_count_their_whole_length(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    tagged = push_vlan(udp_ab(), 33)
    key = key_of(tagged, a)
    dpif.flow_put(key, EXACT, [Output(b)])
    tx_before = dpif.port_stats(b)
    harness.send(a, tagged)
    assert collect(harness, b, tagged) == 1
    assert eventually(lambda: dpif.flow_get(key, EXACT).stats.packets == 1)
    assert dpif.flow_get(key, EXACT).stats.bytes == len(tagged)
    assert dpif.port_stats(b).tx_bytes - tx_before.tx_bytes == len(tagged)


def test_dpif_output_to_several_ports(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    c = harness.add_port("dpt-c")
    frame = udp_ab()
    tci = 20
    harness.dpif.flow_put(key_of(frame, a), EXACT,
                          [Output(b), PushVlan(tci), Output(c), PopVlan(), Output(b)])
    harness.send(a, frame)
    assert collect(harness, b, frame, count=2) == 2
    assert collect(harness, c, push_vlan(frame, tci)) == 1


def test_dpif_empty_actions_drop(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    frame = udp_ab()
    key = key_of(frame, a)
    dpif.flow_put(key, EXACT, [])
    drain(harness, b)
    harness.send(a, frame)
    assert eventually(lambda: dpif.flow_get(key, EXACT).stats.packets == 1)
    assert frame not in harness.recv(b, timeout=0.2)
    assert upcalls_for(dpif, frame, timeout=0.2) == []


def test_dpif_userspace_action_sends_upcall_with_cookie(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    frame = udp_ab()
    key = key_of(frame, a)
    dpif.flow_put(key, EXACT, [Output(b), Userspace(cookie=0xC0FFEE)])
    harness.send(a, frame)
    assert collect(harness, b, frame) == 1
    got: list[Upcall] = upcalls_for(dpif, frame)
    assert len(got) == 1
    assert (got[0].kind, got[0].cookie, got[0].key) == (UPCALL_ACTION, 0xC0FFEE, key)


def test_dpif_execute_applies_actions(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    c = harness.add_port("dpt-c")
    dpif = harness.dpif
    frame = udp_ab()
    drain(harness, a, b, c)
    dpif.execute(frame, [Output(b), PushVlan(12), Output(c)])
    assert collect(harness, b, frame) == 1
    assert collect(harness, c, push_vlan(frame, 12)) == 1
    assert upcalls_for(dpif, frame, timeout=0.2) == []
    assert dpif.flow_dump() == []
    with pytest.raises(DpifError) as exc:
        dpif.execute(frame, [Output(b)] * (MAX_ACTIONS + 1))
    assert exc.value.errno == errno.E2BIG


# ------------------------------------------------------------------ a learning switch


class LearningSwitch:
    """A tiny slow path over a dpif: learn source MACs, install L2 megaflows.

    The smallest controller loop that shows the fast/slow path split: the
    first packet of each direction is an upcall, later ones stay in the
    datapath.
    """

    def __init__(self, harness: DatapathHarness, ports: list[int], macs: set[bytes]) -> None:
        self.dpif = harness.dpif
        self.ports = ports
        self.macs = macs  # only our frames; strays on a real port are ignored
        self.where: dict[bytes, int] = {}
        self.upcalls = 0

    def handle_upcalls(self, timeout: float = 1.0) -> None:
        for upcall in gather_upcalls(self.dpif, self._ours, count=1, timeout=timeout):
            self.upcalls += 1
            key = upcall.key
            self.where[key.eth_src] = key.in_port
            out = self.where.get(key.eth_dst)
            if out is None:
                actions = [Output(p) for p in self.ports if p != key.in_port]
            else:
                actions = [Output(out)]
                self.dpif.flow_put(key, L2_MASK, actions)
            self.dpif.execute(upcall.packet, actions)

    def _ours(self, upcall: Upcall) -> bool:
        return upcall.key.eth_src in self.macs


def test_dpif_first_packet_upcalls_the_rest_stays_in_datapath(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    mac_a, mac_b = bytes.fromhex(MAC_A.replace(":", "")), bytes.fromhex(MAC_B.replace(":", ""))
    switch = LearningSwitch(harness, [a, b], {mac_a, mac_b})
    request = arp_request(MAC_A, IP_A, IP_B, dst_mac=MAC_B)
    reply = arp_reply(MAC_B, IP_B, MAC_A, IP_A)
    harness.send(a, request)
    switch.handle_upcalls()
    assert collect(harness, b, request) == 1
    harness.send(b, reply)
    switch.handle_upcalls()
    assert collect(harness, a, reply) == 1
    pings = [icmp_frame(MAC_A, MAC_B, IP_A, IP_B, seq=i) for i in range(20)]
    pongs = [eth(MAC_A, MAC_B, ETH_TYPE_IP, ipv4(IP_B, IP_A, 1, icmp_echo(1, i, b"ping", True)))
             for i in range(20)]
    arrived_b: list[bytes] = []
    arrived_a: list[bytes] = []
    for ping, pong in zip(pings, pongs, strict=True):
        harness.send(a, ping)
        if not switch.where.get(mac_b) or not harness.dpif.flow_get(key_of(ping, a), L2_MASK):
            switch.handle_upcalls(timeout=0.5)
        arrived_b += collect_many(harness, b, [ping], timeout=1.0)
        harness.send(b, pong)
        arrived_a += collect_many(harness, a, [pong], timeout=1.0)
    assert arrived_b == pings
    assert arrived_a == pongs
    assert switch.upcalls <= 3
    flows = {(f.key.in_port, f.key.eth_dst): f.stats.packets for f in harness.dpif.flow_dump()}
    assert eventually(lambda: sum(
        f.stats.packets for f in harness.dpif.flow_dump()) >= 39)
    assert set(flows) == {(a, mac_b), (b, mac_a)}
