"""Controller.controller_rate_limit on ovsbpfd and on Debian's ovs-vswitchd.

With rate 100/s and burst 25, 300 packet-ins are asked for at once (PACKET_OUT
to CONTROLLER from ovs-ofctl's service connection: 150 from port 1, then 150
from port 2).  Both switches send the burst at once, then queue a backlog of
25 and send it at the rate, taking the two ports in turn, and drop the rest.
Arrival times are measured on both in the same run; what may differ is only
how many tokens came while each switch took the 300 requests in.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from ovsbpfd.ofproto.actions import OFPP_CONTROLLER, ActOutput
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow.messages import BarrierRequest, Hello, PacketOut, encode_message
from tests.system.daemon_proc import Daemon
from tests.system.refvswitchd import RefVswitchd, reference_available
from tests.system.test_sys_ofctl_compare import FRAME, Pair
from tests.system.test_sys_ofctl_compare import pair as pair  # the module's switch pair
from tests.system.test_sys_snoop import RawController

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not reference_available(), reason="needs Debian's ovs-vswitchd"),
]

RATE, BURST, OFFERED = 100, 25, 300
# PACKET_IN: header, buffer_id, total_len, reason, table_id, cookie, then the
# match (type, length, first OXM: in_port's header and value).
IN_PORT_OFFSET = 8 + 4 + 2 + 1 + 1 + 8 + 4 + 4


def _offer(mgmt: str) -> float:
    """Ask for OFFERED packet-ins over one service connection; seconds it took."""
    frame = bytes.fromhex(FRAME)
    requests = b"".join(
        encode_message(PacketOut(in_port=1 if i < OFFERED // 2 else 2,
                                 actions=(ActOutput(OFPP_CONTROLLER),), data=frame, xid=i + 1))
        for i in range(OFFERED))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(mgmt)
        sock.sendall(encode_message(Hello()))
        started = time.monotonic()
        sock.sendall(requests + encode_message(BarrierRequest(xid=0xBA)))
        data = b""
        while struct.pack("!BBHI", 4, c.OFPT_BARRIER_REPLY, 8, 0xBA) not in data:
            chunk = sock.recv(65536)
            assert chunk, "the switch closed the service connection"
            data += chunk
        return time.monotonic() - started


def measure(switch: Daemon | RefVswitchd, bridge: str) -> tuple[list[tuple[float, int]], float]:
    """(arrival time, in_port) of every PACKET_IN, and how long the offer took."""
    controller = RawController(switch.rundir / "ratectl.sock")
    arrivals: list[tuple[float, int]] = []
    try:
        switch.vsctl("set-controller", bridge, f"unix:{controller.path}", "--",
                     "set", "Controller", bridge, f"controller_rate_limit={RATE}",
                     f"controller_burst_limit={BURST}")
        controller.accept()
        time.sleep(0.5)
        started = time.monotonic()
        offer_time = _offer(str(switch.rundir / f"{bridge}.mgmt"))
        assert controller.sock is not None
        controller.sock.settimeout(0.05)
        while time.monotonic() - started < 2.0:
            try:
                msg_type, _, frame = controller.recv()
            except TimeoutError:
                continue
            if msg_type == c.OFPT_PACKET_IN:
                (in_port,) = struct.unpack_from("!I", frame, IN_PORT_OFFSET)
                arrivals.append((time.monotonic() - started, in_port))
    finally:
        switch.vsctl("del-controller", bridge)
        controller.close()
    return arrivals, offer_time


def check_shape(arrivals: list[tuple[float, int]], offer_time: float, who: str) -> None:
    times = [t for t, _ in arrivals]
    extra = RATE * offer_time  # tokens that came while the requests went in
    assert 2 * BURST <= len(arrivals) <= 2 * BURST + extra + 3, (who, len(arrivals), offer_time)
    # the burst at once (well within the time the next ten tokens take) ...
    assert times[BURST - 1] - times[0] < offer_time + 0.05, (who, times[:BURST])
    # ... the backlog at the rate: its last 25 took about 0.25 s, never much faster
    tail = times[-BURST:]
    assert 0.8 * (BURST - 1) / RATE <= tail[-1] - tail[0] <= 4.0 * BURST / RATE, (who, tail)
    # ... the two ports in turn: both queues were cut down about alike (how
    # alike depends on when tokens came during the offer), then served
    # round robin; one FIFO would send all of port 1's, then all of port 2's
    ports = [port for _, port in arrivals[-BURST:]]
    assert sum(a != b for a, b in zip(ports, ports[1:], strict=False)) >= len(ports) - 6, \
        (who, ports)
    assert abs(ports.count(1) - ports.count(2)) <= 5, (who, ports)


def test_packet_ins_over_the_rate_are_queued_then_sent_as_the_reference(pair: Pair) -> None:
    pair.reset()
    ours, ours_offer = measure(pair.ours, pair.bridge)
    ref, ref_offer = measure(pair.ref, pair.bridge)
    check_shape(ref, ref_offer, "ovs-vswitchd")
    check_shape(ours, ours_offer, "ovsbpfd")
