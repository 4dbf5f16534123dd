"""``ofproto/trace``: show how a bridge would handle a packet described in
ovs-ofctl flow syntax (``in_port=1,dl_src=..,dl_dst=..,ip,nw_dst=10.0.0.2``).

The translation runs without side effects (nothing is learned or counted).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from ovsbpfd.dpif.format import format_key
from ovsbpfd.dpif.types import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    VLAN_TAG_PRESENT,
    FlowKey,
    format_actions,
)
from ovsbpfd.ofproto.actions import OFPP_CONTROLLER, OFPP_LOCAL
from ovsbpfd.ofproto.xlate import Xlate

if TYPE_CHECKING:
    from ovsbpfd.ofproto.bridge import OfprotoBridge

_SHORTHANDS = {
    "ip": (ETH_TYPE_IP, None), "ipv6": (ETH_TYPE_IPV6, None), "arp": (ETH_TYPE_ARP, None),
    "icmp": (ETH_TYPE_IP, 1), "tcp": (ETH_TYPE_IP, 6), "udp": (ETH_TYPE_IP, 17),
    "sctp": (ETH_TYPE_IP, 132), "icmp6": (ETH_TYPE_IPV6, 58), "tcp6": (ETH_TYPE_IPV6, 6),
    "udp6": (ETH_TYPE_IPV6, 17), "eth": (None, None),
}
_ALIASES = {
    "eth_src": "dl_src", "eth_dst": "dl_dst", "eth_type": "dl_type", "vlan_vid": "dl_vlan",
    "vlan_pcp": "dl_vlan_pcp", "ip_src": "nw_src", "ip_dst": "nw_dst", "ipv4_src": "nw_src",
    "ipv4_dst": "nw_dst", "ip_proto": "nw_proto", "ipv6_src": "nw_src", "ipv6_dst": "nw_dst",
    "tcp_src": "tp_src", "udp_src": "tp_src", "sctp_src": "tp_src", "tcp_dst": "tp_dst",
    "udp_dst": "tp_dst", "sctp_dst": "tp_dst", "icmp_type": "tp_src", "icmp_code": "tp_dst",
    "icmpv4_type": "tp_src", "icmpv4_code": "tp_dst", "icmpv6_type": "tp_src",
    "icmpv6_code": "tp_dst", "arp_spa": "nw_src", "arp_tpa": "nw_dst", "arp_op": "nw_proto",
}


def _mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"{text}: invalid Ethernet address")
    return bytes(int(p, 16) for p in parts)


def _ip(text: str) -> bytes:
    addr = ipaddress.ip_address(text)
    return addr.packed if addr.version == 6 else addr.packed + bytes(12)


def parse_flow_spec(bridge: OfprotoBridge, spec: str) -> tuple[FlowKey, int]:
    """``(key, in_ofport)`` for an ovs-ofctl style flow; ValueError if malformed."""
    fields: dict[str, object] = {}
    in_ofport = OFPP_CONTROLLER
    proto_hint: int | None = None
    for token in filter(None, (t.strip() for t in spec.split(","))):
        name, sep, value = token.partition("=")
        name = _ALIASES.get(name.strip(), name.strip())
        value = value.strip()
        if not sep:
            if name not in _SHORTHANDS:
                raise ValueError(f"{name}: unknown field")
            eth_type, proto_hint = _SHORTHANDS[name]
            if eth_type is not None:
                fields["eth_type"] = eth_type
            if proto_hint is not None:
                fields["nw_proto"] = proto_hint
            continue
        try:
            if name == "in_port":
                in_ofport = _in_port(bridge, value)
            elif name in ("dl_src", "dl_dst", "arp_sha", "arp_tha"):
                key_name = {"dl_src": "eth_src", "dl_dst": "eth_dst"}.get(name, name)
                fields[key_name] = _mac(value)
            elif name == "dl_type":
                fields["eth_type"] = int(value, 0)
            elif name == "dl_vlan":
                tci = int(fields.get("vlan_tci", 0))  # type: ignore[call-overload]
                fields["vlan_tci"] = (tci & ~0xFFF) | (int(value, 0) & 0xFFF) | VLAN_TAG_PRESENT
            elif name == "dl_vlan_pcp":
                tci = int(fields.get("vlan_tci", 0))  # type: ignore[call-overload]
                fields["vlan_tci"] = (tci & 0x1FFF) | (int(value, 0) << 13) | VLAN_TAG_PRESENT
            elif name == "vlan_tci":
                fields["vlan_tci"] = int(value, 0)
            elif name in ("nw_src", "nw_dst"):
                fields["ip_src" if name == "nw_src" else "ip_dst"] = _ip(value)
            elif name in ("nw_proto", "nw_tos", "nw_ttl", "tp_src", "tp_dst"):
                fields[name] = int(value, 0)
            elif name == "ip_dscp":
                fields["nw_tos"] = (int(value, 0) << 2) | (int(fields.get("nw_tos", 0)) & 3)  # type: ignore[call-overload]
            elif name == "ip_ecn":
                fields["nw_tos"] = (int(fields.get("nw_tos", 0)) & ~3) | int(value, 0)  # type: ignore[call-overload]
            else:
                raise ValueError(f"{name}: unknown field")
        except (ValueError, TypeError) as err:
            raise ValueError(f"{token}: {err}") from err
    port = bridge.port_map.get(in_ofport)
    fields["in_port"] = port.dp_port if port is not None else 0
    return FlowKey(**fields), in_ofport  # type: ignore[arg-type]


def _in_port(bridge: OfprotoBridge, value: str) -> int:
    if value.upper() == "LOCAL":
        return OFPP_LOCAL
    if value.isdigit():
        return int(value)
    port = bridge.port_by_name(value)
    if port is None:
        raise ValueError(f"{value}: unknown port")
    return port.port_no


def run_trace(bridge: OfprotoBridge, spec: str) -> str:
    key, in_ofport = parse_flow_spec(bridge, spec)
    xlate = Xlate(bridge, key, in_ofport, side_effects=False, tracing=True)
    result = xlate.translate()
    title = f'bridge("{bridge.name}")'
    lines = [f"Flow: {spec}", "", title, "-" * len(title)]
    lines += [" " + line for line in result.trace]
    lines += ["", f"Megaflow: {format_key(key, result.mask)}",
              f"Datapath actions: {format_actions(result.actions)}"]
    return "\n".join(lines) + "\n"
