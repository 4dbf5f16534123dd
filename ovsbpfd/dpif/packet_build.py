"""Small packet builders: Ethernet, ARP, IPv4/IPv6, UDP/TCP/ICMP.

Used by tests and by the daemon (e.g. gratuitous ARP, probes).  Addresses may
be given as strings (``"02:00:00:00:00:01"``, ``"10.0.0.1"``, ``"fd00::1"``)
or raw bytes.  Each layer returns bytes; checksums that need a pseudo-header
(TCP, UDP, ICMPv6) are filled in by ``ipv4``/``ipv6`` when the packet is not a
fragment, so a frame composed of these calls is valid on the wire.
"""

from __future__ import annotations

import ipaddress
import struct

from ovsbpfd.dpif.packet import (
    finish_checksums,
    internet_checksum,
    ipv4_header_checksum,
    l4_checksum,
    push_vlan,
)
from ovsbpfd.dpif.types import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    ETH_TYPE_VLAN,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
)

BROADCAST = b"\xff" * 6
Mac = bytes | str
Addr = bytes | str

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def mac(value: Mac) -> bytes:
    """6 raw bytes from ``aa:bb:cc:dd:ee:ff`` or bytes."""
    if isinstance(value, bytes):
        if len(value) != 6:
            raise ValueError(f"MAC address needs 6 bytes, got {len(value)}")
        return value
    raw = bytes.fromhex(value.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"bad MAC address {value!r}")
    return raw


def ip4(value: Addr) -> bytes:
    return value if isinstance(value, bytes) else ipaddress.IPv4Address(value).packed


def ip6(value: Addr) -> bytes:
    return value if isinstance(value, bytes) else ipaddress.IPv6Address(value).packed


def eth(
    dst: Mac,
    src: Mac,
    eth_type: int,
    payload: bytes = b"",
    vlan: int | None = None,
    tpid: int = ETH_TYPE_VLAN,
) -> bytes:
    """An Ethernet frame, tagged with TCI ``vlan`` when given (no padding)."""
    frame = mac(dst) + mac(src) + struct.pack("!H", eth_type) + payload
    return frame if vlan is None else push_vlan(frame, vlan, tpid)


# ----------------------------------------------------------------- ARP


def arp(op: int, sha: Mac, spa: Addr, tha: Mac, tpa: Addr) -> bytes:
    """An Ethernet/IPv4 ARP body (28 bytes)."""
    return struct.pack("!HHBBH", 1, ETH_TYPE_IP, 6, 4, op) + (
        mac(sha) + ip4(spa) + mac(tha) + ip4(tpa)
    )


def arp_request(
    src_mac: Mac, src_ip: Addr, dst_ip: Addr, vlan: int | None = None, dst_mac: Mac = BROADCAST
) -> bytes:
    """A "who has ``dst_ip``" frame, broadcast unless ``dst_mac`` says otherwise."""
    body = arp(1, src_mac, src_ip, bytes(6), dst_ip)
    return eth(dst_mac, src_mac, ETH_TYPE_ARP, body, vlan)


def arp_reply(
    src_mac: Mac, src_ip: Addr, dst_mac: Mac, dst_ip: Addr, vlan: int | None = None
) -> bytes:
    """A unicast "``src_ip`` is at ``src_mac``" frame."""
    body = arp(2, src_mac, src_ip, dst_mac, dst_ip)
    return eth(dst_mac, src_mac, ETH_TYPE_ARP, body, vlan)


# ----------------------------------------------------------------- IP


def ipv4(
    src: Addr,
    dst: Addr,
    proto: int,
    payload: bytes = b"",
    *,
    tos: int = 0,
    ttl: int = 64,
    ident: int = 0,
    dont_fragment: bool = False,
    more_fragments: bool = False,
    frag_offset: int = 0,
    options: bytes = b"",
) -> bytes:
    """An IPv4 packet; ``frag_offset`` is in 8-byte units."""
    if len(options) % 4:
        raise ValueError("IPv4 options must be a multiple of 4 bytes")
    src_b, dst_b = ip4(src), ip4(dst)
    ihl = 5 + len(options) // 4
    flags = (0x4000 if dont_fragment else 0) | (0x2000 if more_fragments else 0)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + len(payload), ident,
        flags | frag_offset, ttl, proto, 0, src_b, dst_b,
    ) + options
    header = header[:10] + struct.pack("!H", ipv4_header_checksum(header)) + header[12:]
    if not more_fragments and not frag_offset:
        payload = _with_l4_checksum(src_b, dst_b, proto, payload)
    return header + payload


def ipv6(
    src: Addr,
    dst: Addr,
    next_header: int,
    payload: bytes = b"",
    *,
    tclass: int = 0,
    hop_limit: int = 64,
    flow_label: int = 0,
) -> bytes:
    """An IPv6 packet; ``payload`` may start with extension headers.

    The TCP/UDP/ICMPv6 checksum is filled in behind hop-by-hop, destination
    options and atomic-fragment headers (not behind routing headers or in
    fragments), by the same code that completes checksums in the datapath.
    """
    src_b, dst_b = ip6(src), ip6(dst)
    first = (6 << 28) | ((tclass & 0xFF) << 20) | (flow_label & 0xFFFFF)
    header = struct.pack("!IHBB", first, len(payload), next_header, hop_limit) + src_b + dst_b
    ethernet = bytes(12) + struct.pack("!H", ETH_TYPE_IPV6)
    return finish_checksums(ethernet + header + payload)[len(ethernet):]


def ipv6_fragment_header(
    next_header: int, offset: int = 0, more: bool = False, ident: int = 0
) -> bytes:
    """An IPv6 fragment extension header (``offset`` in 8-byte units)."""
    return struct.pack("!BBHI", next_header, 0, (offset << 3) | int(more), ident)


def ipv6_options_header(next_header: int, length_units: int = 0) -> bytes:
    """A hop-by-hop or destination-options header of (length_units+1)*8 bytes of padding."""
    body_len = (length_units + 1) * 8 - 2
    padn = bytes([1, body_len - 2]) + bytes(body_len - 2)
    return bytes([next_header, length_units]) + padn



def _with_l4_checksum(src: bytes, dst: bytes, proto: int, payload: bytes) -> bytes:
    minimum = {IPPROTO_TCP: 20, IPPROTO_UDP: 8, IPPROTO_ICMPV6: 4}.get(proto)
    if minimum is None or len(payload) < minimum:
        return payload
    csum_at = {IPPROTO_TCP: 16, IPPROTO_UDP: 6, IPPROTO_ICMPV6: 2}[proto]
    csum = l4_checksum(src, dst, proto, payload)
    return payload[:csum_at] + struct.pack("!H", csum) + payload[csum_at + 2:]


# ----------------------------------------------------------------- L4


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    """A UDP datagram; its checksum is filled in by ``ipv4``/``ipv6``."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(
    sport: int,
    dport: int,
    payload: bytes = b"",
    *,
    flags: int = TCP_SYN,
    seq: int = 0,
    ack: int = 0,
    window: int = 65535,
) -> bytes:
    """A TCP segment without options; its checksum is filled in by ``ipv4``/``ipv6``."""
    return struct.pack(
        "!HHIIHHHH", sport, dport, seq, ack, (5 << 12) | (flags & 0x0FFF), window, 0, 0
    ) + payload


def icmp_echo(ident: int = 0, seq: int = 0, payload: bytes = b"", reply: bool = False) -> bytes:
    """An ICMPv4 echo request (type 8) or reply (type 0), checksummed."""
    body = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq) + payload
    return body[:2] + struct.pack("!H", internet_checksum(body)) + body[4:]


def icmp(icmp_type: int, code: int, rest: bytes = bytes(4)) -> bytes:
    """Any ICMPv4 message, checksummed."""
    body = struct.pack("!BBH", icmp_type, code, 0) + rest
    return body[:2] + struct.pack("!H", internet_checksum(body)) + body[4:]


def icmpv6(icmp_type: int, code: int, rest: bytes = bytes(4)) -> bytes:
    """An ICMPv6 message; its checksum is filled in by ``ipv6``."""
    return struct.pack("!BBH", icmp_type, code, 0) + rest


def icmpv6_echo(ident: int = 0, seq: int = 0, payload: bytes = b"", reply: bool = False) -> bytes:
    return icmpv6(129 if reply else 128, 0, struct.pack("!HH", ident, seq) + payload)


# ----------------------------------------------------------------- whole frames


def udp_frame(
    src_mac: Mac, dst_mac: Mac, src_ip: Addr, dst_ip: Addr, sport: int, dport: int,
    payload: bytes = b"", vlan: int | None = None,
) -> bytes:
    """Ethernet + IPv4 + UDP in one call, the frame most tests want."""
    body = ipv4(src_ip, dst_ip, IPPROTO_UDP, udp(sport, dport, payload))
    return eth(dst_mac, src_mac, ETH_TYPE_IP, body, vlan)


def tcp_frame(
    src_mac: Mac, dst_mac: Mac, src_ip: Addr, dst_ip: Addr, sport: int, dport: int,
    payload: bytes = b"", flags: int = TCP_SYN, vlan: int | None = None,
) -> bytes:
    body = ipv4(src_ip, dst_ip, IPPROTO_TCP, tcp(sport, dport, payload, flags=flags))
    return eth(dst_mac, src_mac, ETH_TYPE_IP, body, vlan)


def icmp_frame(
    src_mac: Mac, dst_mac: Mac, src_ip: Addr, dst_ip: Addr, seq: int = 1,
    vlan: int | None = None,
) -> bytes:
    body = ipv4(src_ip, dst_ip, IPPROTO_ICMP, icmp_echo(1, seq, b"ping"))
    return eth(dst_mac, src_mac, ETH_TYPE_IP, body, vlan)

