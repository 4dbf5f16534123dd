"""Parsing OVS connection target strings (tcp:, ptcp:, unix:, punix:)."""

from __future__ import annotations

from dataclasses import dataclass

from ovsbpfd.ofproto.openflow.constants import OFP_TCP_PORT


@dataclass(frozen=True)
class Target:
    method: str  # "tcp", "ptcp", "unix", "punix", "ssl", "pssl"
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def passive(self) -> bool:
        return self.method.startswith("p")


def _split_host_port(rest: str) -> tuple[str, str]:
    """``IP[:PORT]`` where IP may be an IPv6 address in brackets."""
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        return host, tail.lstrip(":")
    host, _, port = rest.partition(":")
    return host, port


def parse_target(target: str) -> Target:
    """Parse ``target`` as OVS does; raises ValueError when malformed."""
    method, sep, rest = target.partition(":")
    if not sep and method not in ("ptcp", "pssl"):
        raise ValueError(f"{target}: missing ':'")
    if method in ("tcp", "ssl"):
        host, port = _split_host_port(rest)
        if not host:
            raise ValueError(f"{target}: missing host")
        return Target(method, host, int(port) if port else OFP_TCP_PORT)
    if method in ("ptcp", "pssl"):
        port_text, _, host = rest.partition(":")
        if host.startswith("["):
            host = host[1:-1]
        return Target(method, host or "0.0.0.0",
                      int(port_text) if port_text else OFP_TCP_PORT)
    if method in ("unix", "punix"):
        if not rest:
            raise ValueError(f"{target}: missing path")
        return Target(method, path=rest)
    raise ValueError(f"{target}: unknown connection method {method!r}")
