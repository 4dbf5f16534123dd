"""Pinned state outlives the process handle: a restarted daemon keeps forwarding."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from ovsbpfd.dpif.bpf.libbpf import tc_detach_ingress, tc_query_ingress
from ovsbpfd.dpif.bpf.provider import TC_HANDLE, TC_PRIORITY, BpfDpif
from ovsbpfd.dpif.packet_build import udp_frame
from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import FlowKey, Output
from tests.dpif.harness import collect, eventually
from tests.dpif.harness_bpf import BpfHarness, bpf_harness, run

IN_PORT_ONLY = FlowKey(in_port=0xFFFFFFFF)


def frame(n: int) -> bytes:
    return udp_frame("02:0b:00:00:00:01", "02:0b:00:00:00:02", "10.78.0.1", "10.78.0.2",
                     1000 + n, 2000, b"restart")


def test_dpif_bpf_flows_survive_close_and_are_picked_up() -> None:
    with bpf_harness() as harness:
        a, b = harness.add_port("rs-a"), harness.add_port("rs-b")
        harness.dpif.flow_put(FlowKey(in_port=a), IN_PORT_ONLY, [Output(b)])
        harness.send(a, frame(1))
        assert collect(harness, b, frame(1)) == 1
        pin_dir = harness.dpif.pin_dir
        assert pin_dir is not None
        harness.dpif.close()

        # No process holds the datapath now; the pinned maps and filters still forward.
        assert os.path.isdir(pin_dir) and os.listdir(pin_dir)
        harness.send(a, frame(2))
        assert collect(harness, b, frame(2)) == 1

        reopened = BpfDpif(pin_root=harness.dpif.pin_root)
        harness.dpif = reopened  # the harness tears down through the new handle
        assert {(p.port_no, p.name) for p in reopened.port_list()} == {(a, "rs-a"), (b, "rs-b")}
        [flow] = reopened.flow_dump()
        assert flow.key == FlowKey(in_port=a) and flow.actions == (Output(b),)
        assert flow.stats.packets == 2
        assert reopened.stats().n_flows == 1 and reopened.stats().n_masks == 1
        harness.send(a, frame(3))
        assert collect(harness, b, frame(3)) == 1
        assert eventually(lambda: reopened.flow_dump()[0].stats.packets == 3)
        assert reopened.stats().n_missed == 0

        # The reopened handle owns everything: a flow_del through it takes effect.
        reopened.flow_del(FlowKey(in_port=a), IN_PORT_ONLY)
        harness.send(a, frame(4))
        assert harness.recv(b, timeout=0.3) == []
        assert eventually(lambda: reopened.stats().n_missed == 1)


def test_dpif_bpf_destroy_removes_pins() -> None:
    with bpf_harness() as harness:
        harness.add_port("rs-c")
        pin_root = harness.dpif.pin_root
        harness.dpif.destroy()
        assert not os.path.exists(pin_root)
        harness.dpif = BpfDpif(pin_root=pin_root)  # fresh and empty
        assert harness.dpif.port_list() == [] and harness.dpif.flow_dump() == []


def reopen(harness: BpfHarness) -> BpfDpif:
    """Close the handle and open the pinned datapath again, as a restarted daemon does."""
    harness.dpif.close()
    harness.dpif = BpfDpif(pin_root=harness.dpif.pin_root)
    return harness.dpif


def ifindex_of(harness: BpfHarness, port_no: int) -> int:
    return socket.if_nametoindex(harness.port(port_no).dev)


def test_dpif_bpf_port_add_adopts_recovered_port_with_its_counters() -> None:
    with bpf_harness() as harness:
        a, b = harness.add_port("ad-a"), harness.add_port("ad-b")
        harness.dpif.flow_put(FlowKey(in_port=a), IN_PORT_ONLY, [Output(b)])
        for n in range(3):
            harness.send(a, frame(n))
        assert collect(harness, b, frame(2)) == 1
        assert eventually(lambda: harness.dpif.port_stats(a).rx_packets >= 3)
        rx_before = harness.dpif.port_stats(a).rx_packets
        dpif = reopen(harness)
        assert [p.name for p in dpif.recovered_ports()] == ["ad-a", "ad-b"]
        prog = tc_query_ingress(ifindex_of(harness, a), TC_HANDLE, TC_PRIORITY)
        assert prog is not None  # re-pointed at the new program, never detached

        assert dpif.port_add("ad-a", ifindex_of(harness, a)) == a
        assert dpif.port_add("ad-b", ifindex_of(harness, b), port_no=b) == b
        assert dpif.recovered_ports() == []
        assert dpif.port_stats(a).rx_packets == rx_before  # counters kept
        assert tc_query_ingress(ifindex_of(harness, a), TC_HANDLE, TC_PRIORITY) == prog
        with pytest.raises(DpifError) as exc:
            dpif.port_add("ad-a", ifindex_of(harness, a))  # duplicate in this process
        assert exc.value.errno == errno.EEXIST
        # the installed flow still names the right ports
        harness.send(a, frame(9))
        assert collect(harness, b, frame(9)) == 1
        assert dpif.stats().n_missed == 0


def test_dpif_bpf_stale_recovered_port_is_replaced() -> None:
    with bpf_harness() as harness:
        a = harness.add_port("st-a")
        dpif = reopen(harness)
        # the same device under another name: the old port is stale
        fresh = dpif.port_add("st-renamed", ifindex_of(harness, a))
        assert [(p.port_no, p.name) for p in dpif.port_list()] == [(fresh, "st-renamed")]
        assert dpif.recovered_ports() == []
        assert tc_query_ingress(ifindex_of(harness, a), TC_HANDLE, TC_PRIORITY) is not None


@pytest.mark.parametrize("removed", ["filter", "clsact"])
def test_dpif_bpf_takeover_reattaches_what_was_removed_meanwhile(removed: str) -> None:
    with bpf_harness() as harness:
        a, b = harness.add_port("fl-a"), harness.add_port("fl-b")
        harness.dpif.flow_put(FlowKey(in_port=a), IN_PORT_ONLY, [Output(b)])
        harness.dpif.close()
        if removed == "filter":
            assert tc_detach_ingress(ifindex_of(harness, a), TC_HANDLE, TC_PRIORITY)
        else:
            run("tc", "qdisc", "del", "dev", harness.port(a).dev, "clsact")
        harness.send(a, frame(1))
        assert harness.recv(b, timeout=0.3) == []  # no filter, no forwarding

        dpif = BpfDpif(pin_root=harness.dpif.pin_root)  # re-attaches on open if it can
        harness.dpif = dpif
        assert dpif.port_add("fl-a", ifindex_of(harness, a)) == a  # or on adoption
        assert tc_query_ingress(ifindex_of(harness, a), TC_HANDLE, TC_PRIORITY) is not None
        harness.send(a, frame(2))
        assert collect(harness, b, frame(2)) == 1
        dpif.port_del(a)  # a clsact the takeover created is ours to remove again
        assert "clsact" not in run("tc", "qdisc", "show", "dev", harness.port(a).dev)
