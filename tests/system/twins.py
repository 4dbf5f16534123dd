"""ovsbpfd and the reference ovs-vswitchd built alike, for tests that
compare what the stock OVS clients get from each.

Both get the same bridges; the first bridge of each gets the same veth
ports with the same OpenFlow port numbers: for ovsbpfd veth pairs in the
root namespace (``NAMEp`` is the peer a test sends from), for the reference
the same names inside its own namespace.  Everything is removed afterwards,
whatever happened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.system.daemon_proc import Daemon
from tests.system.netns import run
from tests.system.refvswitchd import RefVswitchd


@contextlib.contextmanager
def twin_switches(workdir: Path, ref_netns: str, bridges: list[str], ports: list[str],
                  settings: tuple[str, ...] = (), datapath: str = "bpf",
                  ) -> Iterator[tuple[Daemon, RefVswitchd]]:
    """Started (ovsbpfd, reference); ``settings`` are ``ovs-vsctl set Bridge``
    arguments for every bridge; ``ports[i]`` is OpenFlow port i+1."""
    ours = Daemon(workdir / "ours", datapath=datapath)
    ref = RefVswitchd(workdir / "ref", ref_netns)
    made: list[str] = []
    try:
        ref.start()
        ours.start()
        for bridge in bridges:
            ref.add_bridge(bridge, *settings)
            extra = ["--", "set", "Bridge", bridge, *settings] if settings else []
            ours.vsctl("add-br", bridge, *extra)
        for ofport, port in enumerate(ports, 1):
            ref.add_veth_port(bridges[0], port, ofport)
            run("ip", "link", "add", port, "type", "veth", "peer", "name", port + "p")
            made.append(port)
            for device in (port, port + "p"):
                run("sysctl", "-qw", f"net.ipv6.conf.{device}.disable_ipv6=1")
                run("ip", "link", "set", device, "up")
            ours.vsctl("add-port", bridges[0], port, "--", "set", "Interface", port,
                       f"ofport_request={ofport}")
        yield ours, ref
    finally:
        try:
            ours.stop(cleanup=True)
        finally:
            ref.stop()
            for port in made:
                run("ip", "link", "del", port, check=False)
