"""The flow key's binary layout and mask arithmetic."""

from ovsbpfd.dpif.types import (
    FLOW_KEY_SIZE,
    FlowKey,
    Output,
    PopVlan,
    PushVlan,
    format_actions,
)


def sample_key() -> FlowKey:
    return FlowKey(
        in_port=3, vlan_tci=0x1000 | 10, eth_type=0x0800,
        eth_src=bytes.fromhex("020000000001"), eth_dst=bytes.fromhex("020000000002"),
        nw_proto=6, nw_tos=0x10, nw_ttl=64,
        ip_src=bytes([10, 0, 0, 1]) + bytes(12), ip_dst=bytes([10, 0, 0, 2]) + bytes(12),
        tp_src=12345, tp_dst=80,
    )


def test_key_is_72_bytes_and_word_aligned() -> None:
    assert FLOW_KEY_SIZE == 72
    assert FLOW_KEY_SIZE % 8 == 0


def test_pack_unpack_round_trip() -> None:
    key = sample_key()
    assert FlowKey.unpack(key.pack()) == key


def test_layout_is_host_order_port_then_network_order_fields() -> None:
    raw = sample_key().pack()
    assert raw[0:4] == (3).to_bytes(4, "little")
    assert raw[4:6] == (0x100A).to_bytes(2, "big")
    assert raw[6:8] == b"\x08\x00"
    assert raw[56:58] == (12345).to_bytes(2, "big")


def test_masked_keeps_only_mask_bits() -> None:
    mask = FlowKey(in_port=0xFFFFFFFF, eth_dst=b"\xff" * 6)
    masked = sample_key().masked(mask)
    assert masked == FlowKey(in_port=3, eth_dst=bytes.fromhex("020000000002"))


def test_union_of_masks() -> None:
    a = FlowKey(in_port=0xFFFFFFFF)
    b = FlowKey(tp_dst=0xFFFF)
    assert a.union(b) == FlowKey(in_port=0xFFFFFFFF, tp_dst=0xFFFF)
    assert FlowKey.all_ones().masked(a) == a


def test_format_actions_like_dpctl() -> None:
    assert format_actions([]) == "drop"
    assert format_actions([PushVlan(tci=10), Output(2), PopVlan(), Output(3)]) == (
        "push_vlan(vid=10,pcp=0),2,pop_vlan,3")
