"""Datapath flows as text, in the style of OVS ``dpctl/dump-flows``.

``in_port(2),eth(src=..,dst=..),eth_type(0x0800),ipv4(src=10.0.0.1,frag=no),
packets:10, bytes:980, used:0.500s, actions:3``.  Fully wildcarded fields are
left out (unless verbose); partly masked ones print as ``value/mask``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from ovsbpfd.dpif.types import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    VLAN_TAG_PRESENT,
    DpFlow,
    FlowKey,
    format_actions,
    port_label,
)

IPPROTO_SCTP = 132
_FRAG_NAMES = {0: "no", 1: "first", 2: "later"}


def _mac(value: bytes) -> str:
    return ":".join(f"{b:02x}" for b in value)


def _ip4(value: bytes) -> str:
    return str(ipaddress.IPv4Address(value[:4]))


def _ip6(value: bytes) -> str:
    return str(ipaddress.IPv6Address(value))


class _Fields:
    """Collects ``name=value[/mask]`` parts of one attribute."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.parts: list[str] = []

    def add(self, name: str, value, mask, render, full) -> None:
        wildcarded = not any(mask) if isinstance(mask, bytes) else not mask
        if wildcarded and not self.verbose:
            return
        text = f"{name}={render(value)}"
        if mask != full:
            text += f"/{render(mask)}"
        self.parts.append(text)

    def attr(self, name: str) -> str | None:
        return f"{name}({','.join(self.parts)})" if self.parts else None


def format_key(key: FlowKey, mask: FlowKey, verbose: bool = False,
               port_names: Mapping[int, str] | None = None) -> str:
    """The megaflow ``key``/``mask`` as OVS prints a datapath flow's match;
    with ``port_names`` (datapath port -> name) the in_port by name, as
    ``dpif/dump-flows -m`` does."""
    key = key.masked(mask)
    out = [f"in_port({port_label(key.in_port, port_names)})"]
    eth = _Fields(verbose)
    eth.add("src", key.eth_src, mask.eth_src, _mac, b"\xff" * 6)
    eth.add("dst", key.eth_dst, mask.eth_dst, _mac, b"\xff" * 6)
    if (attr := eth.attr("eth")) is not None:
        out.append(attr)
    inner = out
    if key.vlan_tci & VLAN_TAG_PRESENT:
        vlan = _Fields(True)
        vlan.add("vid", key.vlan_tci & 0xFFF, mask.vlan_tci & 0xFFF, str, 0xFFF)
        vlan.add("pcp", key.vlan_tci >> 13, mask.vlan_tci >> 13, str, 7)
        out.append("eth_type(0x8100)")
        out.append(vlan.attr("vlan") or "vlan()")
        inner = []
    elif verbose and mask.vlan_tci:
        out.append(f"vlan_tci({key.vlan_tci:#06x}/{mask.vlan_tci:#06x})")
    if mask.eth_type or verbose:
        text = f"eth_type({key.eth_type:#06x}"
        if mask.eth_type != 0xFFFF:
            text += f"/{mask.eth_type:#06x}"
        inner.append(text + ")")
    if mask.eth_type == 0xFFFF:
        inner.extend(_l3_attrs(key, mask, verbose))
    if inner is not out:
        out.append(f"encap({','.join(inner)})")
    return ",".join(out)


def _l3_attrs(key: FlowKey, mask: FlowKey, verbose: bool) -> list[str]:
    attrs: list[str] = []
    if key.eth_type in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        v4 = key.eth_type == ETH_TYPE_IP
        ip = _Fields(verbose)
        render, full = (_ip4, b"\xff" * 4) if v4 else (_ip6, b"\xff" * 16)
        width = 4 if v4 else 16
        ip.add("src", key.ip_src[:width], mask.ip_src[:width], render, full)
        ip.add("dst", key.ip_dst[:width], mask.ip_dst[:width], render, full)
        ip.add("proto", key.nw_proto, mask.nw_proto, str, 0xFF)
        ip.add("tos", key.nw_tos, mask.nw_tos, hex, 0xFF)
        ip.add("ttl", key.nw_ttl, mask.nw_ttl, str, 0xFF)
        if mask.nw_frag or verbose:
            ip.parts.append(f"frag={_FRAG_NAMES.get(key.nw_frag, key.nw_frag)}")
        if (attr := ip.attr("ipv4" if v4 else "ipv6")) is not None:
            attrs.append(attr)
        if mask.nw_proto == 0xFF:
            l4 = _l4_attr(key, mask, verbose, v4)
            if l4:
                attrs.append(l4)
    elif key.eth_type == ETH_TYPE_ARP:
        arp = _Fields(verbose)
        arp.add("sip", key.ip_src[:4], mask.ip_src[:4], _ip4, b"\xff" * 4)
        arp.add("tip", key.ip_dst[:4], mask.ip_dst[:4], _ip4, b"\xff" * 4)
        arp.add("op", key.nw_proto, mask.nw_proto, str, 0xFF)
        arp.add("sha", key.arp_sha, mask.arp_sha, _mac, b"\xff" * 6)
        arp.add("tha", key.arp_tha, mask.arp_tha, _mac, b"\xff" * 6)
        if (attr := arp.attr("arp")) is not None:
            attrs.append(attr)
    return attrs


def _l4_attr(key: FlowKey, mask: FlowKey, verbose: bool, v4: bool) -> str | None:
    proto = key.nw_proto
    names = {IPPROTO_TCP: ("tcp", "src", "dst"), IPPROTO_UDP: ("udp", "src", "dst"),
             IPPROTO_SCTP: ("sctp", "src", "dst")}
    if v4:
        names[IPPROTO_ICMP] = ("icmp", "type", "code")
    else:
        names[IPPROTO_ICMPV6] = ("icmpv6", "type", "code")
    if proto not in names:
        return None
    name, first, second = names[proto]
    full = 0xFFFF if first == "src" else 0xFF
    l4 = _Fields(verbose)
    l4.add(first, key.tp_src, mask.tp_src & full, str, full)
    l4.add(second, key.tp_dst, mask.tp_dst & full, str, full)
    return l4.attr(name)


def format_used(used_ns: int, now_ns: int) -> str:
    if not used_ns:
        return "never"
    return f"{max(0, now_ns - used_ns) / 1e9:.3f}s"


def format_flow(flow: DpFlow, now_ns: int, verbose: bool = False,
                port_names: Mapping[int, str] | None = None) -> str:
    """One ``dpctl/dump-flows`` line (ports by name when ``port_names`` is given)."""
    stats = flow.stats
    return (f"{format_key(flow.key, flow.mask, verbose, port_names)}, "
            f"packets:{stats.packets}, bytes:{stats.bytes}, "
            f"used:{format_used(stats.used_ns, now_ns)}, "
            f"actions:{format_actions(flow.actions, port_names)}")
