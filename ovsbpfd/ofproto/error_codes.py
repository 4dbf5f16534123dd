"""OpenFlow 1.3 error codes the switch core raises (ofp_*_code enums).

Kept for the core's ``error_codes as ec`` imports; every number is defined
once, in ``ovsbpfd.ofproto.ofp_errors``.
"""

from ovsbpfd.ofproto.ofp_errors import *  # noqa: F403 (re-export of every number)
