"""Pinned state outlives the process handle: a restarted daemon keeps forwarding."""

from __future__ import annotations

import os

from ovsbpfd.dpif.bpf.provider import BpfDpif
from ovsbpfd.dpif.packet_build import udp_frame
from ovsbpfd.dpif.types import FlowKey, Output
from tests.dpif.harness import collect, eventually
from tests.dpif.harness_bpf import bpf_harness

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
