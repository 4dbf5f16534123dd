"""What the front end adds to the error numbers: the size limit of an
OFPT_ERROR and a small constructor.

The numbers themselves live in ``ovsbpfd.ofproto.ofp_errors`` and
``OfpError`` in ``ovsbpfd.ofproto.types``; both are re-exported here so that
codec modules need one import line.
"""

from __future__ import annotations

from ovsbpfd.ofproto.ofp_errors import *  # noqa: F403 (re-export of every number)
from ovsbpfd.ofproto.ofp_errors import OFPBRC_BAD_LEN, OFPET_BAD_REQUEST, error_name
from ovsbpfd.ofproto.types import OfpError

__all__ = ["OfpError", "error_name", "ERROR_MSG_MAX", "bad_len"]

# An OFPT_ERROR quotes the whole failed request, as ovs-vswitchd does (the
# spec asks for at least 64 bytes), cut only where the 16-bit message length
# runs out: the whole ERROR is at most this long.
ERROR_MSG_MAX = 0xFFFF


def bad_len(message: str = "bad length") -> OfpError:
    return OfpError(OFPET_BAD_REQUEST, OFPBRC_BAD_LEN, message)
