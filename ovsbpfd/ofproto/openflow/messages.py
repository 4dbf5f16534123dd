"""OpenFlow 1.3 messages as dataclasses, with encode and checked decode.

``encode_message(msg)`` gives the wire bytes; ``decode_message(data)`` takes
one whole message (header included) and returns the dataclass, or raises
``OfpError`` with the code the spec gives for what is wrong with it.
Multipart bodies stay bytes here; ``multipart.py`` gives them meaning.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.ofp_errors import (
    OFPBAC_BAD_OUT_PORT,
    OFPBAC_MATCH_INCONSISTENT,
    OFPBRC_BAD_LEN,
    OFPBRC_BAD_TYPE,
    OFPBRC_BAD_VERSION,
    OFPET_BAD_ACTION,
    OFPET_BAD_REQUEST,
    OFPET_FLOW_MOD_FAILED,
    OFPFMFC_BAD_COMMAND,
    OFPFMFC_BAD_FLAGS,
    OFPFMFC_BAD_TABLE_ID,
)
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow.actions_codec import (
    INSTRUCTION_CACHE_MAX_BYTES,
    decode_actions,
    decode_instructions,
    encode_actions,
    encode_instructions,
    set_field_prereqs_missing,
)
from ovsbpfd.ofproto.openflow.group_meter_codec import (
    decode_group_mod,
    decode_meter_mod,
    encode_group_mod,
    encode_meter_mod,
)
from ovsbpfd.ofproto.openflow.header import HEADER, OFP_HEADER_LEN, pack_message, pad8
from ovsbpfd.ofproto.openflow.oxm import decode_match, decode_match_planned, encode_match
from ovsbpfd.ofproto.openflow.port_codec import decode_port, encode_port
from ovsbpfd.ofproto.openflow.reader import Reader
from ovsbpfd.ofproto.types import (
    OFPFC_ADD,
    OFPFC_DELETE_STRICT,
    OFPFC_MODIFY,
    OFPFC_MODIFY_STRICT,
    OFPGC_ADD,
    OFPMC_ADD,
    OFPTT_ALL,
    FlowMod,
    FlowRemoved,
    GroupMod,
    MeterMod,
    OfpError,
    OfPort,
    PacketIn,
)

ALL_FLOW_MOD_FLAGS = 0x1F


@dataclass
class OfpMessage:
    """Base of every message; ``xid`` is the transaction id."""

    MSG_TYPE: ClassVar[int] = -1
    xid: int = field(default=0, kw_only=True)

    def encode_body(self) -> bytes:
        return b""

    @classmethod
    def decode_body(cls, reader: Reader) -> OfpMessage:
        reader.expect_end()
        return cls()


def _struct_message(msg_type: int, fmt: str, names: tuple[str, ...]):
    """Class decorator for messages whose body is one fixed struct."""
    packer = struct.Struct(fmt)

    def wrap(cls):
        cls.MSG_TYPE = msg_type

        def encode_body(self) -> bytes:
            return packer.pack(*(getattr(self, n) for n in names))

        @classmethod
        def decode_body(klass, reader: Reader):
            values = reader.unpack(packer)
            reader.expect_end()
            return klass(**dict(zip(names, values, strict=True)))

        cls.encode_body = encode_body
        cls.decode_body = decode_body
        return cls
    return wrap


# ---------------------------------------------------------------- symmetric
HELLO_ELEM = struct.Struct("!HH")


@dataclass
class Hello(OfpMessage):
    """HELLO; ``bitmap`` is the version bitmap element (bit n = version n),
    None when the peer sent no such element."""

    MSG_TYPE: ClassVar[int] = c.OFPT_HELLO
    bitmap: int | None = 1 << c.OFP_VERSION

    def encode_body(self) -> bytes:
        if self.bitmap is None:
            return b""
        words = []
        bitmap = self.bitmap
        while bitmap or not words:
            words.append(bitmap & 0xFFFFFFFF)
            bitmap >>= 32
        length = HELLO_ELEM.size + 4 * len(words)
        return (HELLO_ELEM.pack(c.OFPHET_VERSIONBITMAP, length)
                + struct.pack(f"!{len(words)}I", *words) + bytes(pad8(length)))

    @classmethod
    def decode_body(cls, reader: Reader) -> Hello:
        bitmap = None
        while reader.remaining >= HELLO_ELEM.size:
            elem_type, length = reader.unpack(HELLO_ELEM)
            if length < HELLO_ELEM.size:
                raise reader.error(f"hello element length {length}")
            payload = reader.take(min(length - HELLO_ELEM.size, reader.remaining))
            reader.take(min(pad8(length), reader.remaining))
            if elem_type == c.OFPHET_VERSIONBITMAP:
                bitmap = 0
                for i in range(len(payload) // 4):
                    bitmap |= struct.unpack_from("!I", payload, 4 * i)[0] << (32 * i)
        # Unknown elements and trailing bytes are ignored, as the spec asks.
        return cls(bitmap)


@dataclass
class Error(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_ERROR
    type: int = 0
    code: int = 0
    data: bytes = b""

    def encode_body(self) -> bytes:
        return struct.pack("!HH", self.type, self.code) + self.data

    @classmethod
    def decode_body(cls, reader: Reader) -> Error:
        err_type, code = reader.unpack(struct.Struct("!HH"))
        return cls(err_type, code, reader.rest())


@dataclass
class EchoRequest(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_ECHO_REQUEST
    data: bytes = b""

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode_body(cls, reader: Reader) -> OfpMessage:
        return cls(reader.rest())


@dataclass
class EchoReply(EchoRequest):
    MSG_TYPE: ClassVar[int] = c.OFPT_ECHO_REPLY


@dataclass
class Experimenter(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_EXPERIMENTER
    experimenter: int = 0
    exp_type: int = 0
    data: bytes = b""

    def encode_body(self) -> bytes:
        return struct.pack("!II", self.experimenter, self.exp_type) + self.data

    @classmethod
    def decode_body(cls, reader: Reader) -> Experimenter:
        experimenter, exp_type = reader.unpack(struct.Struct("!II"))
        return cls(experimenter, exp_type, reader.rest())


# ---------------------------------------------------------------- controller -> switch
@dataclass
class FeaturesRequest(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_FEATURES_REQUEST


@_struct_message(c.OFPT_FEATURES_REPLY, "!QIBB2xII",
                 ("datapath_id", "n_buffers", "n_tables", "auxiliary_id",
                  "capabilities", "reserved"))
@dataclass
class FeaturesReply(OfpMessage):
    datapath_id: int = 0
    n_buffers: int = 0
    n_tables: int = 254
    auxiliary_id: int = 0
    capabilities: int = 0
    reserved: int = 0


@dataclass
class GetConfigRequest(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_GET_CONFIG_REQUEST


@_struct_message(c.OFPT_GET_CONFIG_REPLY, "!HH", ("flags", "miss_send_len"))
@dataclass
class GetConfigReply(OfpMessage):
    flags: int = 0
    miss_send_len: int = c.OFP_DEFAULT_MISS_SEND_LEN


@_struct_message(c.OFPT_SET_CONFIG, "!HH", ("flags", "miss_send_len"))
@dataclass
class SetConfig(OfpMessage):
    flags: int = 0
    miss_send_len: int = c.OFP_DEFAULT_MISS_SEND_LEN


FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")


@dataclass
class FlowModMessage(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_FLOW_MOD
    fm: FlowMod = field(default_factory=lambda: FlowMod(OFPFC_ADD))

    def encode_body(self) -> bytes:
        fm = self.fm
        return (FLOW_MOD.pack(fm.cookie, fm.cookie_mask, fm.table_id, fm.command,
                              fm.idle_timeout, fm.hard_timeout, fm.priority, fm.buffer_id,
                              fm.out_port, fm.out_group, fm.flags)
                + encode_match(fm.match) + encode_instructions(fm.instructions))

    @classmethod
    def decode_body(cls, reader: Reader) -> FlowModMessage:
        (cookie, cookie_mask, table_id, command, idle, hard, priority, buffer_id,
         out_port, out_group, flags) = reader.unpack(FLOW_MOD)
        match = decode_match(reader)
        instructions = decode_instructions(reader.rest())
        if command > OFPFC_DELETE_STRICT:
            raise OfpError(OFPET_FLOW_MOD_FAILED, OFPFMFC_BAD_COMMAND, f"command {command}")
        if flags & ~ALL_FLOW_MOD_FLAGS:
            raise OfpError(OFPET_FLOW_MOD_FAILED, OFPFMFC_BAD_FLAGS, f"flags 0x{flags:x}")
        if table_id == OFPTT_ALL and command in (OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT):
            raise OfpError(OFPET_FLOW_MOD_FAILED, OFPFMFC_BAD_TABLE_ID, "table 255 on add")
        _check_instruction_actions(match, instructions)
        return cls(FlowMod(command=command, match=match, instructions=instructions,
                           table_id=table_id, priority=priority, cookie=cookie,
                           cookie_mask=cookie_mask, idle_timeout=idle, hard_timeout=hard,
                           flags=flags, buffer_id=buffer_id, out_port=out_port,
                           out_group=out_group))


def _check_instruction_actions(match: Match, instructions: tuple) -> None:
    """Flow-mod-only action rules: no output:TABLE, set-field consistent."""
    if not _needs_action_checks(instructions):
        return
    fields = dict(match.items())
    for inst in instructions:
        acts = getattr(inst, "actions", ())
        for act in acts:
            if isinstance(act, a.ActOutput) and act.port == a.OFPP_TABLE:
                raise OfpError(OFPET_BAD_ACTION, OFPBAC_BAD_OUT_PORT,
                               "output:TABLE is only valid in PACKET_OUT")
        missing = set_field_prereqs_missing(fields, acts)
        if missing:
            raise OfpError(OFPET_BAD_ACTION, OFPBAC_MATCH_INCONSISTENT,
                           f"set_field of {', '.join(missing)} without its prerequisites")


@functools.lru_cache(maxsize=4096)
def _needs_action_checks(instructions: tuple) -> bool:
    """Whether immutable, often repeated instructions hold output:TABLE or set_field."""
    return any((isinstance(act, a.ActOutput) and act.port == a.OFPP_TABLE)
               or isinstance(act, a.ActSetField)
               for inst in instructions for act in getattr(inst, "actions", ()))


_MATCH_AT = OFP_HEADER_LEN + FLOW_MOD.size
_ADDING = (OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT)


def decode_flow_mod_fast(data: bytes, xid: int) -> FlowModMessage | None:
    """A whole FLOW_MOD message (header checked) as ``decode_message`` gives
    it, read in one pass from ``data`` for the usual shapes: planned OXM
    decoding, remembered instructions, no Reader.  None when anything is
    unusual or wrong; the general decoder then decodes it or names the error."""
    if len(data) < _MATCH_AT:
        return None
    (cookie, cookie_mask, table_id, command, idle, hard, priority, buffer_id,
     out_port, out_group, flags) = FLOW_MOD.unpack_from(data, OFP_HEADER_LEN)
    if command > OFPFC_DELETE_STRICT or flags & ~ALL_FLOW_MOD_FLAGS \
            or (table_id == OFPTT_ALL and command in _ADDING):
        return None
    decoded = decode_match_planned(data, _MATCH_AT)
    if decoded is None:
        return None
    match, end = decoded
    if len(data) - end > INSTRUCTION_CACHE_MAX_BYTES:
        return None
    try:
        instructions = decode_instructions(data[end:])
    except OfpError:
        return None
    if instructions and _needs_action_checks(instructions):
        return None
    return FlowModMessage(FlowMod(command, match, instructions, table_id, priority, cookie,
                                  cookie_mask, idle, hard, flags, buffer_id, out_port,
                                  out_group), xid=xid)


PACKET_OUT = struct.Struct("!IIH6x")


@dataclass
class PacketOut(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_PACKET_OUT
    buffer_id: int = 0xFFFFFFFF
    in_port: int = a.OFPP_CONTROLLER
    actions: tuple[a.Action, ...] = ()
    data: bytes = b""

    def encode_body(self) -> bytes:
        acts = encode_actions(self.actions)
        return PACKET_OUT.pack(self.buffer_id, self.in_port, len(acts)) + acts + self.data

    @classmethod
    def decode_body(cls, reader: Reader) -> PacketOut:
        buffer_id, in_port, actions_len = reader.unpack(PACKET_OUT)
        acts = decode_actions(reader.take(actions_len))
        return cls(buffer_id, in_port, acts, reader.rest())


@dataclass
class BarrierRequest(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_BARRIER_REQUEST


@dataclass
class BarrierReply(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_BARRIER_REPLY


MULTIPART = struct.Struct("!HH4x")


@dataclass
class MultipartRequest(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_MULTIPART_REQUEST
    mp_type: int = c.OFPMP_DESC
    flags: int = 0
    body: bytes = b""

    def encode_body(self) -> bytes:
        return MULTIPART.pack(self.mp_type, self.flags) + self.body

    @classmethod
    def decode_body(cls, reader: Reader) -> OfpMessage:
        mp_type, flags = reader.unpack(MULTIPART)
        return cls(mp_type, flags, reader.rest())


@dataclass
class MultipartReply(MultipartRequest):
    MSG_TYPE: ClassVar[int] = c.OFPT_MULTIPART_REPLY


@_struct_message(c.OFPT_ROLE_REQUEST, "!I4xQ", ("role", "generation_id"))
@dataclass
class RoleRequest(OfpMessage):
    role: int = c.OFPCR_ROLE_NOCHANGE
    generation_id: int = 0


@_struct_message(c.OFPT_ROLE_REPLY, "!I4xQ", ("role", "generation_id"))
@dataclass
class RoleReply(OfpMessage):
    role: int = c.OFPCR_ROLE_EQUAL
    generation_id: int = 0


@dataclass
class GetAsyncRequest(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_GET_ASYNC_REQUEST


ASYNC_CONFIG = struct.Struct("!6I")


@dataclass
class AsyncConfig(OfpMessage):
    """Body shared by GET_ASYNC_REPLY and SET_ASYNC: each mask is a pair
    (master-or-equal, slave) of reason bitmaps."""

    MSG_TYPE: ClassVar[int] = c.OFPT_SET_ASYNC
    packet_in_mask: tuple[int, int] = (0, 0)
    port_status_mask: tuple[int, int] = (0, 0)
    flow_removed_mask: tuple[int, int] = (0, 0)

    def encode_body(self) -> bytes:
        return ASYNC_CONFIG.pack(*self.packet_in_mask, *self.port_status_mask,
                                 *self.flow_removed_mask)

    @classmethod
    def decode_body(cls, reader: Reader) -> OfpMessage:
        v = reader.unpack(ASYNC_CONFIG)
        reader.expect_end()
        return cls((v[0], v[1]), (v[2], v[3]), (v[4], v[5]))


@dataclass
class SetAsync(AsyncConfig):
    MSG_TYPE: ClassVar[int] = c.OFPT_SET_ASYNC


@dataclass
class GetAsyncReply(AsyncConfig):
    MSG_TYPE: ClassVar[int] = c.OFPT_GET_ASYNC_REPLY


@_struct_message(c.OFPT_QUEUE_GET_CONFIG_REQUEST, "!I4x", ("port",))
@dataclass
class QueueGetConfigRequest(OfpMessage):
    port: int = 0xFFFFFFFF


@dataclass
class QueueGetConfigReply(OfpMessage):
    """Carries no queue descriptions: no port of this switch has queues."""

    MSG_TYPE: ClassVar[int] = c.OFPT_QUEUE_GET_CONFIG_REPLY
    port: int = 0xFFFFFFFF

    def encode_body(self) -> bytes:
        return struct.pack("!I4x", self.port)

    @classmethod
    def decode_body(cls, reader: Reader) -> QueueGetConfigReply:
        (port,) = reader.unpack(struct.Struct("!I4x"))
        return cls(port)  # queue descriptions, if any, are ignored


@_struct_message(c.OFPT_PORT_MOD, "!I4x6s2xIII4x",
                 ("port_no", "hw_addr", "config", "mask", "advertise"))
@dataclass
class PortMod(OfpMessage):
    port_no: int = 0
    hw_addr: bytes = bytes(6)
    config: int = 0
    mask: int = 0
    advertise: int = 0


@_struct_message(c.OFPT_TABLE_MOD, "!B3xI", ("table_id", "config"))
@dataclass
class TableMod(OfpMessage):
    table_id: int = 0
    config: int = 0


@dataclass
class GroupModMessage(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_GROUP_MOD
    gm: GroupMod = field(default_factory=lambda: GroupMod(OFPGC_ADD, 0, 1))

    def encode_body(self) -> bytes:
        return encode_group_mod(self.gm)

    @classmethod
    def decode_body(cls, reader: Reader) -> GroupModMessage:
        return cls(decode_group_mod(reader))


@dataclass
class MeterModMessage(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_METER_MOD
    mm: MeterMod = field(default_factory=lambda: MeterMod(OFPMC_ADD, 0, 1))

    def encode_body(self) -> bytes:
        return encode_meter_mod(self.mm)

    @classmethod
    def decode_body(cls, reader: Reader) -> MeterModMessage:
        return cls(decode_meter_mod(reader))


# ---------------------------------------------------------------- switch -> controller
PACKET_IN = struct.Struct("!IHBBQ")


@dataclass
class PacketInMessage(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_PACKET_IN
    pi: PacketIn = field(default_factory=lambda: PacketIn(0, 0, 0, Match(), b"", 0))

    def encode_body(self) -> bytes:
        pi = self.pi
        return (PACKET_IN.pack(pi.buffer_id, pi.total_len, pi.reason, pi.table_id, pi.cookie)
                + encode_match(pi.match) + bytes(2) + pi.data)

    @classmethod
    def decode_body(cls, reader: Reader) -> PacketInMessage:
        buffer_id, total_len, reason, table_id, cookie = reader.unpack(PACKET_IN)
        match = decode_match(reader)
        reader.take(2)
        return cls(PacketIn(reason, table_id, cookie, match, reader.rest(), total_len,
                            buffer_id))


FLOW_REMOVED = struct.Struct("!QHBBIIHHQQ")


@dataclass
class FlowRemovedMessage(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_FLOW_REMOVED
    fr: FlowRemoved = field(
        default_factory=lambda: FlowRemoved(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, Match()))

    def encode_body(self) -> bytes:
        fr = self.fr
        return FLOW_REMOVED.pack(fr.cookie, fr.priority, fr.reason, fr.table_id,
                                 fr.duration_sec, fr.duration_nsec, fr.idle_timeout,
                                 fr.hard_timeout, fr.packet_count,
                                 fr.byte_count) + encode_match(fr.match)

    @classmethod
    def decode_body(cls, reader: Reader) -> FlowRemovedMessage:
        v = reader.unpack(FLOW_REMOVED)
        match = decode_match(reader)
        reader.expect_end()
        return cls(FlowRemoved(*v, match))


@dataclass
class PortStatus(OfpMessage):
    MSG_TYPE: ClassVar[int] = c.OFPT_PORT_STATUS
    reason: int = 0
    port: OfPort = field(default_factory=lambda: OfPort(0, "", bytes(6)))

    def encode_body(self) -> bytes:
        return struct.pack("!B7x", self.reason) + encode_port(self.port)

    @classmethod
    def decode_body(cls, reader: Reader) -> PortStatus:
        (reason,) = reader.unpack(struct.Struct("!B7x"))
        port = decode_port(reader)
        reader.expect_end()
        return cls(reason, port)


# ---------------------------------------------------------------- registry
MESSAGE_CLASSES: dict[int, type[OfpMessage]] = {
    cls.MSG_TYPE: cls for cls in (
        Hello, Error, EchoRequest, EchoReply, Experimenter, FeaturesRequest,
        FeaturesReply, GetConfigRequest, GetConfigReply, SetConfig, PacketInMessage,
        FlowRemovedMessage, PortStatus, PacketOut, FlowModMessage, PortMod, TableMod,
        GroupModMessage, MeterModMessage, QueueGetConfigRequest, QueueGetConfigReply,
        MultipartRequest, MultipartReply, BarrierRequest, BarrierReply, RoleRequest,
        RoleReply, GetAsyncRequest, GetAsyncReply, SetAsync,
    )
}


def encode_message(msg: OfpMessage) -> bytes:
    return pack_message(msg.MSG_TYPE, msg.xid, msg.encode_body())


def decode_message(data: bytes) -> OfpMessage:
    """Decode one complete message; ``data`` must be exactly its bytes."""
    if len(data) < OFP_HEADER_LEN:
        raise OfpError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN, "shorter than an ofp_header")
    version, msg_type, length, xid = HEADER.unpack_from(data)
    if length != len(data):
        raise OfpError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN,
                       f"header length {length} but {len(data)} bytes")
    if version != c.OFP_VERSION and msg_type != c.OFPT_HELLO:
        raise OfpError(OFPET_BAD_REQUEST, OFPBRC_BAD_VERSION, f"version {version}")
    if msg_type == c.OFPT_FLOW_MOD and version == c.OFP_VERSION:
        fast = decode_flow_mod_fast(data, xid)
        if fast is not None:
            return fast
    cls = MESSAGE_CLASSES.get(msg_type)
    if cls is None:
        raise OfpError(OFPET_BAD_REQUEST, OFPBRC_BAD_TYPE, f"message type {msg_type}")
    msg = cls.decode_body(Reader(data[OFP_HEADER_LEN:]))
    msg.xid = xid
    return msg
