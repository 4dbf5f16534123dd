"""Answers each decoded request by calling the switch core.

One ``Dispatcher`` serves every connection of a bridge.  Handlers raise
``OfpError`` for what the spec rejects; the connection turns that into an
OFPT_ERROR, so nothing here writes errors itself.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import ovsbpfd
from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto.ofp_errors import (
    OFPBAC_BAD_OUT_PORT,
    OFPBFC_MSG_FAILED,
    OFPBRC_BAD_EXPERIMENTER,
    OFPBRC_BAD_LEN,
    OFPBRC_BAD_MULTIPART,
    OFPBRC_BAD_PORT,
    OFPBRC_BAD_TABLE_ID,
    OFPBRC_BAD_TYPE,
    OFPBRC_BUFFER_UNKNOWN,
    OFPBRC_IS_SLAVE,
    OFPBRC_MULTIPART_BUFFER_OVERFLOW,
    OFPET_BAD_ACTION,
    OFPET_BAD_REQUEST,
    OFPET_GROUP_MOD_FAILED,
    OFPET_METER_MOD_FAILED,
    OFPET_QUEUE_OP_FAILED,
    OFPET_SWITCH_CONFIG_FAILED,
    OFPET_TABLE_FEATURES_FAILED,
    OFPET_TABLE_MOD_FAILED,
    OFPGMFC_OUT_OF_GROUPS,
    OFPMMFC_OUT_OF_METERS,
    OFPQOFC_BAD_PORT,
    OFPSCFC_BAD_FLAGS,
    OFPTFFC_EPERM,
    OFPTMFC_BAD_CONFIG,
    OFPTMFC_BAD_TABLE,
)
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import group_meter_codec as gmc
from ovsbpfd.ofproto.openflow import multipart as mp
from ovsbpfd.ofproto.openflow.bundle import (
    ONFT_BUNDLE_CONTROL,
    InnerMessageFailed,
    bundle_error,
    commit_atomically,
    is_bundle_message,
    validate_flow_mod,
)
from ovsbpfd.ofproto.openflow.connection import OfConnection
from ovsbpfd.ofproto.openflow.messages import (
    BarrierReply,
    BarrierRequest,
    EchoReply,
    EchoRequest,
    Error,
    Experimenter,
    FeaturesReply,
    FeaturesRequest,
    FlowModMessage,
    GetAsyncReply,
    GetAsyncRequest,
    GetConfigReply,
    GetConfigRequest,
    GroupModMessage,
    MeterModMessage,
    MultipartRequest,
    OfpMessage,
    PacketOut,
    PortMod,
    QueueGetConfigReply,
    QueueGetConfigRequest,
    RoleReply,
    RoleRequest,
    SetAsync,
    SetConfig,
    TableMod,
    encode_message,
)
from ovsbpfd.ofproto.openflow.port_codec import encode_port, encode_port_stats
from ovsbpfd.ofproto.openflow.roles import RoleArbiter
from ovsbpfd.ofproto.openflow.table_features import ACTION_TYPES, table_features_items
from ovsbpfd.ofproto.switch_api import SwitchCore
from ovsbpfd.ofproto.types import (
    OFP_NO_BUFFER,
    OFPGC_DELETE,
    OFPMC_DELETE,
    OFPPC_PORT_DOWN,
    OFPTT_ALL,
    OfpError,
)

log = logging.getLogger(__name__)

# As ovs-vswitchd: queue stats are answered (empty), so they are advertised.
CAPABILITIES = (c.OFPC_FLOW_STATS | c.OFPC_TABLE_STATS | c.OFPC_PORT_STATS
                | c.OFPC_QUEUE_STATS)
#: called with (ofport, admin_up) after a PORT_MOD changed OFPPC_PORT_DOWN, so
#: that the layer owning the netdev takes it down or up, as ovs-vswitchd does
PortAdminHook = Callable[[int, bool], Awaitable[None] | None]
_Timed = TypeVar("_Timed")
# ovs-vswitchd refuses port numbers from here up to the reserved ones.
OVS_PORT_LIMIT = 0xFF00
# Accumulated REQ_MORE request parts beyond this are refused.
MULTIPART_REQUEST_LIMIT = 1 << 20
MULTIPART_PENDING_LIMIT = 16  # unfinished multipart requests per connection
# GROUP_FEATURES / METER_FEATURES bodies of a switch without groups or meters.
NO_GROUP_FEATURES = bytes(40)
NO_METER_FEATURES = bytes(16)
# ... and of a core that has them (all four group types with weights,
# liveness and chaining; every action; drop and DSCP-remark bands).
_ACTION_BITS = sum(1 << t for t in ACTION_TYPES)
GROUP_FEATURES = struct.pack("!II4I4I", 0xF, 0x7, *([0xFFFFFF00] * 4), *([_ACTION_BITS] * 4))
METER_FEATURES = struct.pack("!IIIBB2x", 0xFFFF0000, 0x6, 0xF, 16, 0)
GROUP_METER_MULTIPARTS = frozenset({
    c.OFPMP_GROUP, c.OFPMP_GROUP_DESC, c.OFPMP_GROUP_FEATURES, c.OFPMP_METER,
    c.OFPMP_METER_CONFIG, c.OFPMP_METER_FEATURES, c.OFPMP_QUEUE,
})


def _bad_request(code: int, message: str) -> OfpError:
    return OfpError(OFPET_BAD_REQUEST, code, message)


class Dispatcher:
    def __init__(self, core: SwitchCore, arbiter: RoleArbiter,
                 peers: Callable[[], Iterable[OfConnection]]) -> None:
        self.core = core
        self.arbiter = arbiter
        self.peers = peers
        self.frag_flags = c.OFPC_FRAG_NORMAL
        self.port_admin_hook: PortAdminHook | None = None
        # Optional core methods: settle() brings the datapath up to date;
        # barrier_now() is a synchronous barrier, True once every earlier
        # change is in the datapath, False if that needs a wait.
        self._settle: Callable[[], None] | None = getattr(core, "settle", None)
        self._barrier_now: Callable[[], bool] | None = getattr(core, "barrier_now", None)
        self._handlers: dict[type, Callable] = {
            EchoRequest: self._echo,
            EchoReply: self._ignore,
            Error: self._peer_error,
            Experimenter: self._experimenter,
            FeaturesRequest: self._features,
            GetConfigRequest: self._get_config,
            SetConfig: self._set_config,
            FlowModMessage: self._flow_mod,
            PacketOut: self._packet_out,
            MultipartRequest: self._multipart,
            BarrierRequest: self._barrier,
            RoleRequest: self._role,
            GetAsyncRequest: self._get_async,
            SetAsync: self._set_async,
            TableMod: self._table_mod,
            PortMod: self._port_mod,
            GroupModMessage: self._group_mod,
            MeterModMessage: self._meter_mod,
            QueueGetConfigRequest: self._queue_config,
        }

    def handle_now(self, conn: OfConnection, msg: OfpMessage) -> bool:
        """Handle ``msg`` at once if it never has to wait: a FLOW_MOD, an ECHO,
        a BARRIER when the core says nothing is left to wait for.  What a
        client that waits for each reply sends (ovs-ofctl: FLOW_MOD, BARRIER)
        then costs no coroutine.  False: use ``__call__``."""
        kind = type(msg)
        if kind is FlowModMessage:
            if conn.role == c.OFPCR_ROLE_SLAVE:
                raise _bad_request(OFPBRC_IS_SLAVE, "slave may not modify the switch")
            self._apply_flow_mod(msg)  # type: ignore[arg-type]
            return True
        if kind is BarrierRequest:
            barrier_now = self._barrier_now
            if barrier_now is None or not barrier_now():
                return False  # the core must wait: the coroutine does
            conn.send(BarrierReply(xid=msg.xid))
            return True
        if kind is EchoRequest:
            conn.send(EchoReply(msg.data, xid=msg.xid))  # type: ignore[attr-defined]
            return True
        return False

    def input_handled(self) -> None:
        """The connection has handled all the input it read: let the core
        bring the datapath up to date now (``settle``, if it has one)."""
        if self._settle is not None:
            self._settle()

    async def __call__(self, conn: OfConnection, msg: OfpMessage) -> None:
        if msg.MSG_TYPE in c.SLAVE_FORBIDDEN_TYPES and conn.role == c.OFPCR_ROLE_SLAVE:
            raise _bad_request(OFPBRC_IS_SLAVE, "slave may not modify the switch")
        handler = self._handlers.get(type(msg))
        if handler is None:
            raise _bad_request(OFPBRC_BAD_TYPE, f"{type(msg).__name__} not supported")
        await handler(conn, msg)

    # ------------------------------------------------------------ simple messages
    async def _echo(self, conn: OfConnection, msg: EchoRequest) -> None:
        conn.send(EchoReply(msg.data, xid=msg.xid))

    async def _ignore(self, conn: OfConnection, msg: OfpMessage) -> None:
        pass

    async def _peer_error(self, conn: OfConnection, msg: Error) -> None:
        conn.last_error = f"peer sent error type {msg.type} code {msg.code}"

    async def _experimenter(self, conn: OfConnection, msg: Experimenter) -> None:
        if not is_bundle_message(msg):
            raise _bad_request(OFPBRC_BAD_EXPERIMENTER, f"experimenter 0x{msg.experimenter:x}")
        if msg.exp_type != ONFT_BUNDLE_CONTROL:
            conn.bundles.add(msg, encode_message(msg),
                             role_allows=conn.role != c.OFPCR_ROLE_SLAVE,
                             validate=lambda fm: validate_flow_mod(self.core, fm))
            return
        try:
            reply = conn.bundles.control(msg, lambda fms: commit_atomically(self.core, fms))
        except InnerMessageFailed as failed:
            conn.send_error(failed.error, failed.xid, failed.add_bytes)
            raise bundle_error(OFPBFC_MSG_FAILED, "a message of the bundle failed") from None
        conn.send(reply)

    async def _features(self, conn: OfConnection, msg: FeaturesRequest) -> None:
        capabilities = CAPABILITIES | (c.OFPC_GROUP_STATS if hasattr(self.core, "group_mod")
                                       else 0)
        conn.send(FeaturesReply(self.core.datapath_id, 0, self.core.n_tables, 0,
                                capabilities, xid=msg.xid))

    async def _queue_config(self, conn: OfConnection, msg: QueueGetConfigRequest) -> None:
        # No port has queues; the port itself must exist (or be ANY).
        if msg.port != a.OFPP_ANY and msg.port not in {p.port_no for p in self.core.ports()}:
            raise OfpError(OFPET_QUEUE_OP_FAILED, OFPQOFC_BAD_PORT, f"port {msg.port}")
        conn.send(QueueGetConfigReply(msg.port, xid=msg.xid))

    async def _get_config(self, conn: OfConnection, msg: GetConfigRequest) -> None:
        conn.send(GetConfigReply(self.frag_flags, conn.miss_send_len, xid=msg.xid))

    async def _set_config(self, conn: OfConnection, msg: SetConfig) -> None:
        # Only normal fragment handling exists in the datapath.
        if msg.flags != c.OFPC_FRAG_NORMAL:
            raise OfpError(OFPET_SWITCH_CONFIG_FAILED, OFPSCFC_BAD_FLAGS,
                           f"fragment handling 0x{msg.flags:x} unsupported")
        conn.miss_send_len = msg.miss_send_len

    async def _table_mod(self, conn: OfConnection, msg: TableMod) -> None:
        # OpenFlow 1.3 table config has only deprecated bits: nothing to do.
        if msg.table_id >= self.core.n_tables and msg.table_id != OFPTT_ALL:
            raise OfpError(OFPET_TABLE_MOD_FAILED, OFPTMFC_BAD_TABLE, f"table {msg.table_id}")
        if msg.config & ~c.OFPTC_DEPRECATED_MASK:
            raise OfpError(OFPET_TABLE_MOD_FAILED, OFPTMFC_BAD_CONFIG, f"config {msg.config}")

    async def _port_mod(self, conn: OfConnection, msg: PortMod) -> None:
        # Optional in SwitchCore: a core without it does not support PORT_MOD.
        port_mod = getattr(self.core, "port_mod", None)
        if port_mod is None:
            raise _bad_request(OFPBRC_BAD_TYPE, "PORT_MOD not supported")
        port_mod(msg.port_no, msg.hw_addr, msg.config, msg.mask)
        if msg.mask & OFPPC_PORT_DOWN and self.port_admin_hook is not None:
            try:
                result = self.port_admin_hook(msg.port_no, not msg.config & OFPPC_PORT_DOWN)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # the port's config changed; only the netdev lags
                log.exception("%s: taking port %d's netdev up or down failed",
                              self.core.name, msg.port_no)

    async def _group_mod(self, conn: OfConnection, msg: GroupModMessage) -> None:
        group_mod = getattr(self.core, "group_mod", None)
        if group_mod is None:  # GROUP_FEATURES said: room for no groups
            if msg.gm.command == OFPGC_DELETE:
                return  # deleting from an empty group table is a no-op
            raise OfpError(OFPET_GROUP_MOD_FAILED, OFPGMFC_OUT_OF_GROUPS, "no group support")
        group_mod(msg.gm)

    async def _meter_mod(self, conn: OfConnection, msg: MeterModMessage) -> None:
        meter_mod = getattr(self.core, "meter_mod", None)
        if meter_mod is None:  # METER_FEATURES said: max_meter 0
            if msg.mm.command == OFPMC_DELETE:
                return
            raise OfpError(OFPET_METER_MOD_FAILED, OFPMMFC_OUT_OF_METERS, "no meter support")
        meter_mod(msg.mm)

    # ------------------------------------------------------------ switch changes
    async def _flow_mod(self, conn: OfConnection, msg: FlowModMessage) -> None:
        self._apply_flow_mod(msg)

    def _apply_flow_mod(self, msg: FlowModMessage) -> None:
        self.core.flow_mod(msg.fm)
        if msg.fm.buffer_id != OFP_NO_BUFFER:
            raise _bad_request(OFPBRC_BUFFER_UNKNOWN, "this switch buffers no packets")

    async def _packet_out(self, conn: OfConnection, msg: PacketOut) -> None:
        if msg.buffer_id != OFP_NO_BUFFER:
            raise _bad_request(OFPBRC_BUFFER_UNKNOWN, "this switch buffers no packets")
        port = msg.in_port
        if not (0 < port <= a.OFPP_MAX
                or port in (a.OFPP_LOCAL, a.OFPP_CONTROLLER, a.OFPP_ANY)):
            raise _bad_request(OFPBRC_BAD_PORT, f"in_port 0x{port:x}")
        self.core.packet_out(port, msg.actions, msg.data)

    async def _barrier(self, conn: OfConnection, msg: BarrierRequest) -> None:
        await self.core.barrier()
        conn.send(BarrierReply(xid=msg.xid))

    # ------------------------------------------------------------ roles and async
    async def _role(self, conn: OfConnection, msg: RoleRequest) -> None:
        role, generation = self.arbiter.request(conn, msg.role, msg.generation_id,
                                                self.peers())
        conn.send(RoleReply(role, generation, xid=msg.xid))

    async def _get_async(self, conn: OfConnection, msg: GetAsyncRequest) -> None:
        m = conn.async_masks
        conn.send(GetAsyncReply(m.packet_in, m.port_status, m.flow_removed, xid=msg.xid))

    async def _set_async(self, conn: OfConnection, msg: SetAsync) -> None:
        conn.async_masks.packet_in = msg.packet_in_mask
        conn.async_masks.port_status = msg.port_status_mask
        conn.async_masks.flow_removed = msg.flow_removed_mask
        conn.async_set_by_peer = True

    # ------------------------------------------------------------ multipart
    async def _multipart(self, conn: OfConnection, msg: MultipartRequest) -> None:
        key = (msg.xid, msg.mp_type)
        if key not in conn.multipart_parts and \
                len(conn.multipart_parts) >= MULTIPART_PENDING_LIMIT:
            raise _bad_request(OFPBRC_MULTIPART_BUFFER_OVERFLOW, "too many partial requests")
        parts = conn.multipart_parts.setdefault(key, [])
        parts.append(msg.body)
        if sum(map(len, parts)) > MULTIPART_REQUEST_LIMIT:
            del conn.multipart_parts[key]
            raise _bad_request(OFPBRC_MULTIPART_BUFFER_OVERFLOW, "request too large")
        if msg.flags & c.OFPMPF_REQ_MORE:
            return
        body = b"".join(conn.multipart_parts.pop(key))
        items = self._multipart_items(msg.mp_type, body)
        for reply in mp.split_reply(msg.mp_type, items, msg.xid):
            conn.send(reply)

    def _multipart_items(self, mp_type: int, body: bytes) -> list[bytes]:
        core = self.core
        if mp_type in (c.OFPMP_DESC, c.OFPMP_TABLE, c.OFPMP_PORT_DESC,
                       c.OFPMP_GROUP_FEATURES, c.OFPMP_METER_FEATURES, c.OFPMP_GROUP_DESC):
            if body:
                raise _bad_request(OFPBRC_BAD_LEN, "this request has no body")
        if mp_type == c.OFPMP_DESC:
            return [mp.encode_desc(mp.Desc(
                mfr_desc="ovsbpfd", hw_desc="eBPF on Linux TC",
                sw_desc=ovsbpfd.__version__, serial_num="None",
                dp_desc=getattr(core, "dp_desc", None) or "None"))]
        if mp_type in (c.OFPMP_FLOW, c.OFPMP_AGGREGATE):
            req = mp.decode_flow_stats_request(body)
            if req.table_id != OFPTT_ALL and req.table_id >= core.n_tables:
                raise _bad_request(OFPBRC_BAD_TABLE_ID, f"table {req.table_id}")
            entries = core.flow_stats(req)
            if mp_type == c.OFPMP_FLOW:
                return [mp.encode_flow_stats(ms_precision(e)) for e in entries]
            return [mp.encode_aggregate_reply(sum(e.packet_count for e in entries),
                                              sum(e.byte_count for e in entries),
                                              len(entries))]
        if mp_type == c.OFPMP_TABLE:
            return [mp.encode_table_stats(ts) for ts in core.table_stats()]
        if mp_type == c.OFPMP_PORT_STATS:
            port_no = mp.decode_port_stats_request(body)
            if OVS_PORT_LIMIT <= port_no < a.OFPP_MAX:  # as ovs-vswitchd's 16-bit ports
                raise OfpError(OFPET_BAD_ACTION, OFPBAC_BAD_OUT_PORT, f"port {port_no:#x}")
            if port_no != a.OFPP_ANY and port_no not in {p.port_no for p in core.ports()}:
                return []  # ovs-vswitchd answers an unknown port with no stats
            return [encode_port_stats(ms_precision(st)) for st in core.port_stats(port_no)]
        if mp_type == c.OFPMP_PORT_DESC:
            return [encode_port(p) for p in core.ports()]
        if mp_type == c.OFPMP_TABLE_FEATURES:
            if body:
                raise OfpError(OFPET_TABLE_FEATURES_FAILED, OFPTFFC_EPERM,
                               "table features cannot be changed")
            return list(table_features_items(core.n_tables))
        if mp_type in GROUP_METER_MULTIPARTS:
            return self._group_meter_items(mp_type, body)
        if mp_type == c.OFPMP_EXPERIMENTER:
            raise _bad_request(OFPBRC_BAD_EXPERIMENTER, "experimenter multipart")
        raise _bad_request(OFPBRC_BAD_MULTIPART, f"multipart type {mp_type}")

    def _group_meter_items(self, mp_type: int, body: bytes) -> list[bytes]:
        """Group and meter multiparts; a core without them has none."""
        core = self.core
        if mp_type == c.OFPMP_GROUP_FEATURES:
            return [GROUP_FEATURES if hasattr(core, "group_mod") else NO_GROUP_FEATURES]
        if mp_type == c.OFPMP_METER_FEATURES:
            # A core may say what its datapath takes: meter_features() gives
            # (max_meter, band_types bitmap, capabilities, max_bands, max_color).
            features = getattr(core, "meter_features", None)
            if features is not None:
                return [struct.pack("!IIIBB2x", *features())]
            return [METER_FEATURES if hasattr(core, "meter_mod") else NO_METER_FEATURES]
        if mp_type == c.OFPMP_GROUP_DESC:
            return [gmc.encode_group_desc(g) for g in _optional(core, "group_desc")()]
        object_id = gmc.decode_id_request(body)
        if mp_type == c.OFPMP_GROUP:
            return [gmc.encode_group_stats(ms_precision(st))
                    for st in _optional(core, "group_stats")(object_id)]
        if mp_type == c.OFPMP_METER:
            return [gmc.encode_meter_stats(ms_precision(st))
                    for st in _optional(core, "meter_stats")(object_id)]
        if mp_type == c.OFPMP_METER_CONFIG:
            return [gmc.encode_meter_config(mm)
                    for mm in _optional(core, "meter_config")(object_id)]
        # OFPMP_QUEUE: no port has queues.
        if object_id != a.OFPP_ANY and object_id not in {p.port_no for p in core.ports()}:
            raise _bad_request(OFPBRC_BAD_PORT, f"port {object_id}")
        return []


def _optional(core: object, method: str) -> Callable:
    """A GroupMeterCore method, or one reporting no objects."""
    return getattr(core, method, None) or (lambda *args: [])


def ms_precision(record: _Timed) -> _Timed:
    """``record`` with its duration cut to whole milliseconds: ovs-vswitchd
    keeps times in ms, so its duration_nsec is always a multiple of 10**6."""
    rec: Any = record
    extra = rec.duration_nsec % 1_000_000
    return dataclasses.replace(rec, duration_nsec=rec.duration_nsec - extra) if extra else record
