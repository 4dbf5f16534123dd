"""Ask the kernel which TC filters a device's clsact qdisc still holds."""

from __future__ import annotations

import threading

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
    answer = [True]

    def query() -> None:
        try:
            with IPRoute() as ipr:
                answer[0] = any(tuple(ipr.get_filters(index=ifindex, parent=parent))
                                for parent in (CLSACT_INGRESS, CLSACT_EGRESS))
        except (NetlinkError, OSError, RuntimeError):
            answer[0] = True

    # pyroute2's synchronous API refuses to run on a thread whose asyncio
    # loop is running (the daemon's), so ask from a short-lived thread.
    worker = threading.Thread(target=query, name="tc-filter-query")
    worker.start()
    worker.join()
    return answer[0]
