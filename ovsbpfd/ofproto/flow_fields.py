"""The bridge between OXM fields (OpenFlow matches) and datapath ``FlowKey`` fields.

Two jobs: read a packet's value of an OXM field out of a ``FlowKey`` (for the
classifier), and turn "field F was consulted under mask M" into the FlowKey
mask bits that a megaflow must match on (for xlate).  Keeping both in one
table means the classifier and the megaflow mask can never disagree.

Masks are accumulated as ``KeyMask``: FlowKey field name -> integer bits
(byte-string fields as big-endian integers), turned into a ``FlowKey`` only
once per translation.
"""

from __future__ import annotations

from ovsbpfd.dpif.types import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    VLAN_TAG_PRESENT,
    FlowKey,
)
from ovsbpfd.ofproto.match import FIELDS
from ovsbpfd.ofproto.rewrites import SET_TARGETS

IPPROTO_SCTP = 132

KeyMask = dict[str, int]

# FlowKey fields held as bytes, with their width in bytes.
_BYTES_FIELDS = {"eth_src": 6, "eth_dst": 6, "ip_src": 16, "ip_dst": 16,
                 "arp_sha": 6, "arp_tha": 6}
_IPV4_SHIFT = 96  # an IPv4 address sits in the first 4 of 16 bytes

# OXM field -> ((FlowKey field, shift of the OXM mask within it, extra bits), ...)
# "extra bits" are always consulted with the field (e.g. the VLAN present bit
# for vlan_pcp, the fragment type for transport ports).
_KEY_BITS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "in_port": (("in_port", 0, 0),),
    "in_phy_port": (("in_port", 0, 0),),
    "metadata": (),
    "tunnel_id": (),
    "eth_dst": (("eth_dst", 0, 0),),
    "eth_src": (("eth_src", 0, 0),),
    "eth_type": (("eth_type", 0, 0),),
    "vlan_vid": (("vlan_tci", 0, 0),),
    "vlan_pcp": (("vlan_tci", 13, VLAN_TAG_PRESENT),),
    "ip_dscp": (("nw_tos", 2, 0),),
    "ip_ecn": (("nw_tos", 0, 0),),
    "ip_proto": (("nw_proto", 0, 0),),
    "ipv4_src": (("ip_src", _IPV4_SHIFT, 0),),
    "ipv4_dst": (("ip_dst", _IPV4_SHIFT, 0),),
    "tcp_src": (("tp_src", 0, 0), ("nw_frag", 0, 0xFF)),
    "tcp_dst": (("tp_dst", 0, 0), ("nw_frag", 0, 0xFF)),
    "udp_src": (("tp_src", 0, 0), ("nw_frag", 0, 0xFF)),
    "udp_dst": (("tp_dst", 0, 0), ("nw_frag", 0, 0xFF)),
    "sctp_src": (("tp_src", 0, 0), ("nw_frag", 0, 0xFF)),
    "sctp_dst": (("tp_dst", 0, 0), ("nw_frag", 0, 0xFF)),
    "icmpv4_type": (("tp_src", 0, 0), ("nw_frag", 0, 0xFF)),
    "icmpv4_code": (("tp_dst", 0, 0), ("nw_frag", 0, 0xFF)),
    "icmpv6_type": (("tp_src", 0, 0), ("nw_frag", 0, 0xFF)),
    "icmpv6_code": (("tp_dst", 0, 0), ("nw_frag", 0, 0xFF)),
    "arp_op": (("nw_proto", 0, 0),),
    "arp_spa": (("ip_src", _IPV4_SHIFT, 0),),
    "arp_tpa": (("ip_dst", _IPV4_SHIFT, 0),),
    "arp_sha": (("arp_sha", 0, 0),),
    "arp_tha": (("arp_tha", 0, 0),),
    "ipv6_src": (("ip_src", 0, 0),),
    "ipv6_dst": (("ip_dst", 0, 0),),
}

_OXM_FULL_MASKS = {f.name: f.full_mask for f in FIELDS}

#: OXM fields the datapath key can represent (others are refused at FLOW_MOD).
SUPPORTED_FIELDS = frozenset(_KEY_BITS)

#: OXM fields whose value a set_field action may change in the datapath.
SETTABLE_FIELDS = frozenset({"vlan_vid", "vlan_pcp"}) | frozenset(SET_TARGETS)

_DP_IN_PORT_BITS = 0xFFFFFFFF


def add_field_mask(acc: KeyMask, oxm_name: str, oxm_mask: int) -> None:
    """Record in ``acc`` that ``oxm_name`` was consulted under ``oxm_mask``."""
    for key_field, shift, extra in _KEY_BITS[oxm_name]:
        bits = _DP_IN_PORT_BITS if key_field == "in_port" else (oxm_mask << shift) | extra
        acc[key_field] = acc.get(key_field, 0) | bits


def match_key_mask(fields: tuple[tuple[str, int], ...]) -> KeyMask:
    """The FlowKey bits consulted by testing every ``(field, mask)`` pair."""
    acc: KeyMask = {}
    for name, mask in fields:
        add_field_mask(acc, name, mask)
    return acc


def merge_masks(acc: KeyMask, other: KeyMask) -> None:
    for name, bits in other.items():
        acc[name] = acc.get(name, 0) | bits


def to_flow_key(acc: KeyMask) -> FlowKey:
    """Turn accumulated bits into a FlowKey mask (in_port always exact)."""
    values: dict[str, object] = {"in_port": _DP_IN_PORT_BITS}
    for name, bits in acc.items():
        if name == "in_port":
            continue
        width = _BYTES_FIELDS.get(name)
        if width is None:
            limit = 0xFFFF if name in ("vlan_tci", "eth_type", "tp_src", "tp_dst") else 0xFF
            values[name] = bits & limit
        else:
            values[name] = (bits & ((1 << (8 * width)) - 1)).to_bytes(width, "big")
    return FlowKey(**values)  # type: ignore[arg-type]


def from_flow_key(mask: FlowKey) -> KeyMask:
    """The inverse of ``to_flow_key`` (bytes fields become integers)."""
    acc: KeyMask = {}
    for name in ("in_port", "vlan_tci", "eth_type", "nw_proto", "nw_tos", "nw_ttl",
                 "nw_frag", "tp_src", "tp_dst"):
        value = getattr(mask, name)
        if value:
            acc[name] = value
    for name in _BYTES_FIELDS:
        value = int.from_bytes(getattr(mask, name), "big")
        if value:
            acc[name] = value
    return acc


def fixed_oxm_bits(acc: KeyMask, oxm_name: str) -> int:
    """The bits of OXM field ``oxm_name`` that a megaflow mask (``acc``, as
    ``from_flow_key`` gives it) holds fixed, so that all its packets share them.

    in_port is always exact; metadata and tunnel_id are not packet bits at
    all but set by the pipeline alike for every packet of a megaflow.  A
    field the key cannot hold is reported as not fixed (0)."""
    bits = _KEY_BITS.get(oxm_name)
    if bits is None:
        return 0
    full = _OXM_FULL_MASKS[oxm_name]
    if not bits or bits[0][0] == "in_port":
        return full
    key_field, shift, _extra = bits[0]
    return (acc.get(key_field, 0) >> shift) & full


def mac_to_int(mac: bytes) -> int:
    return int.from_bytes(mac, "big")


def packet_values(key: FlowKey, in_ofport: int, metadata: int = 0) -> dict[str, int]:
    """OXM field -> value for every field present in this packet.

    A field is present only when its prerequisites hold (``tcp_dst`` only for
    TCP, ``vlan_pcp`` only with a tag), so a rule on an absent field never
    matches, as OpenFlow requires.
    """
    values = {
        "in_port": in_ofport,
        "in_phy_port": in_ofport,
        "metadata": metadata,
        "tunnel_id": 0,
        "eth_dst": int.from_bytes(key.eth_dst, "big"),
        "eth_src": int.from_bytes(key.eth_src, "big"),
        "eth_type": key.eth_type,
        "vlan_vid": key.vlan_tci & 0x1FFF,
    }
    if key.vlan_tci & VLAN_TAG_PRESENT:
        values["vlan_pcp"] = key.vlan_tci >> 13
    eth_type = key.eth_type
    if eth_type in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        _add_ip_values(values, key)
    elif eth_type == ETH_TYPE_ARP:
        values["arp_op"] = key.nw_proto
        values["arp_spa"] = int.from_bytes(key.ip_src[:4], "big")
        values["arp_tpa"] = int.from_bytes(key.ip_dst[:4], "big")
        values["arp_sha"] = int.from_bytes(key.arp_sha, "big")
        values["arp_tha"] = int.from_bytes(key.arp_tha, "big")
    return values


def _add_ip_values(values: dict[str, int], key: FlowKey) -> None:
    proto = key.nw_proto
    values["ip_dscp"] = key.nw_tos >> 2
    values["ip_ecn"] = key.nw_tos & 3
    values["ip_proto"] = proto
    if key.eth_type == ETH_TYPE_IP:
        values["ipv4_src"] = int.from_bytes(key.ip_src[:4], "big")
        values["ipv4_dst"] = int.from_bytes(key.ip_dst[:4], "big")
        if proto == IPPROTO_ICMP:
            values["icmpv4_type"] = key.tp_src & 0xFF
            values["icmpv4_code"] = key.tp_dst & 0xFF
    else:
        values["ipv6_src"] = int.from_bytes(key.ip_src, "big")
        values["ipv6_dst"] = int.from_bytes(key.ip_dst, "big")
        if proto == IPPROTO_ICMPV6:
            values["icmpv6_type"] = key.tp_src & 0xFF
            values["icmpv6_code"] = key.tp_dst & 0xFF
    prefix = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_SCTP: "sctp"}.get(proto)
    if prefix is not None:
        values[prefix + "_src"] = key.tp_src
        values[prefix + "_dst"] = key.tp_dst
