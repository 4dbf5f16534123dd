"""``ovs-ofctl snoop`` on ovsbpfd and on Debian's ovs-vswitchd, for the same exchange.

A small raw controller (a unix socket in the switch's rundir, where
ovs-vswitchd allows controller sockets) talks to the bridge while
``ovs-ofctl snoop`` watches; a service client (ovs-ofctl on ``.mgmt``) runs
meanwhile.  Both switches must print the same messages: the controller's
requests and the switch's replies, its PACKET_IN, and nothing of the
service connection.
"""

from __future__ import annotations

import socket
import stat
import struct
import subprocess
import time
from pathlib import Path

import pytest

from ovsbpfd.ofproto.actions import ActOutput, InstApplyActions
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow.messages import (
    BarrierRequest,
    EchoRequest,
    FeaturesRequest,
    FlowModMessage,
    Hello,
    encode_message,
)
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod
from tests.system.daemon_proc import Daemon
from tests.system.refvswitchd import RefVswitchd, reference_available
from tests.system.test_sys_ofctl_compare import FRAME, Pair, normalise
from tests.system.test_sys_ofctl_compare import pair as pair  # the module's switch pair

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not reference_available(), reason="needs Debian's ovs-vswitchd"),
]


class RawController:
    """A blocking OpenFlow 1.3 controller on a unix socket the switch connects to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(1)
        self.server.settimeout(15)
        self.sock: socket.socket | None = None
        self.buffer = b""

    def accept(self) -> None:
        self.sock, _ = self.server.accept()
        self.sock.settimeout(5)
        self.sock.sendall(encode_message(Hello()))
        assert self.recv()[0] == c.OFPT_HELLO

    def send(self, *messages: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(b"".join(messages))

    def recv(self) -> tuple[int, int, bytes]:
        """The next message: (type, xid, whole frame)."""
        assert self.sock is not None
        while True:
            if len(self.buffer) >= 8:
                length = struct.unpack_from("!H", self.buffer, 2)[0]
                if len(self.buffer) >= length:
                    frame, self.buffer = self.buffer[:length], self.buffer[length:]
                    return frame[1], struct.unpack_from("!I", frame, 4)[0], frame
            chunk = self.sock.recv(65536)
            assert chunk, "the switch closed the controller connection"
            self.buffer += chunk

    def wait_for(self, msg_type: int) -> bytes:
        while True:
            got_type, _, frame = self.recv()
            if got_type == msg_type:
                return frame

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.server.close()
        self.path.unlink(missing_ok=True)


def _flow_mod(xid: int) -> bytes:
    fm = FlowMod(OFPFC_ADD, Match(in_port=2), (InstApplyActions((ActOutput(1),)),),
                 priority=55)
    return encode_message(FlowModMessage(fm, xid=xid))


def _snoop(switch: Daemon | RefVswitchd, bridge: str) -> subprocess.Popen:
    return subprocess.Popen(["ovs-ofctl", "-O", "OpenFlow13", "snoop", bridge],
                            env=switch.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(proc: subprocess.Popen) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return out


def snoop_exchange(switch: Daemon | RefVswitchd, bridge: str) -> str:
    """What ``ovs-ofctl snoop`` prints while a controller and ovs-ofctl use the bridge."""
    controller = RawController(switch.rundir / "snoopctl.sock")
    try:
        switch.vsctl("set-controller", bridge, f"unix:{controller.path}")
        controller.accept()
        proc = _snoop(switch, bridge)
        try:
            time.sleep(1.0)  # connected and attached
            controller.send(encode_message(FeaturesRequest(xid=0x11)),
                            encode_message(EchoRequest(b"snoop", xid=0x12)),
                            _flow_mod(0x13), encode_message(BarrierRequest(xid=0x14)))
            controller.wait_for(c.OFPT_BARRIER_REPLY)
            switch.ofctl("dump-flows", bridge)  # a service connection: not snooped
            switch.ofctl("packet-out", bridge, f"in_port=1,packet={FRAME},actions=controller")
            controller.wait_for(c.OFPT_PACKET_IN)
            time.sleep(0.5)
        finally:
            out = _finish(proc)
    finally:
        switch.vsctl("del-controller", bridge)
        controller.close()
    return out


def _messages(text: str) -> list[str]:
    return [line.split(" (")[0] for line in text.splitlines() if line.startswith(("OFPT_",))]


def test_snoop_prints_the_controller_exchange_as_the_reference(pair: Pair) -> None:
    pair.reset()
    ours = normalise(snoop_exchange(pair.ours, pair.bridge))
    ref = normalise(snoop_exchange(pair.ref, pair.bridge))
    assert _messages(ours) == [
        "OFPT_FEATURES_REQUEST", "OFPT_FEATURES_REPLY", "OFPT_ECHO_REQUEST", "OFPT_ECHO_REPLY",
        "OFPT_FLOW_MOD", "OFPT_BARRIER_REQUEST", "OFPT_BARRIER_REPLY", "OFPT_PACKET_IN"], ours
    assert ours == ref
    assert "OFPST_FLOW" not in ours  # the service connection's dump-flows


def test_snoop_socket_lives_beside_mgmt(pair: Pair) -> None:
    modes = []
    for switch in (pair.ours, pair.ref):
        info = (switch.rundir / f"{pair.bridge}.snoop").lstat()
        assert stat.S_ISSOCK(info.st_mode)
        modes.append(stat.S_IMODE(info.st_mode))
    assert modes[0] == modes[1] == 0o750


def test_snoop_without_a_controller(pair: Pair) -> None:
    """No controller to watch: both switches close the snoop connection at
    once, before HELLO, so ovs-ofctl fails at once.  Its words depend on a
    race (whether its HELLO hit the closed socket: "failed to open socket
    (Broken pipe)", or the close came after it: "failed to connect to
    socket (...)"), on either switch."""
    for switch in (pair.ours, pair.ref):
        proc = _snoop(switch, pair.bridge)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode != 0
        assert out.startswith("ovs-ofctl: ") and "failed to" in out and "socket (" in out, out
