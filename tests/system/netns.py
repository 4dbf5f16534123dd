"""Test hosts: network namespaces joined to the root namespace by veth pairs.

Each ``Host`` owns one namespace and one veth pair; the root-namespace end is
what a test adds to a bridge.  Everything is removed on ``close()``, which the
fixtures call even when a test fails.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

Result = subprocess.CompletedProcess


def run(*argv: str, check: bool = True, timeout: float = 60) -> Result:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout)


@dataclass
class Host:
    """A namespace ``ns`` with ``ip_addr`` on its end of a veth pair.

    ``port`` is the veth end left in the root namespace (to add to a bridge).
    """

    ns: str
    port: str
    ip_addr: str
    prefix: int = 24

    def create(self) -> Host:
        peer = self.port + "p"
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.port, "type", "veth", "peer", "name", peer)
        # The root end has no address; keep the kernel from sending IPv6 noise.
        run("sysctl", "-qw", f"net.ipv6.conf.{self.port}.disable_ipv6=1")
        run("ip", "link", "set", peer, "netns", self.ns)
        self.exec("ip", "link", "set", peer, "name", "eth0")
        self.exec("sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
        self.exec("ip", "addr", "add", f"{self.ip_addr}/{self.prefix}", "dev", "eth0")
        self.exec("ip", "link", "set", "eth0", "up")
        self.exec("ip", "link", "set", "lo", "up")
        run("ip", "link", "set", self.port, "up")
        return self

    def exec(self, *argv: str, check: bool = True, timeout: float = 60) -> Result:
        return run("ip", "netns", "exec", self.ns, *argv, check=check, timeout=timeout)

    def popen(self, *argv: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def ping(self, dst: str, count: int = 1, wait: float = 1.0) -> bool:
        result = self.exec(
            "ping", "-c", str(count), "-W", str(wait), "-i", "0.2", dst,
            check=False, timeout=count * (wait + 1) + 5,
        )
        return result.returncode == 0

    def mac(self) -> str:
        out = self.exec("cat", "/sys/class/net/eth0/address").stdout
        return out.strip()

    def close(self) -> None:
        run("ip", "link", "del", self.port, check=False)
        run("ip", "netns", "del", self.ns, check=False)


def unique_name(prefix: str, index: int) -> str:
    """A device/namespace name unique to this test process (<= 15 chars)."""
    return f"{prefix}{os.getpid() % 100000}{index}"[:15]
