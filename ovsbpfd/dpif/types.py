"""Typed datapath records: flow keys, masks, actions, upcalls, statistics.

These are the messages that cross the dpif interface, in the spirit of the
``OVS_KEY_ATTR_*`` / ``OVS_ACTION_ATTR_*`` families of the kernel datapath.
The flow key has one fixed binary layout shared with the BPF program
(``struct ovsbpf_flow_key`` in ``bpf/datapath.h``); ``FlowKey.pack`` and
``FlowKey.unpack`` are the only places that know it.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

# in_port is host order (it is an index the BPF program uses directly); every
# other field is in network order, exactly as it sits in the packet.
_KEY_FORMAT = "<I" + "".join(
    [
        "2s",  # vlan_tci (VLAN_TAG_PRESENT 0x1000 set when a tag is present)
        "2s",  # eth_type (inner type for tagged frames)
        "6s",  # eth_src
        "6s",  # eth_dst
        "B",  # nw_proto (IP protocol, or low 8 bits of the ARP opcode)
        "B",  # nw_tos (DSCP and ECN)
        "B",  # nw_ttl (IPv4 TTL or IPv6 hop limit)
        "B",  # nw_frag (FRAG_NONE / FRAG_FIRST / FRAG_LATER)
        "16s",  # ip_src (IPv4 in the first 4 bytes; IPv6; ARP SPA)
        "16s",  # ip_dst (likewise; ARP TPA)
        "2s",  # tp_src (TCP/UDP source port; ICMP type in the low byte)
        "2s",  # tp_dst (TCP/UDP destination port; ICMP code in the low byte)
        "6s",  # arp_sha
        "6s",  # arp_tha
    ]
)
FLOW_KEY_STRUCT = struct.Struct(_KEY_FORMAT)
FLOW_KEY_SIZE = FLOW_KEY_STRUCT.size  # 72, a multiple of 8 for word-wise masking

VLAN_TAG_PRESENT = 0x1000
FRAG_NONE, FRAG_FIRST, FRAG_LATER = 0, 1, 2

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_VLAN = 0x8100
ETH_TYPE_VLAN_8021AD = 0x88A8
ETH_TYPE_IPV6 = 0x86DD
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58

_ZERO6 = bytes(6)
_ZERO16 = bytes(16)


@dataclass(frozen=True, init=False)
class FlowKey:
    """One packet's parsed headers, or (used as a mask) the bits that matter.

    Integers are host values (``eth_type=0x0800``, ``tp_src=80``); addresses
    are raw bytes.  A mask is a ``FlowKey`` whose set bits are the bits a
    megaflow matches on.
    """

    in_port: int = 0
    vlan_tci: int = 0
    eth_type: int = 0
    eth_src: bytes = _ZERO6
    eth_dst: bytes = _ZERO6
    nw_proto: int = 0
    nw_tos: int = 0
    nw_ttl: int = 0
    nw_frag: int = 0
    ip_src: bytes = _ZERO16
    ip_dst: bytes = _ZERO16
    tp_src: int = 0
    tp_dst: int = 0
    arp_sha: bytes = _ZERO6
    arp_tha: bytes = _ZERO6

    # The dataclass would generate an __init__ of fifteen frozen setattrs
    # (several microseconds); translation builds a mask per upcall.
    def __init__(self, in_port: int = 0, vlan_tci: int = 0, eth_type: int = 0,
                 eth_src: bytes = _ZERO6, eth_dst: bytes = _ZERO6, nw_proto: int = 0,
                 nw_tos: int = 0, nw_ttl: int = 0, nw_frag: int = 0, ip_src: bytes = _ZERO16,
                 ip_dst: bytes = _ZERO16, tp_src: int = 0, tp_dst: int = 0,
                 arp_sha: bytes = _ZERO6, arp_tha: bytes = _ZERO6) -> None:
        self.__dict__.update(
            in_port=in_port, vlan_tci=vlan_tci, eth_type=eth_type, eth_src=eth_src,
            eth_dst=eth_dst, nw_proto=nw_proto, nw_tos=nw_tos, nw_ttl=nw_ttl, nw_frag=nw_frag,
            ip_src=ip_src, ip_dst=ip_dst, tp_src=tp_src, tp_dst=tp_dst, arp_sha=arp_sha,
            arp_tha=arp_tha)

    # The packed form (and its integer) is computed once per key and kept in
    # the instance dict, outside the dataclass fields: equality, hashing and
    # repr see only the fields.  Every datapath call packs keys and masks.
    def pack(self) -> bytes:
        packed = self.__dict__.get("_packed")
        if packed is None:
            packed = FLOW_KEY_STRUCT.pack(
                self.in_port,
                self.vlan_tci.to_bytes(2, "big"),
                self.eth_type.to_bytes(2, "big"),
                self.eth_src,
                self.eth_dst,
                self.nw_proto,
                self.nw_tos,
                self.nw_ttl,
                self.nw_frag,
                self.ip_src,
                self.ip_dst,
                self.tp_src.to_bytes(2, "big"),
                self.tp_dst.to_bytes(2, "big"),
                self.arp_sha,
                self.arp_tha,
            )
            self.__dict__["_packed"] = packed
        return packed

    def as_int(self) -> int:
        """The packed key as one (little-endian) integer, for bitwise masking."""
        value = self.__dict__.get("_int")
        if value is None:
            value = self.__dict__["_int"] = int.from_bytes(self.pack(), "little")
        return value

    @classmethod
    def unpack(cls, data: bytes) -> FlowKey:
        packed = bytes(data[:FLOW_KEY_SIZE])
        (in_port, vlan_tci, eth_type, eth_src, eth_dst, nw_proto, nw_tos, nw_ttl,
         nw_frag, ip_src, ip_dst, tp_src, tp_dst, arp_sha, arp_tha) = (
            FLOW_KEY_STRUCT.unpack(packed))
        # Built without the generated __init__ (fifteen frozen setattrs): the
        # values are known to be well-formed, and the packed form comes free.
        key = object.__new__(cls)
        key.__dict__.update(
            in_port=in_port,
            vlan_tci=int.from_bytes(vlan_tci, "big"),
            eth_type=int.from_bytes(eth_type, "big"),
            eth_src=eth_src,
            eth_dst=eth_dst,
            nw_proto=nw_proto,
            nw_tos=nw_tos,
            nw_ttl=nw_ttl,
            nw_frag=nw_frag,
            ip_src=ip_src,
            ip_dst=ip_dst,
            tp_src=int.from_bytes(tp_src, "big"),
            tp_dst=int.from_bytes(tp_dst, "big"),
            arp_sha=arp_sha,
            arp_tha=arp_tha,
            _packed=packed,
        )
        return key

    @classmethod
    def _from_int(cls, value: int) -> FlowKey:
        key = cls.unpack(value.to_bytes(FLOW_KEY_SIZE, "little"))
        key.__dict__["_int"] = value
        return key

    def masked(self, mask: FlowKey) -> FlowKey:
        """The key with every bit outside ``mask`` cleared."""
        return FlowKey._from_int(self.as_int() & mask.as_int())

    def masked_bytes(self, mask: FlowKey) -> bytes:
        """``masked(mask).pack()`` without building the FlowKey (map keys
        and flow identities need only the bytes)."""
        return (self.as_int() & mask.as_int()).to_bytes(FLOW_KEY_SIZE, "little")

    def replace(self, **changes: object) -> FlowKey:
        return dataclasses.replace(self, **changes)

    @classmethod
    def all_ones(cls) -> FlowKey:
        """The exact-match mask (every bit matters)."""
        return cls.unpack(b"\xff" * FLOW_KEY_SIZE)

    def union(self, other: FlowKey) -> FlowKey:
        """Bitwise OR of two masks: a field consulted by either is consulted."""
        return FlowKey._from_int(self.as_int() | other.as_int())

    def covers(self, needed: FlowKey) -> bool:
        """Used as a mask: does it have every bit set that ``needed`` has?"""
        want = needed.as_int()
        return self.as_int() & want == want


# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class Output:
    """Send the packet (as modified so far) out of datapath port ``port``."""

    port: int


@dataclass(frozen=True)
class PushVlan:
    """Push an 802.1Q header; ``tci`` excludes VLAN_TAG_PRESENT."""

    tci: int
    tpid: int = ETH_TYPE_VLAN


@dataclass(frozen=True)
class PopVlan:
    """Remove the outermost 802.1Q header."""


@dataclass(frozen=True)
class Userspace:
    """Send a copy of the packet to userspace as an upcall (action upcall)."""

    cookie: int = 0


# Fields SetMasked can rewrite -> width in bytes.  Integer fields of FlowKey
# take int values; the others take bytes, exactly as FlowKey holds them.
SET_FIELD_WIDTHS: dict[str, int] = {
    "eth_src": 6, "eth_dst": 6,
    "ip_src": 16, "ip_dst": 16,  # IPv4 (and ARP SPA/TPA) in the first 4 bytes
    "nw_tos": 1, "nw_ttl": 1,
    "tp_src": 2, "tp_dst": 2,
    "arp_sha": 6, "arp_tha": 6,
}
SET_INT_FIELDS = frozenset({"nw_tos", "nw_ttl", "tp_src", "tp_dst"})


@dataclass(frozen=True)
class SetMasked:
    """Rewrite the bits of ``field`` that are set in ``mask`` to ``value``'s bits.

    OVS_ACTION_ATTR_SET_MASKED: ``field`` is a FlowKey field name (see
    SET_FIELD_WIDTHS); ``value``/``mask`` have that field's FlowKey type and
    width, and, as in the kernel datapath, ``value`` has no bits outside
    ``mask`` (else EINVAL).  A 4-byte ``ip_src``/``ip_dst`` value and mask are
    taken as IPv4 and padded to the key's 16 bytes.  Checksums that cover the
    field are fixed up; on a packet without the field (tp_src of an ARP, an
    IPv4 later fragment's ports) the action does nothing.  dec_ttl is
    ``SetMasked("nw_ttl", ttl - 1, 0xff)`` with the TTL in the flow's mask.
    """

    field: str
    value: int | bytes
    mask: int | bytes

    def __post_init__(self) -> None:
        if self.field in ("ip_src", "ip_dst"):
            for name in ("value", "mask"):
                raw = getattr(self, name)
                if isinstance(raw, bytes) and len(raw) == 4:
                    object.__setattr__(self, name, raw + bytes(12))

    @classmethod
    def exact(cls, field: str, value: int | bytes) -> SetMasked:
        """Set every bit of ``field`` (a plain set_field)."""
        width = SET_FIELD_WIDTHS.get(field, 0)
        if field in ("ip_src", "ip_dst") and isinstance(value, bytes) and len(value) == 4:
            return cls(field, value, b"\xff" * 4)
        if field in SET_INT_FIELDS:
            return cls(field, value, (1 << (8 * width)) - 1)
        return cls(field, value, b"\xff" * width)


@dataclass(frozen=True)
class Meter:
    """Run the packet through meter ``meter_id``; it continues unless a drop band
    drops it (then the remaining actions are skipped).  A meter id that is not
    set lets every packet through, as in the kernel datapath."""

    meter_id: int


DpAction = Output | PushVlan | PopVlan | Userspace | SetMasked | Meter
MAX_ACTIONS = 32  # fixed action array length in the BPF flow value
MAX_SET_ACTIONS = 8  # SetMasked actions per flow (their values live beside the array)


def port_label(port_no: int, port_names: Mapping[int, str] | None) -> str:
    """A datapath port as OVS prints it: its name if known and asked for, else its number."""
    if port_names is not None and port_no in port_names:
        return port_names[port_no]
    return str(port_no)


def format_actions(actions: tuple[DpAction, ...] | list[DpAction],
                   port_names: Mapping[int, str] | None = None) -> str:
    """OVS dpctl style: ``1,push_vlan(vid=10,pcp=0),2`` or ``drop``; output
    ports by name when ``port_names`` (datapath port -> name) is given."""
    if not actions:
        return "drop"
    parts = []
    for act in actions:
        if isinstance(act, Output):
            parts.append(port_label(act.port, port_names))
        elif isinstance(act, PushVlan):
            parts.append(
                f"push_vlan(vid={act.tci & 0x0FFF},pcp={act.tci >> 13})"
            )
        elif isinstance(act, PopVlan):
            parts.append("pop_vlan")
        elif isinstance(act, Userspace):
            parts.append(f"userspace(cookie={act.cookie})")
        elif isinstance(act, SetMasked):
            parts.append(_format_set(act))
        elif isinstance(act, Meter):
            parts.append(f"meter({act.meter_id})")
    return ",".join(parts)


def _format_set(act: SetMasked) -> str:
    """``set(ipv4(ttl=63))``, ``set(eth(src=02:00:00:00:00:01))``, ``/mask`` if partial."""
    family, name = _SET_FIELD_NAMES.get(act.field, ("?", act.field))
    value, mask = act.value, act.mask
    if family == "ip" and isinstance(value, bytes) and isinstance(mask, bytes):
        v4 = not any(value[4:]) and not any(mask[4:])
        family = "ipv4" if v4 else "ipv6"
        width = 4 if v4 else 16
        render = _render_ip(value[:width]), _render_ip(mask[:width])
        full = mask[:width] == b"\xff" * width
    elif isinstance(value, bytes) and isinstance(mask, bytes):
        render = ":".join(f"{b:02x}" for b in value), ":".join(f"{b:02x}" for b in mask)
        full = mask == b"\xff" * len(mask)
    else:
        width = SET_FIELD_WIDTHS.get(act.field, 0)
        hexa = act.field == "nw_tos"
        render = (hex(value) if hexa else str(value)), hex(mask)  # type: ignore[arg-type]
        full = mask == (1 << (8 * width)) - 1
    text = f"{name}={render[0]}" + ("" if full else f"/{render[1]}")
    return f"set({family}({text}))"


def _render_ip(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.ip_address(raw))


_SET_FIELD_NAMES = {
    "eth_src": ("eth", "src"), "eth_dst": ("eth", "dst"),
    "ip_src": ("ip", "src"), "ip_dst": ("ip", "dst"),
    "nw_tos": ("ipv4", "tos"), "nw_ttl": ("ipv4", "ttl"),
    "tp_src": ("l4", "src"), "tp_dst": ("l4", "dst"),
    "arp_sha": ("arp", "sha"), "arp_tha": ("arp", "tha"),
}


# ---------------------------------------------------------------- records


@dataclass
class FlowStats:
    packets: int = 0
    bytes: int = 0
    used_ns: int = 0  # CLOCK_MONOTONIC (bpf_ktime_get_ns) of last hit; 0=never
    tcp_flags: int = 0


@dataclass
class DpFlow:
    """One installed megaflow as ``flow_dump``/``flow_get`` report it."""

    key: FlowKey  # already masked
    mask: FlowKey
    actions: tuple[DpAction, ...]
    stats: FlowStats = field(default_factory=FlowStats)


@dataclass(frozen=True)
class DpPort:
    port_no: int
    name: str
    ifindex: int


@dataclass
class PortStats:
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0


@dataclass
class DpStats:
    """Datapath-wide counters, like ``ovs-dpctl show``'s lookups line."""

    n_hit: int = 0
    n_missed: int = 0  # upcalls generated
    n_lost: int = 0  # upcalls dropped (ring buffer full)
    n_flows: int = 0
    n_masks: int = 0


# ---------------------------------------------------------------- meters

METER_BAND_DROP = "drop"


@dataclass(frozen=True)
class MeterBand:
    """One band of a meter: above ``rate`` (pkts/s, or kbit/s for a kbps meter)
    with a bucket of ``burst_size`` (packets or kbits), packets take this band.
    Only ``"drop"`` bands exist; others are EOPNOTSUPP."""

    rate: int
    burst_size: int = 0
    type: str = METER_BAND_DROP


@dataclass
class MeterStats:
    """Counters of one meter: everything that entered it, and per band what the
    band took (for a drop band: what it dropped)."""

    packets_in: int = 0
    bytes_in: int = 0
    band_packets: list[int] = field(default_factory=list)
    band_bytes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class MeterFeatures:
    """What ``meter_set`` accepts, for OpenFlow's METER_FEATURES reply."""

    max_meters: int  # valid meter ids are 0 .. max_meters-1
    max_bands: int
    band_types: tuple[str, ...] = (METER_BAND_DROP,)
    kbps: bool = True
    pktps: bool = True
    burst: bool = True
    stats: bool = True


UPCALL_MISS, UPCALL_ACTION = 0, 1


@dataclass
class Upcall:
    """A packet the datapath handed to userspace.

    ``packet`` may be shorter than ``packet_len`` when the datapath truncated
    it (GSO super-packets); such a packet cannot be re-executed.
    """

    kind: int  # UPCALL_MISS or UPCALL_ACTION
    key: FlowKey
    packet: bytes
    packet_len: int
    cookie: int = 0

    @property
    def truncated(self) -> bool:
        return len(self.packet) < self.packet_len
