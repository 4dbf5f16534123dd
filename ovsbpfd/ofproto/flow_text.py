"""OpenFlow rules as text, the way Open vSwitch prints them
(``bridge/dump-flows``; ``ovs-ofctl dump-flows`` uses the same match and
action syntax).

A match is printed in OVS's field order, with its shorthands (``tcp`` for
``dl_type=0x0800,nw_proto=6``) and its names for OpenFlow 1.3's OXM fields
(``dl_src``, ``nw_dst``, ``tp_dst``, ``dl_vlan``...); masks as CIDR
lengths where they are prefixes.  Actions in the order of the instructions
that hold them (meter, apply, clear, write, metadata, goto).
"""

from __future__ import annotations

import ipaddress

from ovsbpfd.ofproto.actions import (
    INSTRUCTION_ORDER,
    OFPP_CONTROLLER,
    OFPP_MAX,
    PORT_NAMES,
    ActDecNwTtl,
    ActGroup,
    Action,
    ActOutput,
    ActPopVlan,
    ActPushVlan,
    ActSetField,
    ActSetNwTtl,
    InstApplyActions,
    InstClearActions,
    InstGotoTable,
    InstMeter,
    Instruction,
    InstWriteActions,
    InstWriteMetadata,
)
from ovsbpfd.ofproto.match import FIELDS_BY_NAME, Match
from ovsbpfd.ofproto.rule import Rule

OFP_DEFAULT_PRIORITY = 0x8000
_IP, _IPV6, _ARP = 0x0800, 0x86DD, 0x0806
_SHORTHANDS = {_IP: {1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"},
               _IPV6: {58: "icmp6", 6: "tcp6", 17: "udp6", 132: "sctp6"}}
_TYPE_NAMES = {_IP: "ip", _IPV6: "ipv6", _ARP: "arp", 0x8035: "rarp", 0x8847: "mpls",
               0x8848: "mplsm"}
_VLAN_CFI, _VLAN_VID, _VLAN_PCP = 0x1000, 0x0FFF, 0xE000
# settable OXM fields OVS names otherwise in set_field (meta-flow names)
_SET_FIELD_NAMES = {"ipv4_src": "ip_src", "ipv4_dst": "ip_dst", "ip_ecn": "nw_ecn"}


def c_hex(value: int) -> str:
    """C's ``%#x``: ``0x1f``, but plain ``0`` for zero."""
    return f"{value:#x}" if value else "0"


def _mac(value: int) -> str:
    return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


def _prefix_len(mask: int, width: int) -> int | None:
    """The prefix length if ``mask`` is a prefix of ``width`` bits, else None."""
    inverted = ~mask & ((1 << width) - 1)
    return width - inverted.bit_length() if inverted & (inverted + 1) == 0 else None


def _ip(value: int, mask: int | None, width: int) -> str:
    cls = ipaddress.IPv4Address if width == 32 else ipaddress.IPv6Address
    text = str(cls(value))
    if mask is None:
        return text
    length = _prefix_len(mask, width)
    return f"{text}/{length}" if length is not None else f"{text}/{cls(mask)}"


def _eth(value: int, mask: int | None) -> str:
    return _mac(value) if mask is None else f"{_mac(value)}/{_mac(mask)}"


def _be16(value: int, mask: int | None) -> str:
    """OVS's format_be16_masked: decimal when exact, else hex value/mask."""
    return str(value) if mask is None else f"{value:#x}/{mask:#x}"


def _be64(value: int, mask: int | None) -> str:
    return c_hex(value) if mask is None else f"{c_hex(value)}/{c_hex(mask)}"


def format_port(port: int) -> str:
    """An OpenFlow port: a number, or the name of a reserved one."""
    return PORT_NAMES.get(port, str(port))


def _vlan_parts(match: Match) -> list[str]:
    """OXM vlan_vid/vlan_pcp as OVS's TCI: ``dl_vlan``/``dl_vlan_pcp`` when the
    tag is required and each part is exact or absent, else ``vlan_tci``."""
    tci = tci_mask = 0
    if "vlan_vid" in match:
        value, _ = match["vlan_vid"]
        tci |= value & (_VLAN_CFI | _VLAN_VID)
        tci_mask |= match.mask_of("vlan_vid")
    if "vlan_pcp" in match:
        tci |= (match["vlan_pcp"][0] << 13) | _VLAN_CFI
        tci_mask |= _VLAN_PCP | _VLAN_CFI
    if not tci_mask:
        return []
    vid_mask, pcp_mask = tci_mask & _VLAN_VID, tci_mask & _VLAN_PCP
    if (tci_mask & _VLAN_CFI and tci & _VLAN_CFI and vid_mask in (0, _VLAN_VID)
            and pcp_mask in (0, _VLAN_PCP) and (vid_mask or pcp_mask)):
        parts = [f"dl_vlan={tci & _VLAN_VID}"] if vid_mask else []
        return parts + ([f"dl_vlan_pcp={tci >> 13}"] if pcp_mask else [])
    if tci_mask == 0xFFFF:
        return [f"vlan_tci=0x{tci:04x}"]
    return [f"vlan_tci=0x{tci:04x}/0x{tci_mask:04x}"]


def format_match(match: Match, priority: int) -> str:
    """The match as OVS's ``match_format`` prints it, priority first unless default."""
    parts: list[str] = []
    if priority != OFP_DEFAULT_PRIORITY:
        parts.append(f"priority={priority}")
    dl_type = match["eth_type"][0] if "eth_type" in match else None
    proto = match["ip_proto"][0] if "ip_proto" in match else None
    skip_type = skip_proto = False
    if dl_type is not None:
        short = _SHORTHANDS.get(dl_type, {}).get(proto) if proto is not None else None
        if short is not None:
            parts.append(short)
            skip_type = skip_proto = True
        elif dl_type in _TYPE_NAMES:
            parts.append(_TYPE_NAMES[dl_type])
            skip_type = True

    def field(oxm: str, name: str, render) -> None:
        if oxm in match:
            value, mask = match[oxm]
            parts.append(f"{name}={render(value, mask)}")

    field("tunnel_id", "tun_id", _be64)
    field("metadata", "metadata", _be64)
    field("in_port", "in_port", lambda v, _m: format_port(v))
    parts.extend(_vlan_parts(match))
    field("eth_src", "dl_src", _eth)
    field("eth_dst", "dl_dst", _eth)
    if dl_type is not None and not skip_type:
        parts.append(f"dl_type=0x{dl_type:04x}")
    if dl_type == _IPV6:
        field("ipv6_src", "ipv6_src", lambda v, m: _ip(v, m, 128))
        field("ipv6_dst", "ipv6_dst", lambda v, m: _ip(v, m, 128))
        field("ipv6_flabel", "ipv6_label",
              lambda v, m: f"0x{v:05x}" if m is None else f"0x{v:05x}/0x{m:05x}")
    elif dl_type == _ARP:
        field("arp_spa", "arp_spa", lambda v, m: _ip(v, m, 32))
        field("arp_tpa", "arp_tpa", lambda v, m: _ip(v, m, 32))
    else:
        field("ipv4_src", "nw_src", lambda v, m: _ip(v, m, 32))
        field("ipv4_dst", "nw_dst", lambda v, m: _ip(v, m, 32))
    if proto is not None and not skip_proto:
        parts.append(f"nw_proto={proto}")
    field("arp_op", "arp_op", lambda v, _m: str(v))
    field("arp_sha", "arp_sha", _eth)
    field("arp_tha", "arp_tha", _eth)
    field("ip_dscp", "nw_tos", lambda v, _m: str(v << 2))
    field("ip_ecn", "nw_ecn", lambda v, _m: str(v))
    for prefix in ("icmpv4", "icmpv6"):
        field(f"{prefix}_type", "icmp_type", _be16)
        field(f"{prefix}_code", "icmp_code", _be16)
    for prefix in ("tcp", "udp", "sctp"):
        field(f"{prefix}_src", "tp_src", _be16)
        field(f"{prefix}_dst", "tp_dst", _be16)
    return ",".join(parts)


def _set_field_value(oxm: str, value: int) -> str:
    """A set_field value in meta-flow's format for the field (of those
    validation lets a rule set: addresses, and numbers printed in decimal)."""
    if oxm in ("eth_src", "eth_dst", "arp_sha", "arp_tha"):
        return _mac(value)
    if oxm in ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"):
        return _ip(value, None, 32)
    if oxm in ("ipv6_src", "ipv6_dst"):
        return _ip(value, None, 128)
    return str(value)


def format_action(act: Action) -> str:
    """One action as OVS's ofpacts_format prints it."""
    match act:
        case ActOutput(port=port, max_len=max_len):
            if port == OFPP_CONTROLLER:
                return f"CONTROLLER:{max_len}"
            return f"output:{port}" if port < OFPP_MAX else format_port(port)
        case ActGroup(group_id=group_id):
            return f"group:{group_id}"
        case ActSetField(field=oxm, value=value):
            name = _SET_FIELD_NAMES.get(oxm, oxm)
            return f"set_field:{_set_field_value(oxm, value)}->{name}"
        case ActPushVlan(ethertype=ethertype):
            return f"push_vlan:{c_hex(ethertype)}"
        case ActPopVlan():
            return "pop_vlan"
        case ActSetNwTtl(ttl=ttl):
            return f"mod_nw_ttl:{ttl}"
        case ActDecNwTtl():
            return "dec_ttl"
    # validation refuses every other action (queues, MPLS, PBB, TTL copies)
    raise ValueError(f"no rule can hold {act!r}")


def format_instructions(instructions: tuple[Instruction, ...]) -> str:
    """The actions text of a rule (``drop`` when there are none)."""
    parts: list[str] = []
    for inst in sorted(instructions, key=lambda i: INSTRUCTION_ORDER[type(i)]):
        match inst:
            case InstMeter(meter_id=meter_id):
                parts.append(f"meter:{meter_id}")
            case InstApplyActions(actions=actions):
                parts.extend(format_action(a) for a in actions)
            case InstClearActions():
                parts.append("clear_actions")
            case InstWriteActions(actions=actions):
                parts.append(f"write_actions({','.join(format_action(a) for a in actions)})")
            case InstWriteMetadata(metadata=value, mask=mask):
                full = mask == FIELDS_BY_NAME["metadata"].full_mask
                parts.append(f"write_metadata:{c_hex(value)}" + ("" if full else f"/{c_hex(mask)}"))
            case InstGotoTable(table_id=table_id):
                parts.append(f"goto_table:{table_id}")
    return ",".join(parts) or "drop"


def format_rule(rule: Rule, offload_stats: bool = False, now: float | None = None) -> str:
    """One ``bridge/dump-flows`` line (without its newline).  Nothing is
    offloaded to hardware, so the offload counters asked for are 0."""
    table = f"table_id={rule.table_id}, " if rule.table_id else ""
    offload = "n_offload_packets=0, n_offload_bytes=0, " if offload_stats else ""
    return (f"{table}duration={rule.duration(now)[0]}s, n_packets={rule.packet_count}, "
            f"n_bytes={rule.byte_count}, {offload}{format_match(rule.match, rule.priority)},"
            f"actions={format_instructions(rule.instructions)}")
