"""Records that pass between the OpenFlow front end and the switch core.

The front end (``ofproto/openflow/``: wire codec and connections) decodes
messages into these and calls ``OfprotoBridge`` (``ofproto/bridge.py``); the
core answers with these and raises ``OfpError`` for what the spec rejects.
Neither side needs the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovsbpfd.ofproto.actions import OFPG_ANY, OFPP_ANY, Action, Instruction
from ovsbpfd.ofproto.match import Match

# The error types, re-exported for the modules that import them from here;
# every error number is defined once, in ``ofp_errors``.
from ovsbpfd.ofproto.ofp_errors import (  # noqa: F401
    OFPET_BAD_ACTION,
    OFPET_BAD_INSTRUCTION,
    OFPET_BAD_MATCH,
    OFPET_BAD_REQUEST,
    OFPET_FLOW_MOD_FAILED,
    OFPET_GROUP_MOD_FAILED,
    OFPET_HELLO_FAILED,
    OFPET_METER_MOD_FAILED,
    OFPET_PORT_MOD_FAILED,
    OFPET_QUEUE_OP_FAILED,
    OFPET_ROLE_REQUEST_FAILED,
    OFPET_SWITCH_CONFIG_FAILED,
    OFPET_TABLE_FEATURES_FAILED,
    OFPET_TABLE_MOD_FAILED,
)

# ofp_flow_mod_command
OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT, OFPFC_DELETE, OFPFC_DELETE_STRICT = range(5)
# ofp_flow_mod_flags
OFPFF_SEND_FLOW_REM = 1 << 0
OFPFF_CHECK_OVERLAP = 1 << 1
OFPFF_RESET_COUNTS = 1 << 2
OFPFF_NO_PKT_COUNTS = 1 << 3
OFPFF_NO_BYT_COUNTS = 1 << 4

OFPTT_ALL = 0xFF
OFP_NO_BUFFER = 0xFFFFFFFF

# ofp_port_config / ofp_port_state bits
OFPPC_PORT_DOWN = 1 << 0
OFPPC_NO_RECV = 1 << 2
OFPPC_NO_FWD = 1 << 5
OFPPC_NO_PACKET_IN = 1 << 6
OFPPS_LINK_DOWN = 1 << 0
OFPPS_BLOCKED = 1 << 1
OFPPS_LIVE = 1 << 2

# ofp_packet_in_reason / ofp_flow_removed_reason / ofp_port_reason
OFPR_NO_MATCH, OFPR_ACTION, OFPR_INVALID_TTL = 0, 1, 2
OFPRR_IDLE_TIMEOUT, OFPRR_HARD_TIMEOUT, OFPRR_DELETE, OFPRR_GROUP_DELETE = 0, 1, 2, 3
OFPPR_ADD, OFPPR_DELETE, OFPPR_MODIFY = 0, 1, 2


class OfpError(Exception):
    """An OpenFlow error to send back as OFPT_ERROR (type, code)."""

    def __init__(self, type_: int, code: int, message: str = "") -> None:
        super().__init__(message or f"OFPT_ERROR type={type_} code={code}")
        self.type = type_
        self.code = code


class BatchFailed(Exception):
    """FLOW_MOD ``index`` of an all-or-none batch (a bundle commit) was refused
    with ``error``; nothing of the batch was applied."""

    def __init__(self, index: int, error: OfpError) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


@dataclass
class FlowMod:
    command: int
    match: Match = field(default_factory=Match)
    instructions: tuple[Instruction, ...] = ()
    table_id: int = 0
    priority: int = 0x8000
    cookie: int = 0
    cookie_mask: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0
    buffer_id: int = OFP_NO_BUFFER
    out_port: int = OFPP_ANY
    out_group: int = OFPG_ANY


@dataclass
class FlowStatsRequest:
    """Selects rules for OFPMP_FLOW / OFPMP_AGGREGATE (non-strict match)."""

    table_id: int = OFPTT_ALL
    out_port: int = OFPP_ANY
    out_group: int = OFPG_ANY
    cookie: int = 0
    cookie_mask: int = 0
    match: Match = field(default_factory=Match)


@dataclass
class FlowStatsEntry:
    table_id: int
    duration_sec: int
    duration_nsec: int
    priority: int
    idle_timeout: int
    hard_timeout: int
    flags: int
    cookie: int
    packet_count: int
    byte_count: int
    match: Match
    instructions: tuple[Instruction, ...]


@dataclass
class TableStats:
    table_id: int
    active_count: int
    lookup_count: int
    matched_count: int


@dataclass
class OfPort:
    """An OpenFlow port as PORT_DESC / PORT_STATUS describe it."""

    port_no: int
    name: str
    hw_addr: bytes
    config: int = 0
    state: int = 0
    curr: int = 0
    advertised: int = 0
    supported: int = 0
    peer: int = 0
    curr_speed: int = 0  # kbps
    max_speed: int = 0


@dataclass
class OfPortStats:
    port_no: int
    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0


@dataclass
class PacketIn:
    """An asynchronous PACKET_IN the core asks the front end to send."""

    reason: int
    table_id: int
    cookie: int
    match: Match  # at least in_port (OXM), as OVS sends
    data: bytes
    total_len: int
    buffer_id: int = OFP_NO_BUFFER


@dataclass
class FlowRemoved:
    cookie: int
    priority: int
    reason: int
    table_id: int
    duration_sec: int
    duration_nsec: int
    idle_timeout: int
    hard_timeout: int
    packet_count: int
    byte_count: int
    match: Match


# ---------------------------------------------------------------- groups and meters
# (Added by the OpenFlow front end for issue 4; a core that supports groups or
# meters implements ``switch_api.GroupMeterCore`` with these records.)
OFPGC_ADD, OFPGC_MODIFY, OFPGC_DELETE = 0, 1, 2
OFPGT_ALL, OFPGT_SELECT, OFPGT_INDIRECT, OFPGT_FF = 0, 1, 2, 3
OFPMC_ADD, OFPMC_MODIFY, OFPMC_DELETE = 0, 1, 2
OFPMF_KBPS, OFPMF_PKTPS, OFPMF_BURST, OFPMF_STATS = 1, 2, 4, 8
OFPMBT_DROP, OFPMBT_DSCP_REMARK = 1, 2
OFPM_ALL = 0xFFFFFFFF


@dataclass(frozen=True)
class Bucket:
    actions: tuple[Action, ...] = ()
    weight: int = 0
    watch_port: int = OFPP_ANY
    watch_group: int = OFPG_ANY


@dataclass
class GroupMod:
    """OFPT_GROUP_MOD, and one entry of OFPMP_GROUP_DESC (command unused)."""

    command: int
    type: int
    group_id: int
    buckets: tuple[Bucket, ...] = ()


@dataclass
class GroupStats:
    group_id: int
    ref_count: int = 0
    packet_count: int = 0
    byte_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    bucket_counts: tuple[tuple[int, int], ...] = ()  # (packets, bytes) per bucket


@dataclass(frozen=True)
class MeterBand:
    type: int  # OFPMBT_*
    rate: int
    burst_size: int = 0
    prec_level: int = 0  # OFPMBT_DSCP_REMARK only


@dataclass
class MeterMod:
    """OFPT_METER_MOD, and one entry of OFPMP_METER_CONFIG (command unused)."""

    command: int
    flags: int
    meter_id: int
    bands: tuple[MeterBand, ...] = ()


@dataclass
class MeterStats:
    meter_id: int
    flow_count: int = 0
    packet_in_count: int = 0
    byte_in_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    band_counts: tuple[tuple[int, int], ...] = ()  # (packets, bytes) per band
