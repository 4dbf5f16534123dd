"""Bundles for OpenFlow 1.3: the ONF extension (EXT-230) that ovs-ofctl --bundle uses.

A bundle collects FLOW_MODs on one connection and commits them all or none.
The messages travel as OFPT_EXPERIMENTER with the ONF experimenter id:
exp_type 2300 carries ``ofp_bundle_ctrl_msg`` (open/close/commit/discard and
their replies), exp_type 2301 carries ``ofp_bundle_add_msg`` (one whole
inner message).  Errors are experimenter errors whose exp_type is the
bundle failure code (2300 + the OpenFlow 1.4 OFPBFC_* number), as OVS sends.

What a bundle may hold and when it fails follows ovs-vswitchd: the inner
message must carry the ADD's xid; a bad or unsupported inner message is
refused without touching the bundle; adding to a closed bundle or with other
flags than it was opened with discards the bundle; a
failing commit reports the inner message's own error (with its xid) and then
OFPBFC_MSG_FAILED, and applies nothing.  The commit applies the FLOW_MODs in
order, so each sees the ones before it: CHECK_OVERLAP refuses a flow that
overlaps an earlier flow of the same bundle, as in ovs-vswitchd.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ovsbpfd.ofproto.ofp_errors import (
    OFPBFC_BAD_FLAGS,
    OFPBFC_BAD_ID,
    OFPBFC_BAD_TYPE,
    OFPBFC_BUNDLE_CLOSED,
    OFPBFC_EPERM,
    OFPBFC_MSG_BAD_LEN,
    OFPBFC_MSG_BAD_XID,
    OFPBFC_MSG_TOO_MANY,
    OFPBFC_MSG_UNSUP,
    OFPBFC_OUT_OF_BUNDLES,
    OFPET_EXPERIMENTER,
    ONF_BUNDLE_ERROR_BASE,
)
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow.header import HEADER, OFP_HEADER_LEN
from ovsbpfd.ofproto.openflow.messages import (
    Experimenter,
    FlowModMessage,
    OfpMessage,
    decode_message,
)
from ovsbpfd.ofproto.switch_api import SwitchCore
from ovsbpfd.ofproto.types import BatchFailed, FlowMod, OfpError

ONF_EXPERIMENTER_ID = 0x4F4E4600
ONFT_BUNDLE_CONTROL = 2300
ONFT_BUNDLE_ADD_MESSAGE = 2301

# ofp_bundle_ctrl_type
OPEN_REQUEST, OPEN_REPLY, CLOSE_REQUEST, CLOSE_REPLY = 0, 1, 2, 3
COMMIT_REQUEST, COMMIT_REPLY, DISCARD_REQUEST, DISCARD_REPLY = 4, 5, 6, 7
REPLY_TO = {OPEN_REQUEST: OPEN_REPLY, CLOSE_REQUEST: CLOSE_REPLY,
            COMMIT_REQUEST: COMMIT_REPLY, DISCARD_REQUEST: DISCARD_REPLY}
# ofp_bundle_flags
OFPBF_ATOMIC = 1 << 0
OFPBF_ORDERED = 1 << 1
KNOWN_FLAGS = OFPBF_ATOMIC | OFPBF_ORDERED


# A connection may hold this many open bundles of this many messages each.
MAX_BUNDLES = 16
MAX_MESSAGES = 1 << 18

BUNDLE_CTRL = struct.Struct("!IHH")  # bundle_id, type, flags
BUNDLE_ADD = struct.Struct("!I2xH")  # bundle_id, pad, flags


class ExperimenterError(OfpError):
    """An OFPET_EXPERIMENTER error: ``code`` is the exp_type."""

    def __init__(self, exp_type: int, experimenter: int, message: str = "") -> None:
        super().__init__(OFPET_EXPERIMENTER, exp_type, message)
        self.experimenter = experimenter


def bundle_error(code: int, message: str) -> ExperimenterError:
    return ExperimenterError(ONF_BUNDLE_ERROR_BASE + code, ONF_EXPERIMENTER_ID, message)


class InnerMessageFailed(Exception):
    """A committed message failed: ``error`` is its own error, ``xid`` its xid."""

    def __init__(self, error: OfpError, xid: int, add_bytes: bytes) -> None:
        super().__init__(str(error))
        self.error = error
        self.xid = xid
        self.add_bytes = add_bytes


def is_bundle_message(msg: Experimenter) -> bool:
    return msg.experimenter == ONF_EXPERIMENTER_ID and msg.exp_type in (
        ONFT_BUNDLE_CONTROL, ONFT_BUNDLE_ADD_MESSAGE)


def control_reply(bundle_id: int, ctrl_type: int, xid: int) -> Experimenter:
    """The reply to a control request (ovs-vswitchd answers with flags 0)."""
    return Experimenter(ONF_EXPERIMENTER_ID, ONFT_BUNDLE_CONTROL,
                        BUNDLE_CTRL.pack(bundle_id, REPLY_TO[ctrl_type], 0), xid=xid)


@dataclass
class Entry:
    """One added message: the decoded FLOW_MOD and the ADD that carried it."""

    fm: FlowMod
    xid: int
    add_bytes: bytes


@dataclass
class Bundle:
    flags: int
    closed: bool = False
    entries: list[Entry] = field(default_factory=list)


Committer = Callable[[Sequence[FlowMod]], None]


class BundleTable:
    """The open bundles of one connection and the ONF messages that drive them."""

    def __init__(self) -> None:
        self.bundles: dict[int, Bundle] = {}

    def control(self, msg: Experimenter, commit: Committer) -> Experimenter:
        """Handle a BUNDLE_CONTROL request; return the reply or raise an error."""
        if len(msg.data) < BUNDLE_CTRL.size:
            raise bundle_error(OFPBFC_MSG_BAD_LEN, "bundle control too short")
        bundle_id, ctrl_type, flags = BUNDLE_CTRL.unpack_from(msg.data)
        if ctrl_type not in REPLY_TO:
            raise bundle_error(OFPBFC_BAD_TYPE, f"bundle control type {ctrl_type}")
        if flags & ~KNOWN_FLAGS:
            self.bundles.pop(bundle_id, None)
            raise bundle_error(OFPBFC_BAD_FLAGS, f"bundle flags 0x{flags:x}")
        if ctrl_type == OPEN_REQUEST:
            if self.bundles.pop(bundle_id, None) is not None:
                raise bundle_error(OFPBFC_BAD_ID, f"bundle {bundle_id} already open")
            if len(self.bundles) >= MAX_BUNDLES:
                raise bundle_error(OFPBFC_OUT_OF_BUNDLES, "too many open bundles")
            self.bundles[bundle_id] = Bundle(flags)
            return control_reply(bundle_id, ctrl_type, msg.xid)
        bundle = self.bundles.get(bundle_id)
        if bundle is None:
            raise bundle_error(OFPBFC_BAD_ID, f"no bundle {bundle_id}")
        if ctrl_type == DISCARD_REQUEST:
            del self.bundles[bundle_id]
            return control_reply(bundle_id, ctrl_type, msg.xid)
        if flags != bundle.flags:
            del self.bundles[bundle_id]
            raise bundle_error(OFPBFC_BAD_FLAGS, "flags differ from the open request")
        if ctrl_type == CLOSE_REQUEST:
            if bundle.closed:
                del self.bundles[bundle_id]
                raise bundle_error(OFPBFC_BUNDLE_CLOSED, f"bundle {bundle_id} is closed")
            bundle.closed = True
            return control_reply(bundle_id, ctrl_type, msg.xid)
        # COMMIT: all or nothing, and the bundle is gone either way.
        del self.bundles[bundle_id]
        try:
            commit([entry.fm for entry in bundle.entries])
        except BatchFailed as failed:
            entry = bundle.entries[failed.index]
            raise InnerMessageFailed(failed.error, entry.xid, entry.add_bytes) from None
        return control_reply(bundle_id, ctrl_type, msg.xid)

    def add(self, msg: Experimenter, raw: bytes, role_allows: bool,
            validate: Callable[[FlowMod], None] = lambda fm: None) -> None:
        """Handle a BUNDLE_ADD_MESSAGE (no reply on success).

        ``validate`` raises the error a FLOW_MOD would get on its own, so that
        a bad one is refused when added (as in OVS), not at commit."""
        if len(msg.data) < BUNDLE_ADD.size + OFP_HEADER_LEN:
            raise bundle_error(OFPBFC_MSG_BAD_LEN, "bundle add too short")
        bundle_id, flags = BUNDLE_ADD.unpack_from(msg.data)
        inner_bytes = msg.data[BUNDLE_ADD.size:]
        version, inner_type, length, inner_xid = HEADER.unpack_from(inner_bytes)
        if length < OFP_HEADER_LEN or length > len(inner_bytes) or version != c.OFP_VERSION:
            raise bundle_error(OFPBFC_MSG_BAD_LEN, "inner message length or version")
        if inner_type != c.OFPT_FLOW_MOD:
            raise bundle_error(OFPBFC_MSG_UNSUP, f"message type {inner_type} in a bundle")
        if inner_xid != msg.xid:
            raise bundle_error(OFPBFC_MSG_BAD_XID, "inner xid differs from the add's")
        if not role_allows:
            raise bundle_error(OFPBFC_EPERM, "slave may not modify the switch")
        inner: OfpMessage = decode_message(bytes(inner_bytes[:length]))
        assert isinstance(inner, FlowModMessage)
        validate(inner.fm)
        bundle = self.bundles.get(bundle_id)
        if bundle is None:  # an ADD opens the bundle implicitly, as in OVS
            if len(self.bundles) >= MAX_BUNDLES:
                raise bundle_error(OFPBFC_OUT_OF_BUNDLES, "too many open bundles")
            bundle = self.bundles[bundle_id] = Bundle(flags)
        # Refusals above leave the bundle as it was; these discard it.
        if flags != bundle.flags:
            del self.bundles[bundle_id]
            raise bundle_error(OFPBFC_BAD_FLAGS, "flags differ from the open request")
        if bundle.closed:
            del self.bundles[bundle_id]
            raise bundle_error(OFPBFC_BUNDLE_CLOSED, f"bundle {bundle_id} is closed")
        if len(bundle.entries) >= MAX_MESSAGES:
            del self.bundles[bundle_id]
            raise bundle_error(OFPBFC_MSG_TOO_MANY, "bundle is full")
        bundle.entries.append(Entry(inner.fm, inner_xid, raw))


def commit_atomically(core: SwitchCore, fms: Sequence[FlowMod]) -> None:
    """Apply ``fms`` in order on ``core``, all of them or (BatchFailed) none."""
    if fms:
        core.flow_mod_batch(list(fms))


def validate_flow_mod(core: SwitchCore, fm: FlowMod) -> None:
    """The core's checks of one FLOW_MOD, run when it is added to a bundle."""
    core.check_flow_mod(fm)
