"""What the new ovs-appctl views read from ofproto: one bridge's datapath
flows, MAC table statistics and flush, purge/flush of datapath flows, and
the upcall/show counters."""

from __future__ import annotations

import pytest

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.ofproto.mac_learning import MacLearning
from ovsbpfd.ofproto.upcall_stats import DumpStats, format_upcall_show
from tests.ofproto.core.rig import Rig, host_mac

H1, H2, H3 = (host_mac(n) for n in (1, 2, 3))


@pytest.fixture
def rig():
    """One bridge with 3 ports on its own datapath."""
    with Rig(3) as r:
        yield r


@pytest.fixture
def two_bridges():
    """br0 and br1 on one datapath, each with 2 ports."""
    br0 = Rig(2, "br0")
    br1 = Rig(2, "br1", backer=br0.backer)
    try:
        yield br0, br1
    finally:
        br1.bridge.destroy()
        br0.close()


def _ping_pair(rig: Rig, a: bytes, b: bytes) -> None:
    """a on port 1 and b on port 2 exchange one frame each way."""
    rig.send(1, pb.udp_frame(a, b, "10.0.0.1", "10.0.0.2", 1, 2))
    rig.send(2, pb.udp_frame(b, a, "10.0.0.2", "10.0.0.1", 2, 1))


def test_dpif_dump_flows_shows_only_the_bridges_flows(two_bridges) -> None:
    br0, br1 = two_bridges
    _ping_pair(br0, H1, H2)
    _ping_pair(br1, H3, H2)
    ours = br0.bridge.dump_datapath_flows().splitlines()
    assert len(ours) == 2 and len(br0.dpif.flow_dump()) == 4
    in_ports = {line.split(",", 1)[0] for line in ours}
    assert in_ports == {f"in_port({br0.dp_port(1)})", f"in_port({br0.dp_port(2)})"}
    # the backer's whole-datapath view still has all of them
    assert len(br0.backer.dump_datapath_flows().splitlines()) == 4


def test_dpif_dump_flows_names_ports_by_name(two_bridges) -> None:
    br0, _br1 = two_bridges
    _ping_pair(br0, H1, H2)
    named = br0.bridge.dump_datapath_flows(names=True)
    assert "in_port(br0p1)," in named and "actions:br0p2\n" in named
    assert "in_port(br0p2)," in named and "actions:br0p1\n" in named
    numbered = br0.bridge.dump_datapath_flows()
    assert f"in_port({br0.dp_port(1)})," in numbered and "br0p" not in numbered
    verbose = br0.bridge.dump_datapath_flows(verbose=True, names=True)
    assert "eth_type(0x0000/0x0000)" in verbose  # -m shows the wildcarded fields too
    assert "eth_type" not in named


def test_mac_table_counts_learned_moved_expired_evicted() -> None:
    table = MacLearning(aging_s=10, max_entries=2)
    table.learn(0, H1, 1, now=0)
    table.learn(0, H2, 2, now=1)
    table.learn(0, H1, 1, now=2)  # refresh: nothing counted
    table.learn(0, H1, 3, now=3)  # moved
    table.learn(0, H3, 1, now=4)  # full: H2 (least recently seen) evicted
    assert (table.stats.learned, table.stats.moved, table.stats.evicted) == (3, 1, 1)
    assert table.expire(now=100) and table.stats.expired == 2
    table.learn(0, H2, 2, now=101)
    table.flush()  # a flush is not an expiry
    assert (table.stats.learned, table.stats.expired, len(table)) == (4, 2, 0)
    table.clear_stats()
    assert (table.stats.learned, table.stats.moved, table.stats.expired,
            table.stats.evicted) == (0, 0, 0, 0)


def test_fdb_stats_show_text(rig: Rig) -> None:
    _ping_pair(rig, H1, H2)
    assert rig.bridge.fdb_stats_show() == (
        'Statistics for bridge "br0":\n'
        "  Current/maximum MAC entries in the table: 2/8192\n"
        "  Current static MAC entries in the table : 0\n"
        "  Total number of learned MAC entries     : 2\n"
        "  Total number of expired MAC entries     : 0\n"
        "  Total number of evicted MAC entries     : 0\n"
        "  Total number of port moved MAC entries  : 0\n")
    rig.bridge.fdb_stats_clear()
    assert "learned MAC entries     : 0\n" in rig.bridge.fdb_stats_show()
    assert "table: 2/8192" in rig.bridge.fdb_stats_show()  # entries stay


def test_fdb_flush_forgets_macs_and_fixes_flows(rig: Rig) -> None:
    _ping_pair(rig, H1, H2)
    rig.all_received()
    unicast = [f for f in rig.dpif.flow_dump() if f.key.eth_dst == H2]
    assert [len(f.actions) for f in unicast] == [1]
    rig.bridge.fdb_flush()
    rig.settle()
    assert len(rig.bridge.mac) == 0
    # the flow to H2 no longer knows where H2 is: removed or flooding
    rig.send(1, pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2))
    got = {p: len(f) for p, f in rig.all_received().items()}
    assert got == {1: 0, 2: 1, 3: 1}


def test_purge_deletes_flows_and_credits_rules(rig: Rig) -> None:
    _ping_pair(rig, H1, H2)
    flow = next(f for f in rig.dpif.flow_dump() if f.key.eth_dst == H2)
    for _ in range(5):  # hits in the datapath only
        rig.dpif.inject(rig.dp_port(1), pb.udp_frame(H1, H2, "10.0.0.1", "10.0.0.2", 1, 2))
    assert rig.dpif.flow_get(flow.key, flow.mask).stats.packets == 5
    (rule,) = rig.bridge.pipeline.rules()
    before = rule.packet_count
    assert rig.backer.purge_flows() == 2
    assert rig.dpif.flow_dump() == [] and len(rig.backer.revalidator) == 0
    assert rule.packet_count == before + 5


def test_flush_datapath_forgets_records_and_flows_come_back(rig: Rig) -> None:
    _ping_pair(rig, H1, H2)
    rig.backer.flush_datapath_flows()
    assert rig.dpif.flow_dump() == [] and len(rig.backer.revalidator) == 0
    misses = rig.misses()
    _ping_pair(rig, H1, H2)
    assert rig.misses() == misses + 2 and len(rig.dpif.flow_dump()) == 2
    assert len(rig.backer.revalidator) == 2


def test_dump_stats_average_and_maximum() -> None:
    stats = DumpStats()
    for n in (4, 8, 0):
        stats.record(n, 3)
    assert (stats.avg_flows, stats.max_flows, stats.duration_ms) == (2, 8, 3)


def test_upcall_show_after_a_sweep(rig: Rig) -> None:
    _ping_pair(rig, H1, H2)
    rig.backer.sweep()
    text = rig.backer.upcall_show()
    assert text.startswith("dummy@ovs-system:\n  flows         : (current 2) (avg 1) "
                           "(max 2) (limit 65536)\n  dump duration : ")
    assert text.endswith("ms\n  ufid enabled : false\n\n  1: (keys 2)\n")


def test_upcall_show_layout() -> None:
    assert format_upcall_show("bpf@ovs-system", 3, DumpStats(1, 5, 2), 65536, 3) == (
        "bpf@ovs-system:\n"
        "  flows         : (current 3) (avg 1) (max 5) (limit 65536)\n"
        "  dump duration : 2ms\n"
        "  ufid enabled : false\n"
        "\n"
        "  1: (keys 3)\n")
