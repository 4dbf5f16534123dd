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


@dataclass(frozen=True)
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

    def pack(self) -> bytes:
        return FLOW_KEY_STRUCT.pack(
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

    @classmethod
    def unpack(cls, data: bytes) -> FlowKey:
        (in_port, vlan_tci, eth_type, eth_src, eth_dst, nw_proto, nw_tos, nw_ttl,
         nw_frag, ip_src, ip_dst, tp_src, tp_dst, arp_sha, arp_tha) = (
            FLOW_KEY_STRUCT.unpack(data[:FLOW_KEY_SIZE]))
        return cls(
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
        )

    def masked(self, mask: FlowKey) -> FlowKey:
        """The key with every bit outside ``mask`` cleared."""
        return FlowKey.unpack(
            bytes(a & b for a, b in zip(self.pack(), mask.pack(), strict=True))
        )

    def replace(self, **changes: object) -> FlowKey:
        return dataclasses.replace(self, **changes)

    @classmethod
    def all_ones(cls) -> FlowKey:
        """The exact-match mask (every bit matters)."""
        return cls.unpack(b"\xff" * FLOW_KEY_SIZE)

    def union(self, other: FlowKey) -> FlowKey:
        """Bitwise OR of two masks: a field consulted by either is consulted."""
        return FlowKey.unpack(
            bytes(a | b for a, b in zip(self.pack(), other.pack(), strict=True))
        )


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


DpAction = Output | PushVlan | PopVlan | Userspace
MAX_ACTIONS = 32  # fixed action array length in the BPF flow value


def format_actions(actions: tuple[DpAction, ...] | list[DpAction]) -> str:
    """OVS dpctl style: ``1,push_vlan(vid=10,pcp=0),2`` or ``drop``."""
    if not actions:
        return "drop"
    parts = []
    for act in actions:
        if isinstance(act, Output):
            parts.append(str(act.port))
        elif isinstance(act, PushVlan):
            parts.append(
                f"push_vlan(vid={act.tci & 0x0FFF},pcp={act.tci >> 13})"
            )
        elif isinstance(act, PopVlan):
            parts.append("pop_vlan")
        elif isinstance(act, Userspace):
            parts.append(f"userspace(cookie={act.cookie})")
    return ",".join(parts)


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
