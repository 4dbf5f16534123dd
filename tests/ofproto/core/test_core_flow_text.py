"""OpenFlow rules as OVS text (bridge/dump-flows); the system test compares
the same rules with ovs-vswitchd, these pin the decisions down one by one."""

from __future__ import annotations

import pytest

from ovsbpfd.ofproto.actions import (
    OFPP_CONTROLLER,
    OFPP_LOCAL,
    ActOutput,
    ActPushVlan,
    ActSetField,
    InstApplyActions,
    InstGotoTable,
    InstMeter,
    InstWriteActions,
    InstWriteMetadata,
)
from ovsbpfd.ofproto.flow_text import c_hex, format_instructions, format_match, format_rule
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.rule import Rule


@pytest.mark.parametrize("fields, text", [
    ({}, ""),
    ({"eth_type": 0x0800, "ip_proto": 6, "tcp_dst": 80}, "tcp,tp_dst=80"),
    ({"eth_type": 0x0800, "ip_proto": 47}, "ip,nw_proto=47"),
    ({"eth_type": 0x86DD, "ip_proto": 58, "icmpv6_type": 135}, "icmp6,icmp_type=135"),
    ({"eth_type": 0x88CC}, "dl_type=0x88cc"),
    ({"eth_type": 0x0800, "ipv4_src": (0x0A000000, 0xFFFFFF00)}, "ip,nw_src=10.0.0.0/24"),
    ({"eth_type": 0x0800, "ipv4_src": (0x0A000000, 0xFF00FF00)},
     "ip,nw_src=10.0.0.0/255.0.255.0"),
    ({"eth_type": 0x0806, "arp_op": 1, "arp_tpa": 0x0A000001}, "arp,arp_tpa=10.0.0.1,arp_op=1"),
    ({"vlan_vid": 0x1000 | 10, "vlan_pcp": 3}, "dl_vlan=10,dl_vlan_pcp=3"),
    ({"vlan_vid": 0}, "vlan_tci=0x0000/0x1fff"),
    ({"vlan_vid": (0x1000, 0x1000)}, "vlan_tci=0x1000/0x1000"),
    ({"metadata": 0}, "metadata=0"),
    ({"metadata": (1, 0xFF), "in_port": OFPP_LOCAL}, "metadata=0x1/0xff,in_port=LOCAL"),
    ({"eth_type": 0x0800, "ip_dscp": 8, "ip_ecn": 1}, "ip,nw_tos=32,nw_ecn=1"),
])
def test_match_text(fields: dict, text: str) -> None:
    assert format_match(Match(fields), 0x8000) == text
    assert format_match(Match(fields), 5) == ",".join(["priority=5", text] if text else
                                                       ["priority=5"])


def test_actions_in_instruction_order() -> None:
    insts = (InstGotoTable(3), InstWriteMetadata(0, 0xFF),
             InstWriteActions((ActOutput(2),)),
             InstApplyActions((ActPushVlan(), ActSetField("vlan_vid", 4106),
                               ActSetField("ipv4_dst", 0x0A000009),
                               ActOutput(OFPP_CONTROLLER, 128), ActOutput(OFPP_LOCAL))),
             InstMeter(1))
    assert format_instructions(insts) == (
        "meter:1,push_vlan:0x8100,set_field:4106->vlan_vid,set_field:10.0.0.9->ip_dst,"
        "CONTROLLER:128,LOCAL,write_actions(output:2),write_metadata:0/0xff,goto_table:3")
    assert format_instructions(()) == "drop"
    assert (c_hex(0), c_hex(31)) == ("0", "0x1f")


def test_rule_line() -> None:
    rule = Rule(2, 0x8000, Match(), (), created=100.0, packet_count=3, byte_count=180)
    assert format_rule(rule, now=112.9) == (
        "table_id=2, duration=12s, n_packets=3, n_bytes=180, ,actions=drop")
    rule.table_id = 0
    assert format_rule(rule, offload_stats=True, now=112.9) == (
        "duration=12s, n_packets=3, n_bytes=180, n_offload_packets=0, n_offload_bytes=0, "
        ",actions=drop")
