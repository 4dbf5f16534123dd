"""ctypes mirrors of the C structs in bpf/datapath.h.

The flow key itself is never mirrored field by field here: its bytes are
``FlowKey.pack()`` (types.FLOW_KEY_STRUCT), and ``FlowKeyBytes`` only
reserves its 72 bytes.  A test checks every mirror against the object's BTF.
"""

from __future__ import annotations

import ctypes

from ovsbpfd.dpif.types import FLOW_KEY_SIZE, MAX_ACTIONS, MAX_SET_ACTIONS

# Bump when a map's contents change meaning without changing any size (the
# pin directory name hashes this with the map definitions).
LAYOUT_REVISION = 2

MAX_PORTS = 1024
MAX_MASKS = 32
UPCALL_DATA_MAX = 1600
NO_OUTPUT = 0xFFFFFFFF
PORT_NAME_MAX = 63  # bytes of a port name the ports map can hold

ACTION_OUTPUT, ACTION_PUSH_VLAN, ACTION_POP_VLAN, ACTION_USERSPACE = 1, 2, 3, 4
ACTION_SET_MASKED, ACTION_METER = 5, 6

# enum ovsbpf_set_field: SetMasked field name -> id
SET_FIELD_IDS = {
    "eth_src": 1, "eth_dst": 2, "ip_src": 3, "ip_dst": 4, "nw_tos": 5, "nw_ttl": 6,
    "tp_src": 7, "tp_dst": 8, "arp_sha": 9, "arp_tha": 10,
}
MAX_METERS = 4096
METER_MAX_BANDS = 4

FlowKeyBytes = ctypes.c_uint8 * FLOW_KEY_SIZE


class FlowKeyStruct(ctypes.Structure):
    """struct ovsbpf_flow_key, for the layout test (use FlowKey.pack for data)."""

    _fields_ = [
        ("in_port", ctypes.c_uint32),
        ("vlan_tci", ctypes.c_uint8 * 2),
        ("eth_type", ctypes.c_uint8 * 2),
        ("eth_src", ctypes.c_uint8 * 6),
        ("eth_dst", ctypes.c_uint8 * 6),
        ("nw_proto", ctypes.c_uint8),
        ("nw_tos", ctypes.c_uint8),
        ("nw_ttl", ctypes.c_uint8),
        ("nw_frag", ctypes.c_uint8),
        ("ip_src", ctypes.c_uint8 * 16),
        ("ip_dst", ctypes.c_uint8 * 16),
        ("tp_src", ctypes.c_uint8 * 2),
        ("tp_dst", ctypes.c_uint8 * 2),
        ("arp_sha", ctypes.c_uint8 * 6),
        ("arp_tha", ctypes.c_uint8 * 6),
    ]


class Mask(ctypes.Structure):
    _fields_ = [("in_use", ctypes.c_uint32), ("mask", FlowKeyBytes)]


class FlowMapKey(ctypes.Structure):
    _fields_ = [("mask_id", ctypes.c_uint32), ("key", FlowKeyBytes)]


class Action(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint16),
        ("tpid", ctypes.c_uint16),
        ("arg", ctypes.c_uint32),
        ("cookie", ctypes.c_uint64),
    ]


class SetValue(ctypes.Structure):
    _fields_ = [("value", ctypes.c_uint8 * 16), ("mask", ctypes.c_uint8 * 16)]


class Flow(ctypes.Structure):
    _fields_ = [
        ("packets", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("used_ns", ctypes.c_uint64),
        ("tcp_flags", ctypes.c_uint32),
        ("n_actions", ctypes.c_uint32),
        ("final_output", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("actions", Action * MAX_ACTIONS),
        ("sets", SetValue * MAX_SET_ACTIONS),
    ]


class Port(ctypes.Structure):
    _fields_ = [("ifindex", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("name", ctypes.c_char * (PORT_NAME_MAX + 1))]


PORT_F_OWN_CLSACT = 1  # we created the device's clsact qdisc


class DpStatsStruct(ctypes.Structure):
    _fields_ = [
        ("n_hit", ctypes.c_uint64),
        ("n_missed", ctypes.c_uint64),
        ("n_lost", ctypes.c_uint64),
    ]


class PortStatsStruct(ctypes.Structure):
    _fields_ = [
        ("rx_packets", ctypes.c_uint64),
        ("rx_bytes", ctypes.c_uint64),
        ("tx_packets", ctypes.c_uint64),
        ("tx_bytes", ctypes.c_uint64),
        ("rx_dropped", ctypes.c_uint64),
        ("tx_dropped", ctypes.c_uint64),
    ]


class Config(ctypes.Structure):
    _fields_ = [("n_mask_slots", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class MeterBandStruct(ctypes.Structure):
    _fields_ = [
        ("rate", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("capacity", ctypes.c_uint64),
        ("fill_ns", ctypes.c_uint64),
        ("bucket", ctypes.c_uint64),
        ("packets", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
    ]


class MeterStruct(ctypes.Structure):
    """struct ovsbpf_meter; ``lock`` is the bpf_spin_lock (never written by us)."""

    _fields_ = [
        ("lock", ctypes.c_uint32),
        ("in_use", ctypes.c_uint32),
        ("kbps", ctypes.c_uint32),
        ("n_bands", ctypes.c_uint32),
        ("last_ns", ctypes.c_uint64),
        ("packets_in", ctypes.c_uint64),
        ("bytes_in", ctypes.c_uint64),
        ("bands", MeterBandStruct * METER_MAX_BANDS),
    ]


class UpcallHeader(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint32),
        ("packet_len", ctypes.c_uint32),
        ("data_len", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("cookie", ctypes.c_uint64),
        ("key", FlowKeyBytes),
    ]


#: C struct name -> mirror, for the BTF layout test
MIRRORS: dict[str, type[ctypes.Structure]] = {
    "ovsbpf_flow_key": FlowKeyStruct,
    "ovsbpf_mask": Mask,
    "ovsbpf_flow_map_key": FlowMapKey,
    "ovsbpf_action": Action,
    "ovsbpf_flow": Flow,
    "ovsbpf_set_value": SetValue,
    "ovsbpf_meter_band": MeterBandStruct,
    "ovsbpf_meter": MeterStruct,
    "ovsbpf_port": Port,
    "ovsbpf_dp_stats": DpStatsStruct,
    "ovsbpf_port_stats": PortStatsStruct,
    "ovsbpf_config": Config,
    "ovsbpf_upcall": UpcallHeader,
}
