"""Ask the kernel which TC filters a device's clsact qdisc still holds."""

from __future__ import annotations

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

CLSACT_INGRESS = 0xFFFFFFF2  # TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)
CLSACT_EGRESS = 0xFFFFFFF3


def has_other_filters(ifindex: int) -> bool:
    """True if any filter is left on ``ifindex``'s clsact (ingress or egress).

    Called after our own filter is detached: only an empty clsact that we
    created may be removed.  When in doubt (device gone, netlink error) say
    True, so we never remove something we cannot see.
    """
    try:
        with IPRoute() as ipr:
            for parent in (CLSACT_INGRESS, CLSACT_EGRESS):
                if tuple(ipr.get_filters(index=ifindex, parent=parent)):
                    return True
    except (NetlinkError, OSError):
        return True
    return False
