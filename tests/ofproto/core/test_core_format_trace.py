"""dpctl-style flow text and ofproto/trace output."""

from __future__ import annotations

import pytest

from ovsbpfd.dpif.format import format_flow, format_key
from ovsbpfd.dpif.types import DpFlow, FlowKey, FlowStats, Output, PushVlan
from tests.ofproto.core.rig import Rig

MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")


def test_wildcarded_fields_are_omitted() -> None:
    key = FlowKey(in_port=2, eth_src=MAC1, eth_dst=MAC2, eth_type=0x0800, nw_proto=1,
                  ip_src=bytes([10, 0, 0, 1]) + bytes(12), tp_src=8)
    mask = FlowKey(in_port=0xFFFFFFFF, eth_src=b"\xff" * 6, eth_dst=b"\xff" * 6,
                   eth_type=0xFFFF, nw_proto=0xFF, ip_src=b"\xff\xff\xff\x00" + bytes(12),
                   tp_src=0xFF)
    flow = DpFlow(key, mask, (PushVlan(10), Output(3)),
                  FlowStats(packets=10, bytes=980, used_ns=500_000_000))
    assert format_flow(flow, now_ns=1_000_000_000) == (
        "in_port(2),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02),eth_type(0x0800),"
        "ipv4(src=10.0.0.0/255.255.255.0,proto=1),icmp(type=8), packets:10, bytes:980, "
        "used:0.500s, actions:push_vlan(vid=10,pcp=0),3")


def test_vlan_flows_show_encap_and_never_used() -> None:
    key = FlowKey(in_port=1, vlan_tci=0x1000 | 10, eth_type=0x0806)
    mask = FlowKey(in_port=0xFFFFFFFF, vlan_tci=0xFFFF, eth_type=0xFFFF)
    assert format_key(key, mask) == "in_port(1),eth_type(0x8100),vlan(vid=10,pcp=0)," \
                                    "encap(eth_type(0x0806))"
    assert "used:never" in format_flow(DpFlow(key, mask, ()), 5)


def test_trace_shows_rules_megaflow_and_actions() -> None:
    rig = Rig(2)
    try:
        out = rig.bridge.trace("in_port=1,dl_src=02:00:00:00:00:01,"
                               "dl_dst=02:00:00:00:00:02,udp,nw_dst=10.0.0.2,tp_dst=53")
        assert 'bridge("br0")' in out and "priority 0" in out and "NORMAL" in out
        assert "Megaflow: in_port(1),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02)" in out
        assert out.rstrip().endswith(f"Datapath actions: {rig.dp_port(2)}")
        assert len(rig.bridge.mac) == 0  # tracing learns nothing
        with pytest.raises(ValueError):
            rig.bridge.trace("in_port=1,bogus=3")
    finally:
        rig.close()
