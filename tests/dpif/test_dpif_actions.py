"""Set-field (SetMasked) on both datapaths: exactly the masked bits change and
every checksum stays valid, on tagged and untagged frames, before and after
outputs and VLAN changes.

Each frame's expected rewrite comes from ovsbpfd.dpif.packet.set_masked; on
top of that, every output is checked independently: its checksums are
recomputed from scratch here, and its parsed key must equal the input's key
with only the field's masked bits changed.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

import pytest

from ovsbpfd.dpif.packet import crc32c, internet_checksum, parse_packet, push_vlan, set_masked
from ovsbpfd.dpif.packet_build import (
    arp_reply,
    eth,
    icmp_frame,
    icmpv6_echo,
    ipv4,
    ipv6,
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
    MAX_SET_ACTIONS,
    SET_FIELD_WIDTHS,
    SET_INT_FIELDS,
    FlowKey,
    Output,
    PopVlan,
    PushVlan,
    SetMasked,
    Userspace,
    format_actions,
)
from tests.dpif.harness import DatapathHarness, collect, collect_many, upcalls_for

MAC_A, MAC_B = "02:0b:00:00:00:01", "02:0b:00:00:00:02"
IP_A, IP_B = "10.78.0.1", "10.78.0.2"
IP6_A, IP6_B = "fd0b::1", "fd0b::2"
EXACT = FlowKey.all_ones()
IP4_X = bytes([192, 168, 7, 9])
IP6_X = bytes.fromhex("fd0b00000000000000000000000000aa")
FULL16 = b"\xff" * 16


def ip4_mask(prefix: int) -> bytes:
    return ((0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF).to_bytes(4, "big")


# ------------------------------------------------------------------ frames


def tcp4(sport: int = 40000, vlan: int | None = None) -> bytes:
    return tcp_frame(MAC_A, MAC_B, IP_A, IP_B, sport, 80, b"tcp payload", vlan=vlan)


def udp4(sport: int = 1000, vlan: int | None = None) -> bytes:
    return udp_frame(MAC_A, MAC_B, IP_A, IP_B, sport, 2000, b"udp payload", vlan=vlan)


def udp4_no_checksum(sport: int = 1001) -> bytes:
    frame = bytearray(udp4(sport))
    frame[40:42] = b"\x00\x00"  # IPv4 UDP checksum 0 = "none"
    return bytes(frame)


def sctp4(sport: int = 3868) -> bytes:
    body = struct.pack("!HHI", sport, 3868, 0xABCDEF01) + bytes(4) + b"\x00\x03\x00\x10" + (
        b"sctp-chunk--")
    body = body[:8] + crc32c(body).to_bytes(4, "little") + body[12:]
    return eth(MAC_B, MAC_A, ETH_TYPE_IP, ipv4(IP_A, IP_B, 132, body))


def ip6(proto: int, payload: bytes, vlan: int | None = None, tclass: int = 0x2C) -> bytes:
    return eth(MAC_B, MAC_A, ETH_TYPE_IPV6,
               ipv6(IP6_A, IP6_B, proto, payload, tclass=tclass, hop_limit=33), vlan=vlan)


def udp6(sport: int = 5000, vlan: int | None = None) -> bytes:
    return ip6(17, udp(sport, 53, b"udp6"), vlan)


def tcp6(sport: int = 5001) -> bytes:
    return ip6(6, tcp(sport, 443, b"tcp6"))


def icmp6(seq: int = 1) -> bytes:
    return ip6(58, icmpv6_echo(9, seq, b"ping6"))


@dataclass(frozen=True)
class Case:
    name: str
    frame: bytes
    action: SetMasked


def cases() -> list[Case]:
    """One frame per case (frames differ, so their exact-match flows do too)."""
    return [
        Case("eth_src", udp4(1), SetMasked.exact("eth_src", bytes.fromhex("0200000000aa"))),
        Case("eth_dst_masked", udp4(2), SetMasked(
            "eth_dst", bytes.fromhex("0a0b0c000000"), bytes.fromhex("ffffff000000"))),
        Case("ip4_src_tcp", tcp4(1), SetMasked.exact("ip_src", IP4_X)),
        Case("ip4_dst_udp_prefix", udp4(3), SetMasked(
            "ip_dst", bytes([172, 16, 0, 0]), ip4_mask(12))),
        Case("ip4_src_udp_no_checksum", udp4_no_checksum(), SetMasked.exact("ip_src", IP4_X)),
        Case("ip4_dst_icmp", icmp_frame(MAC_A, MAC_B, IP_A, IP_B, seq=5),
             SetMasked.exact("ip_dst", IP4_X)),
        Case("ip4_dscp", udp4(4), SetMasked("nw_tos", 0xB8, 0xFC)),
        Case("ip4_ttl", tcp4(2), SetMasked("nw_ttl", 63, 0xFF)),
        Case("tcp_src", tcp4(3), SetMasked.exact("tp_src", 4242)),
        Case("udp_dst_masked", udp4(5), SetMasked("tp_dst", 0x1200, 0xFF00)),
        Case("sctp_src", sctp4(), SetMasked.exact("tp_src", 9999)),
        Case("ip6_src_udp", udp6(1), SetMasked("ip_src", IP6_X, FULL16)),
        Case("ip6_dst_tcp_prefix", tcp6(1), SetMasked(
            "ip_dst", bytes.fromhex("fd0c") + bytes(14), b"\xff\xff" + bytes(14))),
        Case("ip6_src_icmp6", icmp6(), SetMasked("ip_src", IP6_X, FULL16)),
        Case("ip6_tclass", udp6(2), SetMasked("nw_tos", 0x04, 0x0F)),
        Case("ip6_hop_limit", udp6(3), SetMasked("nw_ttl", 32, 0xFF)),
        Case("udp6_src", udp6(4), SetMasked.exact("tp_src", 7)),
        Case("arp_spa", arp_reply(MAC_A, IP_A, MAC_B, IP_B), SetMasked.exact("ip_src", IP4_X)),
        Case("arp_tha", arp_reply(MAC_A, IP_B, MAC_B, IP_A),
             SetMasked.exact("arp_tha", bytes.fromhex("0200000000bb"))),
        Case("vlan_ip4_src_tcp", tcp4(4, vlan=(2 << 13) | 10), SetMasked.exact("ip_src", IP4_X)),
        Case("vlan_udp_dst", udp4(6, vlan=11), SetMasked.exact("tp_dst", 4789)),
        Case("vlan_ip4_ttl", udp4(7, vlan=12), SetMasked("nw_ttl", 1, 0xFF)),
        Case("vlan_ip6_dst_udp", udp6(5, vlan=13), SetMasked("ip_dst", IP6_X, FULL16)),
        Case("qinq_tpid_ip4_dscp", eth(MAC_B, MAC_A, ETH_TYPE_IP,
                                       ipv4(IP_A, IP_B, 17, udp(9, 9, b"ad"), tos=3),
                                       vlan=14, tpid=ETH_TYPE_VLAN_8021AD),
             SetMasked("nw_tos", 0x28, 0xFC)),
        Case("no_l4_on_arp", arp_reply(MAC_B, IP_B, MAC_A, IP_A), SetMasked.exact("tp_src", 1)),
        Case("ip4_later_fragment_ports", eth(MAC_B, MAC_A, ETH_TYPE_IP, ipv4(
            IP_A, IP_B, 17, b"later-fragment!!", frag_offset=3)), SetMasked.exact("tp_dst", 1)),
    ]


# ------------------------------------------------------------------ independent checks


def _l3(frame: bytes) -> tuple[int, int]:
    eth_type, off = int.from_bytes(frame[12:14], "big"), 14
    if eth_type in (0x8100, 0x88A8):
        eth_type, off = int.from_bytes(frame[16:18], "big"), 18
    return eth_type, off


def checksum_problems(frame: bytes) -> list[str]:
    """Recompute every checksum of the frame from scratch; [] if all verify."""
    eth_type, off = _l3(frame)
    if eth_type == ETH_TYPE_IP:
        ihl = (frame[off] & 0x0F) * 4
        problems = [] if internet_checksum(frame[off:off + ihl]) == 0 else ["ipv4 header"]
        if int.from_bytes(frame[off + 6:off + 8], "big") & 0x3FFF:
            return problems  # fragment: no whole L4 segment to check
        end = off + int.from_bytes(frame[off + 2:off + 4], "big")
        pseudo = frame[off + 12:off + 20]
        return problems + _l4_problems(frame[off + 9], pseudo, frame[off + ihl:end], v4=True)
    if eth_type == ETH_TYPE_IPV6:
        end = off + 40 + int.from_bytes(frame[off + 4:off + 6], "big")
        return _l4_problems(frame[off + 6], frame[off + 8:off + 40], frame[off + 40:end], False)
    return []


def _l4_problems(proto: int, addrs: bytes, segment: bytes, v4: bool) -> list[str]:
    if proto == 132:
        stored = int.from_bytes(segment[8:12], "little")
        return [] if crc32c(segment[:8] + bytes(4) + segment[12:]) == stored else ["sctp crc"]
    if proto == 17 and v4 and segment[6:8] == b"\x00\x00":
        return []
    if proto not in (6, 17, 58) or (proto == 58 and v4):
        if proto == 1 and internet_checksum(segment) != 0:
            return ["icmp"]
        return []
    pseudo_sum = sum(struct.unpack(f"!{len(addrs) // 2}H", addrs)) + proto + len(segment)
    return [] if internet_checksum(segment, pseudo_sum) == 0 else [f"l4 proto {proto}"]


def expected_key(before: FlowKey, act: SetMasked, applies: bool) -> FlowKey:
    """``before`` with the field's masked bits set, if the field exists in the packet."""
    if not applies:
        return before
    old, value, mask = getattr(before, act.field), act.value, act.mask
    if act.field in SET_INT_FIELDS:
        return before.replace(**{act.field: (old & ~mask) | value})
    merged = bytes((o & ~m) | v for o, v, m in zip(old, value, mask, strict=True))
    if act.field in ("ip_src", "ip_dst") and before.eth_type != ETH_TYPE_IPV6:
        merged = merged[:4] + bytes(12)  # IPv4 / ARP addresses are the first 4 bytes
    return before.replace(**{act.field: merged})


NOT_APPLICABLE = {"no_l4_on_arp", "ip4_later_fragment_ports"}


def two_ports(harness: DatapathHarness) -> tuple[int, int]:
    return harness.add_port("dpa-a"), harness.add_port("dpa-b")


# ------------------------------------------------------------------ tests


def test_dpif_set_masked_rewrites_only_masked_bits_with_valid_checksums(
        harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    all_cases = cases()
    for case in all_cases:
        dpif.flow_put(parse_packet(case.frame, a), EXACT, [case.action, Output(b)])
    failures: dict[str, object] = {}
    for case in all_cases:
        assert checksum_problems(case.frame) == [], case.name  # the inputs are valid
        want = set_masked(case.frame, case.action.field, case.action.value, case.action.mask)
        harness.send(a, case.frame)
        got = collect_many(harness, b, [want], timeout=1.0)
        if got != [want]:
            failures[case.name] = "expected rewrite did not come out"
            continue
        if (problems := checksum_problems(want)):
            failures[case.name] = problems
        key_in, key_out = parse_packet(case.frame, 0), parse_packet(want, 0)
        if key_out != expected_key(key_in, case.action, case.name not in NOT_APPLICABLE):
            failures[case.name] = ("wrong bits changed", key_in, key_out)
        if case.name not in NOT_APPLICABLE and want == case.frame:
            failures[case.name] = "nothing changed"
    assert failures == {}
    assert upcalls_for(dpif, all_cases[0].frame, timeout=0.1) == []


def test_dpif_set_masked_partial_mask_keeps_other_bits(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    frame = udp4(50)
    act = SetMasked("ip_src", bytes([0, 0, 0, 0x80]), bytes([0, 0, 0, 0xF0]))
    harness.dpif.flow_put(parse_packet(frame, a), EXACT, [act, Output(b)])
    harness.send(a, frame)
    want = set_masked(frame, act.field, act.value, act.mask)
    assert collect(harness, b, want) == 1
    assert parse_packet(want, 0).ip_src[:4] == bytes([10, 78, 0, 0x81])
    assert checksum_problems(want) == []


def test_dpif_several_sets_then_output(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    frame = tcp4(60)
    acts = [SetMasked.exact("eth_dst", bytes.fromhex("0200000000cc")),
            SetMasked.exact("ip_dst", IP4_X), SetMasked("nw_ttl", 63, 0xFF),
            SetMasked.exact("tp_dst", 8080), SetMasked("nw_tos", 0x20, 0xFC)]
    harness.dpif.flow_put(parse_packet(frame, a), EXACT, [*acts, Output(b)])
    want = frame
    for act in acts:
        want = set_masked(want, act.field, act.value, act.mask)
    harness.send(a, frame)
    assert collect(harness, b, want) == 1
    key = parse_packet(want, 0)
    assert (key.ip_dst[:4], key.nw_ttl, key.tp_dst, key.nw_tos) == (IP4_X, 63, 8080, 0x20)
    assert checksum_problems(want) == []


def test_dpif_output_before_set_sends_the_original(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    c = harness.add_port("dpa-c")
    frame = udp4(61)
    act = SetMasked.exact("ip_src", IP4_X)
    harness.dpif.flow_put(parse_packet(frame, a), EXACT, [Output(b), act, Output(c), Output(b)])
    harness.send(a, frame)
    changed = set_masked(frame, act.field, act.value, act.mask)
    assert sorted(collect_many(harness, b, [frame, changed])) == sorted([frame, changed])
    assert collect(harness, c, changed) == 1


def test_dpif_set_after_push_and_pop_vlan(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    untagged, tagged = udp4(62), udp4(63, vlan=20)
    act = SetMasked.exact("tp_src", 1111)
    dpif.flow_put(parse_packet(untagged, a), EXACT, [PushVlan(30), act, Output(b)])
    dpif.flow_put(parse_packet(tagged, a), EXACT, [PopVlan(), act, Output(b)])
    harness.send(a, untagged)
    want = set_masked(push_vlan(untagged, 30), act.field, act.value, act.mask)
    assert collect(harness, b, want) == 1
    assert parse_packet(want, 0).tp_src == 1111 and checksum_problems(want) == []
    harness.send(a, tagged)
    want = set_masked(udp4(63), act.field, act.value, act.mask)
    assert collect(harness, b, want) == 1


def test_dpif_userspace_after_set_carries_the_rewritten_packet(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    frame = udp4(64)
    act = SetMasked.exact("eth_src", bytes.fromhex("0200000000dd"))
    dpif.flow_put(parse_packet(frame, a), EXACT, [act, Userspace(7), Output(b)])
    harness.send(a, frame)
    want = set_masked(frame, act.field, act.value, act.mask)
    assert collect(harness, b, want) == 1
    got = upcalls_for(dpif, want)
    assert len(got) == 1 and got[0].cookie == 7


def test_dpif_execute_applies_set_masked(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    frame = tcp4(65)
    acts = [SetMasked.exact("ip_src", IP4_X), SetMasked.exact("tp_src", 5555)]
    harness.recv(b, timeout=0.0)
    harness.dpif.execute(frame, [*acts, Output(b)])
    want = frame
    for act in acts:
        want = set_masked(want, act.field, act.value, act.mask)
    assert collect(harness, b, want) == 1
    assert checksum_problems(want) == []


def test_dpif_set_masked_round_trips_through_flow_get(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    key = parse_packet(udp6(70), a)
    acts = (SetMasked("ip_src", IP6_X, FULL16), SetMasked.exact("ip_dst", IP4_X),
            SetMasked("nw_tos", 0x10, 0xFC), SetMasked.exact("tp_dst", 99),
            SetMasked.exact("eth_src", bytes(6)), SetMasked.exact("arp_sha", b"\x02" * 6),
            Output(b))
    dpif.flow_put(key, EXACT, acts)
    flow = dpif.flow_get(key, EXACT)
    assert flow is not None and flow.actions == acts
    assert flow.actions[1] == SetMasked("ip_dst", IP4_X + bytes(12), b"\xff" * 4 + bytes(12))
    assert format_actions(acts[1:4]) == (
        "set(ipv4(dst=192.168.7.9)),set(ipv4(tos=0x10/0xfc)),set(l4(dst=99))")


BAD_SETS = [
    SetMasked("vlan_tci", 1, 0xFFFF),  # not a settable field
    SetMasked("nw_ttl", 0x1FF, 0x1FF),  # wider than the field
    SetMasked("nw_ttl", 0x3F, 0x0F),  # value bits outside the mask
    SetMasked("tp_src", b"\x00\x50", b"\xff\xff"),  # bytes for an integer field
    SetMasked("eth_src", 5, 0xFF),  # integer for a bytes field
    SetMasked("eth_dst", bytes(5), b"\xff" * 5),  # wrong width
    SetMasked("ip_src", bytes(16), b"\xff" * 8),  # value and mask widths differ
    SetMasked("nw_tos", True, 0xFF),  # bool is no field value
]


@pytest.mark.parametrize("bad", BAD_SETS, ids=lambda b: f"{b.field}-{b.value!r}")
def test_dpif_bad_set_masked_is_einval_and_changes_nothing(
        harness: DatapathHarness, bad: SetMasked) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    key = parse_packet(udp4(80), a)
    with pytest.raises(DpifError) as exc:
        dpif.flow_put(key, EXACT, [bad, Output(b)])
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(DpifError) as exc:
        dpif.execute(udp4(80), [bad, Output(b)])
    assert exc.value.errno == errno.EINVAL
    assert dpif.flow_dump() == []


def test_dpif_too_many_set_actions_is_e2big(harness: DatapathHarness) -> None:
    a, b = two_ports(harness)
    dpif = harness.dpif
    key = parse_packet(udp4(81), a)
    sets = [SetMasked("nw_ttl", ttl, 0xFF) for ttl in range(MAX_SET_ACTIONS + 1)]
    with pytest.raises(DpifError) as exc:
        dpif.flow_put(key, EXACT, [*sets, Output(b)])
    assert exc.value.errno == errno.E2BIG
    assert dpif.flow_dump() == []
    dpif.flow_put(key, EXACT, [*sets[:MAX_SET_ACTIONS], Output(b)])
    assert len(dpif.flow_get(key, EXACT).actions) == MAX_SET_ACTIONS + 1


def test_set_field_widths_cover_flow_key_types() -> None:
    key = FlowKey()
    for field, width in SET_FIELD_WIDTHS.items():
        value = getattr(key, field)
        if field in SET_INT_FIELDS:
            assert isinstance(value, int)
        else:
            assert isinstance(value, bytes) and len(value) == width


# ------------------------------------------------------------------ real stacks (bpf only)


IP_RECVTTL, IP_TTL = 12, 2  # Linux; Python's socket module lacks IP_RECVTTL


def _peer_mac(port: object) -> str:
    from tests.dpif.harness_bpf import run

    out = run("ip", "-n", port.netns, "-o", "link", "show", port.peer)  # type: ignore[attr-defined]
    return out.split("link/ether ")[1].split()[0]


@pytest.mark.system
def test_bpf_rewrites_carry_kernel_tcp_and_udp_with_software_checksums() -> None:
    """Port NAT and TTL decrement between two network stacks that compute and
    verify every checksum in software (offloads off), so a checksum the
    datapath got wrong makes the receiving kernel drop the packet."""
    import socket

    from tests.dpif.harness_bpf import bpf_harness, in_netns, run

    with bpf_harness() as harness:
        a, b = harness.add_port("dpa-a"), harness.add_port("dpa-b")
        ports = {a: (harness.port(a), "10.80.0.1"), b: (harness.port(b), "10.80.0.2")}
        for port, ip in ports.values():
            run("ip", "-n", port.netns, "addr", "add", f"{ip}/24", "dev", port.peer)
            run("ip", "netns", "exec", port.netns, "ethtool", "-K", port.peer,
                "rx", "off", "tx", "off")
            run("ethtool", "-K", port.dev, "rx", "off", "tx", "off")
        (pa, ip_a), (pb, ip_b) = ports[a], ports[b]
        run("ip", "-n", pa.netns, "neigh", "replace", ip_b, "lladdr", _peer_mac(pb),
            "dev", pa.peer)
        run("ip", "-n", pb.netns, "neigh", "replace", ip_a, "lladdr", _peer_mac(pa),
            "dev", pb.peer)
        dpif = harness.dpif
        ip4 = FlowKey(in_port=0xFFFFFFFF, eth_type=0xFFFF, nw_proto=0xFF, nw_frag=0xFF)
        for proto in (6, 17):
            forward = FlowKey(in_port=a, eth_type=ETH_TYPE_IP, nw_proto=proto, nw_ttl=64,
                              tp_dst=8000)
            dpif.flow_put(forward, ip4.replace(nw_ttl=0xFF, tp_dst=0xFFFF),
                          [SetMasked("nw_ttl", 63, 0xFF), SetMasked.exact("tp_dst", 9000),
                           Output(b)])
            back = FlowKey(in_port=b, eth_type=ETH_TYPE_IP, nw_proto=proto, tp_src=9000)
            dpif.flow_put(back, ip4.replace(tp_src=0xFFFF),
                          [SetMasked.exact("tp_src", 8000), Output(a)])
        with in_netns(pb.netns):
            server = socket.create_server((ip_b, 9000))
            udp_server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp_server.bind((ip_b, 9000))
            udp_server.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            udp_server.settimeout(3)
        with in_netns(pa.netns):
            client = socket.create_connection((ip_b, 8000), timeout=3)
            udp_client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            server.settimeout(3)
            conn, peer = server.accept()
            conn.settimeout(3)
            assert peer[0] == ip_a
            payload = bytes(range(256)) * 400
            client.sendall(payload)
            received = b""
            while len(received) < len(payload):
                chunk = conn.recv(65536)
                assert chunk
                received += chunk
            assert received == payload
            conn.sendall(b"reply through tp_src rewrite")
            assert client.recv(100) == b"reply through tp_src rewrite"
            udp_client.sendto(b"datagram", (ip_b, 8000))
            data, ancdata, _, _ = udp_server.recvmsg(100, socket.CMSG_SPACE(4))
            assert data == b"datagram"
            ttl = next(int.from_bytes(d[:4], "little") for level, kind, d in ancdata
                       if level == socket.IPPROTO_IP and kind == IP_TTL)
            assert ttl == 63
            conn.close()
        finally:
            for sock in (client, server, udp_client, udp_server):
                sock.close()
        assert sum(f.stats.packets for f in dpif.flow_dump()) > 20
