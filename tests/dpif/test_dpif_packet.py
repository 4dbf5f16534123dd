"""The reference parser, checksum completion and VLAN helpers (ovsbpfd.dpif.packet).

Expected values are written out by hand from the header layouts; checksums
are checked against fixed vectors and against tcpdump's own verification.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from ovsbpfd.dpif.packet import (
    IPV6_EXT_HEADERS,
    finish_checksums,
    internet_checksum,
    parse_packet,
    pop_vlan,
    push_vlan,
    tcp_flags,
)
from ovsbpfd.dpif.packet_build import (
    TCP_ACK,
    TCP_PSH,
    TCP_SYN,
    arp,
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
    mac,
    tcp,
    tcp_frame,
    udp,
    udp_frame,
)
from ovsbpfd.dpif.types import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    ETH_TYPE_VLAN,
    ETH_TYPE_VLAN_8021AD,
    FRAG_FIRST,
    FRAG_LATER,
    FRAG_NONE,
    FlowKey,
)

A, B = "02:0a:00:00:00:01", "02:0a:00:00:00:02"
A_RAW, B_RAW = bytes.fromhex("020a00000001"), bytes.fromhex("020a00000002")
IP_A, IP_B = "10.9.0.1", "10.9.0.2"
IP_A_KEY, IP_B_KEY = bytes([10, 9, 0, 1]) + bytes(12), bytes([10, 9, 0, 2]) + bytes(12)
IP6_A, IP6_B = "fd0a::1", "fd0a::2"
IP6_A_RAW = bytes.fromhex("fd0a" + "00" * 13 + "01")
IP6_B_RAW = bytes.fromhex("fd0a" + "00" * 13 + "02")


def v6(next_header: int, payload: bytes, **kw: int) -> bytes:
    return eth(B, A, ETH_TYPE_IPV6, ipv6(IP6_A, IP6_B, next_header, payload, **kw))


def v4(proto: int, payload: bytes, **kw: object) -> bytes:
    return eth(B, A, ETH_TYPE_IP, ipv4(IP_A, IP_B, proto, payload, **kw))  # type: ignore[arg-type]


# ------------------------------------------------------------------ parsing


def test_dpif_parse_ipv4_udp_fields() -> None:
    frame = eth(B, A, ETH_TYPE_IP, ipv4(IP_A, IP_B, 17, udp(1234, 53, b"q"), tos=0xB9, ttl=7))
    assert parse_packet(frame, 4) == FlowKey(
        in_port=4, eth_type=0x0800, eth_src=A_RAW, eth_dst=B_RAW, nw_proto=17, nw_tos=0xB9,
        nw_ttl=7, nw_frag=FRAG_NONE, ip_src=IP_A_KEY, ip_dst=IP_B_KEY, tp_src=1234, tp_dst=53)


def test_dpif_parse_ipv4_tcp_and_icmp() -> None:
    key = parse_packet(tcp_frame(A, B, IP_A, IP_B, 40000, 443), 1)
    assert (key.nw_proto, key.tp_src, key.tp_dst) == (6, 40000, 443)
    key = parse_packet(icmp_frame(A, B, IP_A, IP_B), 1)
    assert (key.nw_proto, key.tp_src, key.tp_dst) == (1, 8, 0)
    unreachable = v4(1, bytes([3, 13, 0, 0, 0, 0, 0, 0]))
    assert parse_packet(unreachable, 1).tp_src == 3
    assert parse_packet(unreachable, 1).tp_dst == 13


def test_dpif_parse_ipv4_options_are_skipped() -> None:
    key = parse_packet(v4(17, udp(5, 6), options=b"\x01\x01\x01\x00" * 2), 1)
    assert (key.tp_src, key.tp_dst) == (5, 6)


def test_dpif_parse_sctp_ports() -> None:
    key = parse_packet(v4(132, struct.pack("!HHI", 2905, 2906, 0) + bytes(4)), 1)
    assert (key.nw_proto, key.tp_src, key.tp_dst) == (132, 2905, 2906)


def test_dpif_parse_ipv4_fragments() -> None:
    first = parse_packet(v4(17, udp(1, 2, b"x" * 8), more_fragments=True), 1)
    assert (first.nw_frag, first.tp_src, first.tp_dst) == (FRAG_FIRST, 1, 2)
    later = parse_packet(v4(17, udp(1, 2, b"x" * 8), frag_offset=2, more_fragments=True), 1)
    assert (later.nw_frag, later.nw_proto, later.tp_src, later.tp_dst) == (FRAG_LATER, 17, 0, 0)
    last = parse_packet(v4(17, udp(1, 2, b"x" * 8), frag_offset=2), 1)
    assert last.nw_frag == FRAG_LATER
    df_only = parse_packet(v4(17, udp(1, 2), dont_fragment=True), 1)
    assert df_only.nw_frag == FRAG_NONE


def test_dpif_parse_arp() -> None:
    key = parse_packet(arp_request(A, IP_A, IP_B), 2)
    assert key == FlowKey(
        in_port=2, eth_type=ETH_TYPE_ARP, eth_src=A_RAW, eth_dst=b"\xff" * 6, nw_proto=1,
        ip_src=IP_A_KEY, ip_dst=IP_B_KEY, arp_sha=A_RAW, arp_tha=bytes(6))
    key = parse_packet(arp_reply(B, IP_B, A, IP_A), 2)
    assert (key.nw_proto, key.arp_sha, key.arp_tha, key.ip_src) == (2, B_RAW, A_RAW, IP_B_KEY)


def test_dpif_parse_arp_opcode_low_byte_and_non_ethernet_arp() -> None:
    high = eth(B, A, ETH_TYPE_ARP, arp(0x0103, A, IP_A, B, IP_B))
    assert parse_packet(high, 1).nw_proto == 0x03
    not_ipv4 = bytearray(eth(B, A, ETH_TYPE_ARP, arp(1, A, IP_A, B, IP_B)))
    not_ipv4[16:18] = b"\x86\xdd"  # ptype IPv6
    key = parse_packet(bytes(not_ipv4), 1)
    assert key == FlowKey(in_port=1, eth_type=ETH_TYPE_ARP, eth_src=A_RAW, eth_dst=B_RAW)


def test_dpif_parse_ipv6_fields() -> None:
    key = parse_packet(v6(17, udp(1111, 2222), tclass=0xA5, hop_limit=3, flow_label=0xFFFFF), 9)
    assert key == FlowKey(
        in_port=9, eth_type=ETH_TYPE_IPV6, eth_src=A_RAW, eth_dst=B_RAW, nw_proto=17,
        nw_tos=0xA5, nw_ttl=3, ip_src=IP6_A_RAW, ip_dst=IP6_B_RAW, tp_src=1111, tp_dst=2222)
    icmp6 = parse_packet(v6(58, icmpv6_echo(1, 1)), 1)
    assert (icmp6.nw_proto, icmp6.tp_src, icmp6.tp_dst) == (58, 128, 0)


def test_dpif_parse_ipv6_skips_extension_headers() -> None:
    chain = ipv6_options_header(43, 1) + bytes([60, 0, 0, 0, 0, 0, 0, 0])  # hop-by-hop, routing
    chain += ipv6_options_header(6) + tcp(80, 8080)
    key = parse_packet(v6(0, chain), 1)
    assert (key.nw_proto, key.nw_frag, key.tp_src, key.tp_dst) == (6, FRAG_NONE, 80, 8080)


def test_dpif_parse_ipv6_fragments() -> None:
    first = parse_packet(v6(44, ipv6_fragment_header(17, 0, more=True) + udp(7, 8, b"abcd")), 1)
    assert (first.nw_proto, first.nw_frag, first.tp_src, first.tp_dst) == (17, FRAG_FIRST, 7, 8)
    later = parse_packet(v6(44, ipv6_fragment_header(17, 5) + udp(7, 8)), 1)
    assert (later.nw_proto, later.nw_frag, later.tp_src, later.tp_dst) == (17, FRAG_LATER, 0, 0)
    whole = parse_packet(v6(44, ipv6_fragment_header(17, 0, more=False) + udp(7, 8)), 1)
    assert (whole.nw_frag, whole.tp_src) == (FRAG_NONE, 7)


def test_dpif_parse_ipv6_extension_chain_is_bounded() -> None:
    chain = b"".join(ipv6_options_header(60) for _ in range(7)) + udp(1, 2)
    key = parse_packet(v6(60, chain), 1)
    assert (key.nw_proto, key.tp_src) == (60, 0)  # gave up while still in extension headers
    truncated = parse_packet(v6(0, bytes([17, 4]) + bytes(6)), 1)  # claims 40 bytes, has 8
    assert (truncated.nw_proto, truncated.ip_src, truncated.tp_src) == (0, IP6_A_RAW, 0)


def test_dpif_parse_vlan_tags() -> None:
    inner = udp_frame(A, B, IP_A, IP_B, 1, 2)
    key = parse_packet(push_vlan(inner, (6 << 13) | 0x1000 | 300), 1)
    assert (key.vlan_tci, key.eth_type, key.tp_dst) == ((6 << 13) | 0x1000 | 300, ETH_TYPE_IP, 2)
    ad = parse_packet(push_vlan(inner, 10, ETH_TYPE_VLAN_8021AD), 1)
    assert (ad.vlan_tci, ad.eth_type, ad.nw_proto) == (0x1000 | 10, ETH_TYPE_IP, 17)
    double = parse_packet(push_vlan(push_vlan(inner, 20), 10, ETH_TYPE_VLAN_8021AD), 1)
    assert double == FlowKey(in_port=1, vlan_tci=0x1000 | 10, eth_type=ETH_TYPE_VLAN,
                             eth_src=A_RAW, eth_dst=B_RAW)
    vid0 = parse_packet(push_vlan(inner, 0), 1)
    assert vid0.vlan_tci == 0x1000  # a priority tag is still a tag
    cut = parse_packet(push_vlan(inner, 10)[:16], 1)
    assert (cut.vlan_tci, cut.eth_type) == (0, ETH_TYPE_VLAN)


def test_dpif_parse_short_and_odd_frames() -> None:
    assert parse_packet(b"", 3) == FlowKey(in_port=3)
    assert parse_packet(b"\x02" * 13, 3) == FlowKey(in_port=3)
    llc = parse_packet(eth(B, A, 0x0026, b"\x42\x42\x03" + bytes(40)), 1)
    assert (llc.eth_type, llc.nw_proto) == (0x0026, 0)
    bad_version = bytearray(udp_frame(A, B, IP_A, IP_B, 1, 2))
    bad_version[14] = 0x65
    assert parse_packet(bytes(bad_version), 1).ip_src == bytes(16)
    short_ihl = bytearray(udp_frame(A, B, IP_A, IP_B, 1, 2))
    short_ihl[14] = 0x44
    assert parse_packet(bytes(short_ihl), 1).nw_proto == 0
    assert parse_packet(v4(6, tcp(1, 2)[:19]), 1).tp_src == 0  # TCP needs 20 bytes
    assert parse_packet(v4(17, udp(1, 2)[:7]), 1).tp_src == 0
    assert parse_packet(v4(17, udp(1, 2)), 1).tp_src == 1
    padded = udp_frame(A, B, IP_A, IP_B, 1, 2).ljust(60, b"\0")
    assert parse_packet(padded, 1) == parse_packet(udp_frame(A, B, IP_A, IP_B, 1, 2), 1)


def sample_frames() -> list[bytes]:
    return [
        udp_frame(A, B, IP_A, IP_B, 1, 2, b"hello"),
        tcp_frame(A, B, IP_A, IP_B, 3, 4, b"x", vlan=5),
        icmp_frame(A, B, IP_A, IP_B),
        arp_request(A, IP_A, IP_B),
        v6(0, ipv6_options_header(44) + ipv6_fragment_header(6, 0, True) + tcp(9, 10)),
        v6(58, icmpv6_echo(1, 2, b"z")),
        v4(17, udp(1, 2), options=b"\x01" * 8, more_fragments=True),
        push_vlan(arp_reply(B, IP_B, A, IP_A), 7, ETH_TYPE_VLAN_8021AD),
    ]


def test_dpif_parse_every_prefix_is_a_consistent_partial_key() -> None:
    """Truncation never raises, and yields each field either right or unset."""
    empty = FlowKey()
    for frame in sample_frames():
        full = parse_packet(frame, 5)
        for cut in range(len(frame) + 1):
            partial = parse_packet(frame[:cut], 5)
            for name in full.__dataclass_fields__:
                value = getattr(partial, name)
                if name == "eth_type" and value in (ETH_TYPE_VLAN, ETH_TYPE_VLAN_8021AD):
                    continue  # a cut tag leaves the TPID as the type
                if name == "nw_proto" and value in IPV6_EXT_HEADERS:
                    continue  # an IPv6 walk stopped at a cut extension header
                assert value in (getattr(full, name), getattr(empty, name)), (cut, name)


def test_dpif_parse_random_garbage_never_raises() -> None:
    rng = random.Random(20240601)
    frames = sample_frames()
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(80)))
        else:
            data = bytearray(rng.choice(frames))
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data[: rng.randrange(len(data) + 1)])
        key = parse_packet(data, 1)
        assert FlowKey.unpack(key.pack()) == key
        finish_checksums(data)
        tcp_flags(data)
        pop_vlan(data)


def test_dpif_tcp_flags_of_frames() -> None:
    assert tcp_flags(tcp_frame(A, B, IP_A, IP_B, 1, 2, flags=TCP_SYN | TCP_ACK)) == 0x12
    assert tcp_flags(tcp_frame(A, B, IP_A, IP_B, 1, 2, flags=TCP_PSH, vlan=3)) == TCP_PSH
    assert tcp_flags(udp_frame(A, B, IP_A, IP_B, 1, 2)) == 0
    assert tcp_flags(v4(6, tcp(1, 2, flags=TCP_SYN), frag_offset=8)) == 0


# ------------------------------------------------------------------ checksums


def test_dpif_internet_checksum_known_vectors() -> None:
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert internet_checksum(header) == 0xB861
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D  # RFC 1071 example


def corrupt_at(frame: bytes, offset: int, value: bytes = b"\x12\x34") -> bytes:
    return frame[:offset] + value + frame[offset + 2:]


def checksummed_frames() -> dict[str, tuple[bytes, int]]:
    """Valid frames and the offset of the checksum finish_checksums must restore."""
    return {
        "ipv4_header": (udp_frame(A, B, IP_A, IP_B, 1, 2, b"abc"), 14 + 10),
        "ipv4_udp": (udp_frame(A, B, IP_A, IP_B, 1, 2, b"abc"), 14 + 20 + 6),
        "ipv4_tcp": (tcp_frame(A, B, IP_A, IP_B, 1, 2, b"abcd"), 14 + 20 + 16),
        "vlan_ipv4_tcp": (tcp_frame(A, B, IP_A, IP_B, 1, 2, b"odd", vlan=9), 18 + 20 + 16),
        "ipv6_udp": (v6(17, udp(1, 2, b"x")), 14 + 40 + 6),
        "ipv6_tcp": (v6(6, tcp(1, 2, b"xy")), 14 + 40 + 16),
        "ipv6_icmpv6": (v6(58, icmpv6_echo(1, 2, b"ping")), 14 + 40 + 2),
        "ipv6_hbh_udp": (v6(0, ipv6_options_header(17) + udp(1, 2, b"q")), 14 + 48 + 6),
    }


@pytest.mark.parametrize("name", sorted(checksummed_frames()))
def test_dpif_finish_checksums_restores_corrupted_checksum(name: str) -> None:
    frame, offset = checksummed_frames()[name]
    assert finish_checksums(frame) == frame
    assert finish_checksums(corrupt_at(frame, offset)) == frame


def test_dpif_finish_checksums_completes_partial_pseudo_header_sum() -> None:
    """A CHECKSUM_PARTIAL skb carries only the folded pseudo-header sum."""
    frame = tcp_frame(A, B, IP_A, IP_B, 40000, 80, b"partial")
    tcp_len = len(frame) - 34
    pseudo = sum(struct.unpack("!4H", frame[26:34])) + 6 + tcp_len
    while pseudo >> 16:
        pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
    partial = corrupt_at(frame, 34 + 16, pseudo.to_bytes(2, "big"))
    assert partial != frame
    assert finish_checksums(partial) == frame


def test_dpif_finish_checksums_udp_zero_rules() -> None:
    frame = udp_frame(A, B, IP_A, IP_B, 1, 2, b"abc")
    no_checksum = corrupt_at(frame, 40, b"\x00\x00")
    assert finish_checksums(no_checksum) == no_checksum  # IPv4: 0 means "none"
    six = v6(17, udp(1, 2, b"x"))
    assert finish_checksums(corrupt_at(six, 60, b"\x00\x00")) == six  # IPv6: mandatory
    # A datagram whose sum comes out 0 is sent as 0xffff.
    for sport in range(65536):
        candidate = udp_frame(A, B, IP_A, IP_B, sport, 2, b"abc")
        if candidate[40:42] == b"\xff\xff":
            assert finish_checksums(corrupt_at(candidate, 40))[40:42] == b"\xff\xff"
            break
    else:
        pytest.fail("no UDP source port gave a zero checksum")


def test_dpif_finish_checksums_leaves_what_it_cannot_finish() -> None:
    frag = corrupt_at(v4(17, udp(1, 2, b"abcdefgh"), more_fragments=True), 40)
    finished = finish_checksums(frag)
    assert finished[40:42] == b"\x12\x34"  # L4 of a fragment untouched
    assert internet_checksum(finished[14:34]) == 0  # but the IP header fixed
    cut = corrupt_at(udp_frame(A, B, IP_A, IP_B, 1, 2, b"abcdef"), 40)[:-2]
    assert finish_checksums(cut) == cut  # IP length runs past the frame
    routed = v6(43, bytes([17, 0, 0, 0, 0, 0, 0, 0]) + udp(1, 2, b"r"))
    assert finish_checksums(corrupt_at(routed, 62 + 6))[68:70] == b"\x12\x34"
    arp_frame = arp_request(A, IP_A, IP_B)
    assert finish_checksums(arp_frame) == arp_frame
    assert finish_checksums(b"\x01\x02") == b"\x01\x02"


def write_pcap(path: Path, frames: list[bytes]) -> None:
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for frame in frames:
            out.write(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_dpif_builders_and_finish_checksums_satisfy_tcpdump(tmp_path: Path) -> None:
    good = [frame for frame, _ in checksummed_frames().values()]
    good += [icmp_frame(A, B, IP_A, IP_B), v4(1, icmp_echo(3, 4, b"x" * 33))]
    repaired = [finish_checksums(corrupt_at(f, off)) for f, off in checksummed_frames().values()]
    broken = corrupt_at(udp_frame(A, B, IP_A, IP_B, 1, 2, b"abc"), 40)
    pcap = tmp_path / "frames.pcap"
    write_pcap(pcap, good + repaired + [broken])
    text = subprocess.run(["tcpdump", "-vvv", "-n", "-r", str(pcap)], capture_output=True,
                          text=True, check=True, timeout=30).stdout
    verdicts = [line for line in text.splitlines() if "sum" in line or "cksum" in line]
    bad = [line for line in verdicts if "bad" in line or "incorrect" in line or "wrong" in line]
    assert len(bad) == 1 and "bad udp cksum" in bad[0]  # only the one we broke on purpose
    ok_count = sum(("sum ok" in line) or ("(correct)" in line) for line in verdicts)
    assert ok_count == 2 * len(checksummed_frames())  # every frame, good and repaired


# ------------------------------------------------------------------ VLAN and builders


def test_dpif_push_and_pop_vlan_bytes() -> None:
    frame = udp_frame(A, B, IP_A, IP_B, 1, 2)
    tagged = push_vlan(frame, 0xA00B)
    assert tagged[12:16] == bytes.fromhex("8100a00b") and len(tagged) == len(frame) + 4
    assert push_vlan(frame, 5, ETH_TYPE_VLAN_8021AD)[12:16] == bytes.fromhex("88a80005")
    assert pop_vlan(tagged) == frame
    assert pop_vlan(frame) == frame
    assert pop_vlan(pop_vlan(push_vlan(tagged, 1, ETH_TYPE_VLAN_8021AD))) == frame
    assert push_vlan(b"\x00" * 10, 1) == b"\x00" * 10
    assert pop_vlan(tagged[:17]) == tagged[:17]


def test_dpif_builders_lay_out_headers() -> None:
    assert mac("02:0A:00:00:00:01") == A_RAW
    with pytest.raises(ValueError):
        mac("02:0a:00")
    request = arp_request(A, IP_A, IP_B)
    assert len(request) == 42 and request[:6] == b"\xff" * 6
    packet = ipv4(IP_A, IP_B, 17, b"", ident=7, ttl=9, tos=4, dont_fragment=True)
    assert packet == bytes.fromhex("45040014000740000911") + packet[10:12] + bytes(
        [10, 9, 0, 1, 10, 9, 0, 2])
    assert internet_checksum(packet) == 0
    six = ipv6(IP6_A, IP6_B, 59, b"", tclass=0xFF, flow_label=1, hop_limit=2)
    assert six[:8] == bytes.fromhex("6ff00001" "0000" "3b02")
    with pytest.raises(ValueError):
        ipv4(IP_A, IP_B, 17, b"", options=b"\x01")
