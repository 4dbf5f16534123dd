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
    SET_FIELD_WIDTHS,
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
    """RFC 1071 ones'-complement sum, complemented.

    Since 2**16 = 1 (mod 0xffff), the folded sum of the 16-bit words is the
    whole buffer read as one big-endian integer, modulo 0xffff (0 standing
    for 0xffff unless everything was zero): one C-speed pass instead of a
    word-by-word loop, on every packet userspace sends."""
    if len(data) % 2:
        data += b"\x00"
    total = initial + int.from_bytes(data, "big")
    folded = total % 0xFFFF
    if folded == 0 and total:
        folded = 0xFFFF
    return ~folded & 0xFFFF


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
    # The checks of _ipv4_fields, inline: this runs for every packet sent.
    if len(frame) - off < 20:
        return frame
    ver_ihl = frame[off]
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20 or len(frame) - off < ihl:
        return frame
    total_len = (frame[off + 2] << 8) | frame[off + 3]
    if total_len < ihl or off + total_len > len(frame):
        return frame
    out = bytearray(frame)
    out[off + 10] = out[off + 11] = 0
    header_csum = internet_checksum(bytes(out[off:off + ihl]))
    out[off + 10], out[off + 11] = header_csum >> 8, header_csum & 0xFF
    proto = frame[off + 9]
    if (frame[off + 6] & 0x3F) or frame[off + 7] or proto not in _IPV4_FINISHED:
        return bytes(out)
    l4, end = off + ihl, off + total_len
    if end - l4 < _L4_MIN_LEN[proto]:
        return bytes(out)
    csum_at = l4 + _CHECKSUM_OFFSET[proto]
    if proto == IPPROTO_UDP and not frame[csum_at] and not frame[csum_at + 1]:
        return bytes(out)
    out[csum_at] = out[csum_at + 1] = 0
    # pseudo-header: addresses, protocol, L4 length
    csum = internet_checksum(bytes(out[l4:end]), int.from_bytes(frame[off + 12:off + 14], "big")
                             + int.from_bytes(frame[off + 14:off + 16], "big")
                             + int.from_bytes(frame[off + 16:off + 18], "big")
                             + int.from_bytes(frame[off + 18:off + 20], "big")
                             + proto + end - l4)
    if proto == IPPROTO_UDP and csum == 0:
        csum = 0xFFFF
    out[csum_at], out[csum_at + 1] = csum >> 8, csum & 0xFF
    return bytes(out)


_IPV4_FINISHED = frozenset({IPPROTO_TCP, IPPROTO_UDP})


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


# ----------------------------------------------------------------- set-field
# What a SetMasked action does to a frame, byte for byte as the BPF program
# does it (bpf/datapath.bpf.c set_masked): merge the masked bits in, then fix
# the checksums that cover them incrementally (RFC 1624), so a checksum that
# was wrong stays wrong by the same amount.  Where the frame lacks the field
# (no such layer, the L4 header not wholly in the frame, a later fragment)
# nothing changes.  Offsets come from the parser's rules above.

_PSEUDO_HEADER_PROTOCOLS = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6})


def _ones_fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def csum_replace(csum: int, old: bytes, new: bytes) -> int:
    """The checksum ``csum`` after 16-bit-aligned bytes ``old`` became ``new``."""
    total = ~csum & 0xFFFF
    for i in range(0, len(old), 2):
        total += (~int.from_bytes(old[i:i + 2], "big") & 0xFFFF) + int.from_bytes(
            new[i:i + 2], "big")
    return ~_ones_fold(total) & 0xFFFF


def _fix_csum(out: bytearray, at: int, old: bytes, new: bytes, udp: bool = False) -> None:
    """Update the checksum at ``at``; a zero UDP checksum ("none") stays zero,
    and a UDP result of zero is sent as 0xffff."""
    csum = int.from_bytes(out[at:at + 2], "big")
    if udp and csum == 0:
        return
    csum = csum_replace(csum, old, new)
    if udp and csum == 0:
        csum = 0xFFFF
    out[at:at + 2] = csum.to_bytes(2, "big")


def _merge(old: bytes, value: bytes, mask: bytes) -> bytes:
    return bytes((o & ~m) | (v & m) for o, v, m in zip(old, value, mask, strict=True))


def _field_bytes(field: str, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return value.to_bytes(SET_FIELD_WIDTHS[field], "big")
    return bytes(value)


def set_masked(frame: bytes, field: str, value: int | bytes, mask: int | bytes) -> bytes:
    """``frame`` with ``field`` (a SetMasked field name) rewritten under ``mask``."""
    frame = bytes(frame)
    if field not in SET_FIELD_WIDTHS or len(frame) < ETH_HEADER_LEN:
        return frame
    val, msk = _field_bytes(field, value), _field_bytes(field, mask)
    out = bytearray(frame)
    if field in ("eth_src", "eth_dst"):
        at = 6 if field == "eth_src" else 0
        out[at:at + 6] = _merge(frame[at:at + 6], val, msk)
        return bytes(out)
    _, eth_type, off = _l2(frame)
    if off < 0:
        return frame
    if eth_type == ETH_TYPE_ARP:
        _set_arp(out, off, field, val, msk)
    elif eth_type == ETH_TYPE_IP:
        _set_ipv4(out, off, field, val, msk)
    elif eth_type == ETH_TYPE_IPV6:
        _set_ipv6(out, off, field, val, msk)
    return bytes(out)


_ARP_OFFSETS = {"arp_sha": (8, 6), "ip_src": (14, 4), "arp_tha": (18, 6), "ip_dst": (24, 4)}


def _set_arp(out: bytearray, off: int, field: str, val: bytes, msk: bytes) -> None:
    where = _ARP_OFFSETS.get(field)
    if where is None or not _arp_fields(bytes(out), off):
        return
    at, width = where[0] + off, where[1]
    out[at:at + width] = _merge(out[at:at + width], val[:width], msk[:width])


def _l4_header(frame: bytes, off: int, eth_type: int) -> tuple[int, int] | None:
    """(protocol, offset) of an L4 header the parser would read: not a later
    fragment and the whole fixed header in the frame."""
    if eth_type == ETH_TYPE_IP:
        if (int.from_bytes(frame[off + 6:off + 8], "big") & 0x1FFF) != 0:
            return None
        proto, l4 = frame[off + 9], off + (frame[off] & 0x0F) * 4
    else:
        proto, l4, _ = _ipv6_walk(frame, off + 40, frame[off + 6])
        if l4 < 0:
            return None
    need = _L4_MIN_LEN.get(proto)
    if need is None or len(frame) - l4 < need:
        return None
    return proto, l4


def _l3_end(frame: bytes, off: int, eth_type: int) -> int:
    """Where the IP payload ends: the header's length field, bounded by the frame."""
    if eth_type == ETH_TYPE_IP:
        end = off + int.from_bytes(frame[off + 2:off + 4], "big")
    else:
        end = off + 40 + int.from_bytes(frame[off + 4:off + 6], "big")
    return min(end, len(frame))


def _fix_l4_pseudo(out: bytearray, off: int, eth_type: int, old: bytes, new: bytes) -> None:
    """An address in the pseudo-header changed: fix TCP/UDP/ICMPv6 checksums."""
    l4 = _l4_header(bytes(out), off, eth_type)
    if l4 is None or l4[0] not in _PSEUDO_HEADER_PROTOCOLS:
        return
    if eth_type == ETH_TYPE_IP and l4[0] == IPPROTO_ICMPV6:
        return
    _fix_csum(out, l4[1] + _CHECKSUM_OFFSET[l4[0]], old, new, udp=l4[0] == IPPROTO_UDP)


def _set_ipv4(out: bytearray, off: int, field: str, val: bytes, msk: bytes) -> None:
    frame = bytes(out)
    if not _ipv4_fields(frame, off):
        return
    if field in ("ip_src", "ip_dst"):
        at = off + (12 if field == "ip_src" else 16)
        old = frame[at:at + 4]
        new = _merge(old, val[:4], msk[:4])
        out[at:at + 4] = new
        _fix_csum(out, off + 10, old, new)
        _fix_l4_pseudo(out, off, ETH_TYPE_IP, old, new)
    elif field in ("nw_tos", "nw_ttl"):
        word = off + (0 if field == "nw_tos" else 8)  # the 16-bit word holding it
        old = frame[word:word + 2]
        at = word + (1 if field == "nw_tos" else 0)
        out[at] = (out[at] & ~msk[0]) | (val[0] & msk[0])
        _fix_csum(out, off + 10, old, bytes(out[word:word + 2]))
    elif field in ("tp_src", "tp_dst"):
        _set_port(out, off, ETH_TYPE_IP, field, val, msk)


def _set_ipv6(out: bytearray, off: int, field: str, val: bytes, msk: bytes) -> None:
    frame = bytes(out)
    if len(frame) - off < 40 or frame[off] >> 4 != 6:
        return
    if field in ("ip_src", "ip_dst"):
        at = off + (8 if field == "ip_src" else 24)
        old = frame[at:at + 16]
        new = _merge(old, val, msk)
        out[at:at + 16] = new
        _fix_l4_pseudo(out, off, ETH_TYPE_IPV6, old, new)
    elif field == "nw_tos":
        tclass = ((frame[off] & 0x0F) << 4) | (frame[off + 1] >> 4)
        tclass = (tclass & ~msk[0]) | (val[0] & msk[0])
        out[off] = (frame[off] & 0xF0) | (tclass >> 4)
        out[off + 1] = (frame[off + 1] & 0x0F) | ((tclass & 0x0F) << 4)
    elif field == "nw_ttl":
        out[off + 7] = (frame[off + 7] & ~msk[0]) | (val[0] & msk[0])
    elif field in ("tp_src", "tp_dst"):
        _set_port(out, off, ETH_TYPE_IPV6, field, val, msk)


def _set_port(out: bytearray, off: int, eth_type: int, field: str, val: bytes,
              msk: bytes) -> None:
    frame = bytes(out)
    l4 = _l4_header(frame, off, eth_type)
    if l4 is None or l4[0] not in _PORT_PROTOCOLS:
        return
    proto, l4_off = l4
    at = l4_off + (0 if field == "tp_src" else 2)
    old = frame[at:at + 2]
    new = _merge(old, val, msk)
    out[at:at + 2] = new
    if proto == IPPROTO_SCTP:
        end = _l3_end(frame, off, eth_type)
        _fix_sctp_crc(out, l4_off, end, frame[l4_off:l4_off + 4], bytes(out[l4_off:l4_off + 4]))
    else:
        _fix_csum(out, l4_off + _CHECKSUM_OFFSET[proto], old, new, udp=proto == IPPROTO_UDP)


# SCTP's checksum is a CRC32c of the whole packet.  CRCs are affine, so after
# bytes at the start of the packet change, the new CRC is the old one XOR the
# plain CRC (no init, no final XOR) of the change followed by as many zero bytes
# as follow it: cheap, works in BPF too, and keeps a wrong CRC wrong.
CRC32C_POLY_REFLECTED = 0x82F63B78


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (CRC32C_POLY_REFLECTED if crc & 1 else 0)
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32c as SCTP uses it (stored little-endian in the header)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c_raw_shifted(start: bytes, zeros: int) -> int:
    """CRC32c without init/final XOR of ``start`` followed by ``zeros`` zero bytes."""
    crc = 0
    for byte in start:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    for _ in range(zeros):
        crc = CRC32C_TABLE[crc & 0xFF] ^ (crc >> 8)
    return crc


def _fix_sctp_crc(out: bytearray, l4: int, end: int, old: bytes, new: bytes) -> None:
    if end - l4 < 12:
        return
    delta = bytes(a ^ b for a, b in zip(old, new, strict=True))
    change = crc32c_raw_shifted(delta, end - l4 - len(delta))
    stored = int.from_bytes(out[l4 + 8:l4 + 12], "little") ^ change
    out[l4 + 8:l4 + 12] = stored.to_bytes(4, "little")
