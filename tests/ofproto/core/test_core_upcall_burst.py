"""A burst of misses for distinct flows, on every dpif provider: each packet
comes out exactly once and each flow gets its own datapath flow."""

from __future__ import annotations

import asyncio
import time

from ovsbpfd.dpif import packet_build as pb
from ovsbpfd.ofproto.actions import ActOutput, InstApplyActions
from ovsbpfd.ofproto.backer import DatapathBacker
from ovsbpfd.ofproto.bridge import OfprotoBridge
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod, FlowStatsRequest
from tests.dpif.harness import DatapathHarness, DummyHarness

N_FLOWS = 300
H1, H2 = bytes([0x02, 0, 0, 0, 0x5C, 1]), bytes([0x02, 0, 0, 0, 0x5C, 2])


def frame_to(index: int) -> bytes:
    return pb.udp_frame(H1, H2, "192.168.7.1", f"10.1.{index // 256}.{index % 256}", 4000,
                        5000, payload=index.to_bytes(4, "big"))


def test_core_upcall_burst_of_distinct_misses(harness: DatapathHarness) -> None:
    async def main() -> None:
        backer = DatapathBacker(harness.dpif)
        bridge = OfprotoBridge(backer, "brb", 0xB0, fail_mode="secure")
        dp_ports = {}

        def attach(name: str, ifindex: int) -> int:
            ofport = bridge.port_add(name, ifindex, bytes([2, 0, 0, 0, 0x5D, ifindex & 0xFF]))
            return bridge.port_map[ofport].dp_port

        for n in (1, 2):
            dp_ports[n] = harness.add_port(f"bup{n}", attach=attach)
        bridge.flow_mod_batch([
            FlowMod(OFPFC_ADD, Match({"eth_type": 0x0800,
                                      "ipv4_dst": (0x0A010000 | i, None)}),
                    (InstApplyActions((ActOutput(2),)),), priority=100)
            for i in range(N_FLOWS)])
        await backer.start()
        try:
            frames = [frame_to(i) for i in range(N_FLOWS)]

            def send_all() -> None:
                for frame in frames:
                    harness.send(dp_ports[1], frame)

            got: list[bytes] = []

            def receive_all() -> None:
                """Drain port 2 while the burst goes on (a socket buffer holds
                only a few hundred small frames)."""
                deadline = time.monotonic() + 20
                while len(got) < N_FLOWS and time.monotonic() < deadline:
                    got.extend(harness.recv(dp_ports[2], 0.1))
                got.extend(harness.recv(dp_ports[2], 0.3))  # nothing more may come

            if isinstance(harness, DummyHarness):
                # Synchronous: sending queues the misses, the loop handles them.
                send_all()
                while harness.dpif.stats().n_missed > backer.n_upcalls:
                    await asyncio.sleep(0.01)
                receive_all()
            else:
                receiver = asyncio.create_task(asyncio.to_thread(receive_all))
                await asyncio.to_thread(send_all)
                await receiver
            ours = [f for f in got if f in set(frames)]
            assert sorted(ours) == sorted(frames), "every packet out exactly once"
            stats = harness.dpif.stats()
            assert stats.n_flows == N_FLOWS and stats.n_lost == 0
            assert backer.n_upcalls == N_FLOWS == stats.n_missed
            assert len(backer.revalidator) == N_FLOWS
            counts = [e.packet_count for e in bridge.flow_stats(FlowStatsRequest())]
            assert counts == [1] * N_FLOWS
        finally:
            await backer.stop()
            bridge.destroy()

    asyncio.run(main())
