"""The standalone switch's forwarding, run on every dpif provider from one test.

A bridge with the default ``priority=0 actions=NORMAL`` flow over the dummy
datapath (inject/capture) and over the bpf datapath (veths, AF_PACKET): MAC
learning, flooding, the first packet of a flow as an upcall and the rest in
the datapath, counters reaching the NORMAL rule, and revalidation after a
FLOW_MOD.
"""

from __future__ import annotations

import asyncio

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.ofproto.actions import OFPP_ANY
from ovsbpfd.ofproto.backer import DatapathBacker
from ovsbpfd.ofproto.bridge import OfprotoBridge
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import OFPFC_ADD, OFPFC_DELETE, FlowMod, FlowStatsRequest
from tests.dpif.harness import DatapathHarness

H1, H2, H3 = (bytes([0x02, 0, 0, 0, 0x5A, n]) for n in (1, 2, 3))
IP1, IP2 = "10.77.0.1", "10.77.0.2"


class SwitchUnderTest:
    """One bridge whose ports are the harness's ports."""

    def __init__(self, harness: DatapathHarness) -> None:
        self.harness = harness
        self.backer = DatapathBacker(harness.dpif)
        self.bridge = OfprotoBridge(self.backer, "brp", 0xABC)
        self.dp_ports: dict[int, int] = {}  # ofport -> dp port
        for n in (1, 2, 3):
            self.dp_ports[n] = harness.add_port(f"swp{n}", attach=self._attach)

    def _attach(self, name: str, ifindex: int) -> int:
        ofport = self.bridge.port_add(name, ifindex, bytes([0x02, 0, 0, 0, 0x5B, ifindex & 0xFF]))
        return self.bridge.port_map[ofport].dp_port

    async def send(self, ofport: int, frame: bytes) -> None:
        await asyncio.to_thread(self.harness.send, self.dp_ports[ofport], frame)

    async def received(self, ofport: int, frame: bytes, timeout: float = 1.0) -> int:
        """How many copies of ``frame`` came out of ``ofport`` within ``timeout``."""
        frames = await asyncio.to_thread(self.harness.recv, self.dp_ports[ofport], timeout)
        return frames.count(frame)

    def misses(self) -> int:
        return self.harness.dpif.stats().n_missed

    def normal_rule_packets(self) -> int:
        (entry,) = [e for e in self.bridge.flow_stats(FlowStatsRequest()) if e.priority == 0]
        return entry.packet_count

    async def flow_mod(self, fm: FlowMod) -> None:
        self.bridge.flow_mod(fm)
        await self.bridge.barrier()


def run_scenario(harness: DatapathHarness, scenario) -> None:
    async def main() -> None:
        switch = SwitchUnderTest(harness)
        await switch.backer.start()
        try:
            await scenario(switch)
        finally:
            await switch.backer.stop()
            switch.bridge.destroy()

    asyncio.run(main())


def test_core_providers_learning_switch_keeps_flows_in_datapath(
        harness: DatapathHarness) -> None:
    async def scenario(sw: SwitchUnderTest) -> None:
        request = pb.arp_request(H1, IP1, IP2)
        await sw.send(1, request)
        assert await sw.received(2, request) == 1  # unknown destination: flooded
        assert await sw.received(3, request) == 1
        reply = pb.arp_reply(H2, IP2, H1, IP1)
        await sw.send(2, reply)
        assert await sw.received(1, reply) == 1  # H1 was learned on port 1
        assert await sw.received(3, reply, timeout=0.2) == 0

        first = pb.udp_frame(H1, H2, IP1, IP2, 4000, 5000, payload=b"first")
        await sw.send(1, first)
        assert await sw.received(2, first) == 1
        misses = sw.misses()
        frames = [pb.udp_frame(H1, H2, IP1, IP2, 4000 + i, 5000, payload=b"x" * i)
                  for i in range(1, 21)]
        for frame in frames:
            await sw.send(1, frame)
        got = await asyncio.to_thread(sw.harness.recv, sw.dp_ports[2], 1.0)
        assert all(frame in got for frame in frames)
        assert await sw.received(3, frames[0], timeout=0.2) == 0  # no flooding once learned
        assert sw.misses() == misses, "later packets of a flow must stay in the datapath"

        for _ in range(30):  # the revalidator pushes datapath counters within a second
            if sw.normal_rule_packets() >= 23:
                break
            await asyncio.sleep(0.1)
        assert sw.normal_rule_packets() >= 23

    run_scenario(harness, scenario)


def test_core_providers_drop_flow_is_revalidated_in_and_out(
        harness: DatapathHarness) -> None:
    async def scenario(sw: SwitchUnderTest) -> None:
        await sw.send(2, pb.arp_request(H2, IP2, IP1))  # learn H2 on port 2
        await asyncio.to_thread(sw.harness.recv, sw.dp_ports[1], 0.3)
        frame = pb.icmp_frame(H1, H2, IP1, IP2)
        await sw.send(1, frame)
        assert await sw.received(2, frame) == 1

        drop = FlowMod(OFPFC_ADD, match=Match(in_port=1), priority=10)
        await sw.flow_mod(drop)
        await sw.send(1, frame)
        assert await sw.received(2, frame, timeout=0.5) == 0

        await sw.flow_mod(FlowMod(OFPFC_DELETE, match=Match(in_port=1), table_id=0,
                                  out_port=OFPP_ANY))
        await sw.send(1, frame)
        assert await sw.received(2, frame) == 1

    run_scenario(harness, scenario)
