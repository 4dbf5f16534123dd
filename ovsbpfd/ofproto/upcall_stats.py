"""What ``upcall/show`` reports: the datapath flow counts the once-a-second
dumps saw and how long the last dump took, kept the way OVS's udpif keeps
them (a running average halved towards each new count, and the maximum)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DumpStats:
    avg_flows: int = 0
    max_flows: int = 0
    duration_ms: int = 0

    def record(self, n_flows: int, duration_ms: int) -> None:
        """One dump saw ``n_flows`` datapath flows and took ``duration_ms``."""
        self.max_flows = max(self.max_flows, n_flows)
        self.avg_flows = (self.avg_flows + n_flows) // 2
        self.duration_ms = duration_ms


def format_upcall_show(dp_name: str, n_flows: int, stats: DumpStats, flow_limit: int,
                       n_keys: int) -> str:
    """The ``upcall/show`` text of one datapath, in OVS's layout.

    ``flow_limit`` is the datapath's flow table size (the only limit there
    is); ufids are not used; the one revalidator (the event loop's sweep)
    is listed with the flows it tracks as its keys."""
    return (f"{dp_name}:\n"
            f"  flows         : (current {n_flows}) (avg {stats.avg_flows}) "
            f"(max {stats.max_flows}) (limit {flow_limit})\n"
            f"  dump duration : {stats.duration_ms}ms\n"
            f"  ufid enabled : false\n"
            f"\n"
            f"  1: (keys {n_keys})\n")
