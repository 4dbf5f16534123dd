"""Makes the real ofproto objects of a bridge for ``BridgeSet``.

Kept apart from the reconciler so that it depends on ofproto only through
``create_bridge``/``start_connmgr``.
"""

from __future__ import annotations

from typing import Any


class OfprotoFactory:
    """One ``OfprotoBridge`` and one ``ConnectionManager`` per bridge."""

    def __init__(self, backer: Any, rundir: str) -> None:
        self.backer = backer
        self.rundir = rundir

    def create_bridge(self, name: str, datapath_id: int, fail_mode: str) -> Any:
        from ovsbpfd.ofproto.bridge import OfprotoBridge

        return OfprotoBridge(self.backer, name, datapath_id, fail_mode=fail_mode)

    async def start_connmgr(self, bridge: Any) -> Any:
        from ovsbpfd.ofproto.openflow.connmgr import ConnectionManager

        connmgr = ConnectionManager(bridge, self.rundir)
        await connmgr.start()
        # Fail modes depend on whether controllers are configured and connected.
        watch = getattr(bridge, "watch_controllers", None)
        if watch is not None:
            watch(connmgr)
        return connmgr
