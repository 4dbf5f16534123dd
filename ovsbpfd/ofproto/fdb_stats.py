"""The ``fdb/stats-show`` text, laid out as ovs-vswitchd lays it out (scripts
read the numbers after the colons)."""

from __future__ import annotations

from ovsbpfd.ofproto.mac_learning import MacLearning


def format_fdb_stats(bridge_name: str, table: MacLearning) -> str:
    """Statistics of one bridge's MAC table; there are no static entries
    (``fdb/add`` is not offered), so that count is always 0."""
    stats = table.stats
    return (f'Statistics for bridge "{bridge_name}":\n'
            f"  Current/maximum MAC entries in the table: {len(table)}/{table.max_entries}\n"
            f"  Current static MAC entries in the table : 0\n"
            f"  Total number of learned MAC entries     : {stats.learned}\n"
            f"  Total number of expired MAC entries     : {stats.expired}\n"
            f"  Total number of evicted MAC entries     : {stats.evicted}\n"
            f"  Total number of port moved MAC entries  : {stats.moved}\n")
