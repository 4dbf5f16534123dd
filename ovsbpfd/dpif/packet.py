"""Packet bytes -> ``FlowKey``, checksum completion, VLAN push/pop.

This is the Python twin of the BPF program's parser: the dummy datapath
uses it on every packet, the bpf provider's conformance tests compare the
BPF program's keys against it, and ofproto uses it on packet-outs.  So it
follows exactly the conventions written in ``types.py``, plus these rules,
which the C parser (``bpf/``) must share:

* Frames shorter than 14 bytes give a key with only ``in_port`` set.
* One 802.1Q (0x8100) or 802.1ad (0x88a8) tag is parsed: ``vlan_tci`` =
  TCI | VLAN_TAG_PRESENT and ``eth_type`` = the type after the tag.  A second
  tag is not parsed (``eth_type`` is then that tag's TPID and nothing more is
  read).  A truncated tag leaves ``vlan_tci`` 0 and ``eth_type`` the TPID.
  Ethertypes below 0x600 (802.3 length fields) are kept as they are.
* ARP fields are filled only for Ethernet/IPv4 ARP (htype 1, ptype 0x0800,
  hlen 6, plen 4) with all 28 bytes present.
* IPv4 needs version 4, IHL >= 5 and the whole IHL*4 header in the frame;
  otherwise no L3 field is set.  The header's total-length field is not used:
  the frame end bounds everything.
* IPv6 needs version 6 and the 40-byte header.  Up to
  ``IPV6_MAX_EXT_HEADERS`` hop-by-hop/routing/destination-options/fragment
  headers are skipped; ``nw_proto`` is the next-header value where that walk
  stopped (also when it stopped at an extension header it could not read or
  did not skip), and L4 is parsed only when it stopped at a real protocol.
* L4 fields need the whole fixed header in the frame: TCP 20 bytes, UDP 8,
  SCTP 12, ICMP/ICMPv6 4.  Later fragments (``FRAG_LATER``) have no L4.

Nothing here raises on bad input: a malformed packet parses as far as it is
valid.
"""

from __future__ import annotations

import struct

from ovsbpfd.dpif.types import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    ETH_TYPE_VLAN,
    ETH_TYPE_VLAN_8021AD,
    FRAG_FIRST,
    FRAG_LATER,
    FRAG_NONE,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    VLAN_TAG_PRESENT,
    FlowKey,
)

IPPROTO_SCTP = 132
IPPROTO_HOPOPTS = 0
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_DSTOPTS = 60
IPV6_EXT_HEADERS = frozenset({IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS})
IPV6_MAX_EXT_HEADERS = 6  # a fixed bound, as the BPF verifier needs one

VLAN_TPIDS = frozenset({ETH_TYPE_VLAN, ETH_TYPE_VLAN_8021AD})
ETH_HEADER_LEN = 14
VLAN_HEADER_LEN = 4
_L4_MIN_LEN = {
    IPPROTO_TCP: 20, IPPROTO_UDP: 8, IPPROTO_SCTP: 12, IPPROTO_ICMP: 4, IPPROTO_ICMPV6: 4,
}
_PORT_PROTOCOLS = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP})


# ----------------------------------------------------------------- parsing


def _l2(frame: bytes) -> tuple[int, int, int]:
    """(vlan_tci for the key, eth_type for the key, offset of L3 or -1)."""
    eth_type = int.from_bytes(frame[12:14], "big")
    if eth_type not in VLAN_TPIDS:
        return 0, eth_type, ETH_HEADER_LEN
    if len(frame) < ETH_HEADER_LEN + VLAN_HEADER_LEN:
        return 0, eth_type, -1
    tci = int.from_bytes(frame[14:16], "big")
    inner = int.from_bytes(frame[16:18], "big")
    if inner in VLAN_TPIDS:
        return tci | VLAN_TAG_PRESENT, inner, -1
    return tci | VLAN_TAG_PRESENT, inner, ETH_HEADER_LEN + VLAN_HEADER_LEN


def _arp_fields(frame: bytes, off: int) -> dict[str, object]:
    arp = frame[off:off + 28]
    if len(arp) < 28:
        return {}
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", arp)
    if (htype, ptype, hlen, plen) != (1, ETH_TYPE_IP, 6, 4):
        return {}
    return {
        "nw_proto": op & 0xFF,
        "arp_sha": arp[8:14],
        "ip_src": arp[14:18] + bytes(12),
        "arp_tha": arp[18:24],
        "ip_dst": arp[24:28] + bytes(12),
    }


def _l4_fields(frame: bytes, off: int, proto: int) -> dict[str, object]:
    need = _L4_MIN_LEN.get(proto)
    if need is None or len(frame) - off < need:
        return {}
    if proto in _PORT_PROTOCOLS:
        src, dst = struct.unpack_from("!HH", frame, off)
        return {"tp_src": src, "tp_dst": dst}
    return {"tp_src": frame[off], "tp_dst": frame[off + 1]}


def _ipv4_fields(frame: bytes, off: int) -> dict[str, object]:
    if len(frame) - off < 20:
        return {}
    ver_ihl = frame[off]
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20 or len(frame) - off < ihl:
        return {}
    tos, frag_field, ttl, proto = frame[off + 1], int.from_bytes(
        frame[off + 6:off + 8], "big"), frame[off + 8], frame[off + 9]
    offset, more = frag_field & 0x1FFF, bool(frag_field & 0x2000)
    nw_frag = FRAG_LATER if offset else FRAG_FIRST if more else FRAG_NONE
    fields: dict[str, object] = {
        "nw_tos": tos,
        "nw_ttl": ttl,
        "nw_proto": proto,
        "nw_frag": nw_frag,
        "ip_src": frame[off + 12:off + 16] + bytes(12),
        "ip_dst": frame[off + 16:off + 20] + bytes(12),
    }
    if nw_frag != FRAG_LATER:
        fields.update(_l4_fields(frame, off + ihl, proto))
    return fields


def _ipv6_walk(frame: bytes, off: int, next_header: int) -> tuple[int, int, int]:
    """Skip extension headers: (final next header, its offset or -1, nw_frag)."""
    nw_frag = FRAG_NONE
    for _ in range(IPV6_MAX_EXT_HEADERS):
        if next_header not in IPV6_EXT_HEADERS:
            return next_header, off, nw_frag
        if len(frame) - off < 8:
            return next_header, -1, nw_frag
        following = frame[off]
        if next_header == IPPROTO_FRAGMENT:
            frag_field = int.from_bytes(frame[off + 2:off + 4], "big")
            if frag_field & 0xFFF8:
                return following, -1, FRAG_LATER
            nw_frag = FRAG_FIRST if frag_field & 1 else FRAG_NONE
            length = 8
        else:
            length = (frame[off + 1] + 1) * 8
            if len(frame) - off < length:
                return next_header, -1, nw_frag
        next_header, off = following, off + length
    if next_header in IPV6_EXT_HEADERS:
        return next_header, -1, nw_frag
    return next_header, off, nw_frag


def _ipv6_fields(frame: bytes, off: int) -> dict[str, object]:
    if len(frame) - off < 40 or frame[off] >> 4 != 6:
        return {}
    first_word = int.from_bytes(frame[off:off + 4], "big")
    proto, l4_off, nw_frag = _ipv6_walk(frame, off + 40, frame[off + 6])
    fields: dict[str, object] = {
        "nw_tos": (first_word >> 20) & 0xFF,
        "nw_ttl": frame[off + 7],
        "nw_proto": proto,
        "nw_frag": nw_frag,
        "ip_src": frame[off + 8:off + 24],
        "ip_dst": frame[off + 24:off + 40],
    }
    if l4_off >= 0:
        fields.update(_l4_fields(frame, l4_off, proto))
    return fields


def parse_packet(frame: bytes, in_port: int) -> FlowKey:
    """The flow key of ``frame`` received on datapath port ``in_port``."""
    frame = bytes(frame)
    if len(frame) < ETH_HEADER_LEN:
        return FlowKey(in_port=in_port)
    vlan_tci, eth_type, off = _l2(frame)
    fields: dict[str, object] = {}
    if off >= 0:
        if eth_type == ETH_TYPE_ARP:
            fields = _arp_fields(frame, off)
        elif eth_type == ETH_TYPE_IP:
            fields = _ipv4_fields(frame, off)
        elif eth_type == ETH_TYPE_IPV6:
            fields = _ipv6_fields(frame, off)
    return FlowKey(
        in_port=in_port,
        vlan_tci=vlan_tci,
        eth_type=eth_type,
        eth_dst=frame[0:6],
        eth_src=frame[6:12],
        **fields,  # type: ignore[arg-type]
    )


def tcp_flags(frame: bytes) -> int:
    """The 12 TCP flag bits of a TCP frame (0 for anything else), for flow stats."""
    frame = bytes(frame)
    if len(frame) < ETH_HEADER_LEN:
        return 0
    _, eth_type, off = _l2(frame)
    if off < 0:
        return 0
    l4 = _l4_offset(frame, eth_type, off)
    if l4 is None or l4[0] != IPPROTO_TCP or len(frame) - l4[1] < 20:
        return 0
    return int.from_bytes(frame[l4[1] + 12:l4[1] + 14], "big") & 0x0FFF


def _l4_offset(frame: bytes, eth_type: int, off: int) -> tuple[int, int] | None:
    """(protocol, offset) of an unfragmented packet's L4 header, else None."""
    if eth_type == ETH_TYPE_IP:
        fields = _ipv4_fields(frame, off)
        if not fields or fields["nw_frag"] != FRAG_NONE:
            return None
        return frame[off + 9], off + (frame[off] & 0x0F) * 4
    if eth_type == ETH_TYPE_IPV6:
        if len(frame) - off < 40 or frame[off] >> 4 != 6:
            return None
        proto, l4_off, nw_frag = _ipv6_walk(frame, off + 40, frame[off + 6])
        if l4_off < 0 or nw_frag != FRAG_NONE:
            return None
        return proto, l4_off
    return None


# ----------------------------------------------------------------- checksums


def internet_checksum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 ones'-complement sum, complemented."""
    if len(data) % 2:
        data += b"\x00"
    total = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    data = src + dst
    return sum(struct.unpack(f"!{len(data) // 2}H", data)) + proto + length


def l4_checksum(src: bytes, dst: bytes, proto: int, segment: bytes) -> int:
    """TCP/UDP/ICMPv6 checksum of ``segment`` (its checksum field zeroed first).

    A computed 0 is sent as 0xffff for UDP (0 means "no checksum" there).
    """
    csum_at = _CHECKSUM_OFFSET[proto]
    zeroed = segment[:csum_at] + b"\x00\x00" + segment[csum_at + 2:]
    csum = internet_checksum(zeroed, _pseudo_header_sum(src, dst, proto, len(segment)))
    if proto == IPPROTO_UDP and csum == 0:
        csum = 0xFFFF
    return csum


_CHECKSUM_OFFSET = {IPPROTO_TCP: 16, IPPROTO_UDP: 6, IPPROTO_ICMPV6: 2}


def ipv4_header_checksum(header: bytes) -> int:
    return internet_checksum(header[:10] + b"\x00\x00" + header[12:])


def finish_checksums(frame: bytes) -> bytes:
    """Fill in the checksums a CHECKSUM_PARTIAL packet left unfinished.

    Packets caught before the NIC (veth, tap) may carry only a pseudo-header
    sum in their L4 checksum; sending them out of AF_PACKET needs the real
    one.  Recomputes the IPv4 header checksum, and for unfragmented packets
    the TCP, UDP and ICMPv6 checksums (an IPv4 UDP checksum of 0 means "none"
    and stays 0).  Anything it does not understand, or whose IP length runs
    past the frame, comes back unchanged.
    """
    frame = bytes(frame)
    if len(frame) < ETH_HEADER_LEN:
        return frame
    off = ETH_HEADER_LEN
    eth_type = int.from_bytes(frame[12:14], "big")
    for _ in range(2):
        if eth_type not in VLAN_TPIDS or len(frame) < off + 4:
            break
        eth_type = int.from_bytes(frame[off + 2:off + 4], "big")
        off += 4
    if eth_type == ETH_TYPE_IP:
        return _finish_ipv4(frame, off)
    if eth_type == ETH_TYPE_IPV6:
        return _finish_ipv6(frame, off)
    return frame


def _finish_ipv4(frame: bytes, off: int) -> bytes:
    if not _ipv4_fields(frame, off):
        return frame
    ihl = (frame[off] & 0x0F) * 4
    total_len = int.from_bytes(frame[off + 2:off + 4], "big")
    if total_len < ihl or off + total_len > len(frame):
        return frame
    out = bytearray(frame)
    out[off + 10:off + 12] = ipv4_header_checksum(frame[off:off + ihl]).to_bytes(2, "big")
    frag_field = int.from_bytes(frame[off + 6:off + 8], "big")
    proto = frame[off + 9]
    if frag_field & 0x3FFF or proto not in (IPPROTO_TCP, IPPROTO_UDP):
        return bytes(out)
    l4, end = off + ihl, off + total_len
    if end - l4 < _L4_MIN_LEN[proto]:
        return bytes(out)
    csum_at = l4 + _CHECKSUM_OFFSET[proto]
    if proto == IPPROTO_UDP and frame[csum_at:csum_at + 2] == b"\x00\x00":
        return bytes(out)
    src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
    csum = l4_checksum(src, dst, proto, frame[l4:end])
    out[csum_at:csum_at + 2] = csum.to_bytes(2, "big")
    return bytes(out)


def _finish_ipv6(frame: bytes, off: int) -> bytes:
    if len(frame) - off < 40 or frame[off] >> 4 != 6:
        return frame
    end = off + 40 + int.from_bytes(frame[off + 4:off + 6], "big")
    if end > len(frame):
        return frame
    proto, l4, nw_frag = _ipv6_walk(frame[:end], off + 40, frame[off + 6])
    if l4 < 0 or nw_frag != FRAG_NONE or proto not in _CHECKSUM_OFFSET:
        return frame
    if _has_routing_header(frame, off) or end - l4 < _L4_MIN_LEN[proto]:
        return frame  # the pseudo-header would need the final destination
    csum = l4_checksum(frame[off + 8:off + 24], frame[off + 24:off + 40], proto, frame[l4:end])
    out = bytearray(frame)
    csum_at = l4 + _CHECKSUM_OFFSET[proto]
    out[csum_at:csum_at + 2] = csum.to_bytes(2, "big")
    return bytes(out)


def _has_routing_header(frame: bytes, off: int) -> bool:
    next_header, pos = frame[off + 6], off + 40
    for _ in range(IPV6_MAX_EXT_HEADERS):
        if next_header == IPPROTO_ROUTING:
            return True
        if next_header not in IPV6_EXT_HEADERS or len(frame) - pos < 8:
            return False
        length = 8 if next_header == IPPROTO_FRAGMENT else (frame[pos + 1] + 1) * 8
        next_header, pos = frame[pos], pos + length
    return False


# ----------------------------------------------------------------- VLAN


def push_vlan(frame: bytes, tci: int, tpid: int = ETH_TYPE_VLAN) -> bytes:
    """Insert a VLAN header (``tpid``, ``tci``) after the MAC addresses."""
    frame = bytes(frame)
    if len(frame) < 12:
        return frame
    return frame[:12] + struct.pack("!HH", tpid, tci & 0xFFFF) + frame[12:]


def pop_vlan(frame: bytes) -> bytes:
    """Remove the outermost VLAN header; frames without one are unchanged."""
    frame = bytes(frame)
    if len(frame) < ETH_HEADER_LEN + VLAN_HEADER_LEN:
        return frame
    if int.from_bytes(frame[12:14], "big") not in VLAN_TPIDS:
        return frame
    return frame[:12] + frame[16:]
