"""The wanted switch configuration, read out of Open_vSwitch DB rows.

``read_config`` turns the IDL's rows into plain frozen records, so that the
reconciler works on values (easy to compare, easy to build in unit tests)
rather than on live IDL rows that change under it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ovsbpfd.netdev import parse_mac
from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec
from ovsbpfd.ofproto.openflow.tls import SslSettings

OFPP_MAX = 0xFF00  # OpenFlow 1.0-style numbers as the DB stores them
FAIL_MODES = ("standalone", "secure")


@dataclass(frozen=True)
class InterfaceConfig:
    name: str
    uuid: uuid.UUID
    type: str = ""
    ofport_request: int | None = None
    #: the ofport the DB already shows: reused so numbers survive restarts
    ofport_current: int | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        """"system", "internal" or "unsupported"."""
        if self.type in ("", "system"):
            return "system"
        if self.type == "internal":
            return "internal"
        return "unsupported"


@dataclass(frozen=True)
class PortConfig:
    name: str
    uuid: uuid.UUID
    interfaces: tuple[InterfaceConfig, ...] = ()
    tag: int | None = None
    trunks: tuple[int, ...] = ()


@dataclass(frozen=True)
class BridgeConfig:
    name: str
    uuid: uuid.UUID
    ports: tuple[PortConfig, ...] = ()
    fail_mode: str = "standalone"
    datapath_id: int | None = None  # other_config:datapath-id, if valid
    hwaddr: bytes | None = None  # other_config:hwaddr, if valid
    controllers: tuple[tuple[uuid.UUID, ControllerSpec], ...] = ()  # (row uuid, settings)
    protocols: tuple[str, ...] = ()  # Bridge.protocols; empty: the default

    def interfaces(self) -> Iterable[tuple[PortConfig, InterfaceConfig]]:
        for port in self.ports:
            for iface in port.interfaces:
                yield port, iface


@dataclass(frozen=True)
class SwitchConfig:
    """Everything the daemon acts on; ``next_cfg`` is what it acknowledges."""

    bridges: tuple[BridgeConfig, ...] = ()
    next_cfg: int = 0
    root_uuid: uuid.UUID | None = None
    ssl: SslSettings | None = None  # the Open_vSwitch.ssl row
    duplicates: tuple[str, ...] = field(default=(), compare=False)  # for logs


def parse_datapath_id(text: str | None) -> int | None:
    """other_config:datapath-id: exactly 16 hex digits, not all zero."""
    if not text or len(text) != 16:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value or None


def parse_hwaddr(text: str | None) -> bytes | None:
    """other_config:hwaddr: a unicast, non-zero MAC."""
    if not text:
        return None
    mac = parse_mac(text)
    if mac is None or mac == bytes(6) or mac[0] & 1:
        return None
    return mac


def _optional(value: Any) -> Any:
    """IDL optional columns are lists of zero or one element."""
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value


def _interface(row: Any) -> InterfaceConfig:
    request = _optional(row.ofport_request)
    if request is not None and not 1 <= int(request) < OFPP_MAX:
        request = None
    current = _optional(row.ofport)
    if current is not None and not 1 <= int(current) < OFPP_MAX:
        current = None
    return InterfaceConfig(name=row.name, uuid=row.uuid, type=row.type or "",
                           ofport_request=request, ofport_current=current)


def _port(row: Any) -> PortConfig:
    tag = _optional(row.tag)
    return PortConfig(
        name=row.name,
        uuid=row.uuid,
        interfaces=tuple(sorted((_interface(i) for i in row.interfaces), key=lambda i: i.name)),
        tag=int(tag) if tag is not None else None,
        trunks=tuple(sorted(int(t) for t in row.trunks)),
    )


def _bridge(row: Any) -> BridgeConfig:
    other = dict(row.other_config)
    fail_mode = _optional(row.fail_mode) or "standalone"
    return BridgeConfig(
        name=row.name,
        uuid=row.uuid,
        ports=tuple(sorted((_port(p) for p in row.ports), key=lambda p: p.name)),
        fail_mode=fail_mode if fail_mode in FAIL_MODES else "standalone",
        datapath_id=parse_datapath_id(other.get("datapath-id")),
        hwaddr=parse_hwaddr(other.get("hwaddr")),
        controllers=tuple(sorted(((c.uuid, _controller(c)) for c in row.controller),
                                 key=lambda c: c[1].target)),
        protocols=tuple(sorted(row.protocols)),
    )


def _controller(row: Any) -> ControllerSpec:
    def number(column: str) -> int | None:
        value = _optional(getattr(row, column))
        return int(value) if value is not None else None

    return ControllerSpec.from_db(
        row.target,
        type_=_optional(row.type),
        max_backoff_ms=number("max_backoff"),
        inactivity_probe_ms=number("inactivity_probe"),
        connection_mode=_optional(row.connection_mode),
        enable_async_messages=_optional(row.enable_async_messages),
        rate_limit=number("controller_rate_limit"),
        burst_limit=number("controller_burst_limit"),
    )


def _ssl(root: Any) -> SslSettings | None:
    row = _optional(root.ssl)
    if row is None:
        return None
    return SslSettings(private_key=row.private_key, certificate=row.certificate,
                       ca_cert=row.ca_cert, bootstrap_ca_cert=bool(row.bootstrap_ca_cert))


def dedupe(bridges: list[BridgeConfig]) -> tuple[tuple[BridgeConfig, ...], tuple[str, ...]]:
    """Drop what OVS would refuse: a second bridge, port or interface of one name.

    Names are global in OVS (one netdev can be in one place only); the first
    holder in name order wins and the rest are ignored, as bridge.c does.
    """
    seen_bridges: set[str] = set()
    seen_ifaces: set[str] = set()
    dropped: list[str] = []
    out = []
    for br in sorted(bridges, key=lambda b: (b.name, str(b.uuid))):
        if br.name in seen_bridges:
            dropped.append(f"bridge {br.name}")
            continue
        seen_bridges.add(br.name)
        ports = []
        seen_ports: set[str] = set()
        for port in br.ports:
            if port.name in seen_ports:
                dropped.append(f"port {port.name}")
                continue
            seen_ports.add(port.name)
            ifaces = []
            for iface in port.interfaces:
                if iface.name in seen_ifaces:
                    dropped.append(f"interface {iface.name}")
                    continue
                seen_ifaces.add(iface.name)
                ifaces.append(iface)
            ports.append(PortConfig(port.name, port.uuid, tuple(ifaces), port.tag, port.trunks))
        out.append(dataclasses.replace(br, ports=tuple(ports)))
    return tuple(out), tuple(dropped)


def read_config(idl: Any) -> SwitchConfig:
    """Snapshot the Open_vSwitch root row and what it references."""
    roots = list(idl.tables["Open_vSwitch"].rows.values())
    if not roots:
        return SwitchConfig()
    root = roots[0]
    bridges, dropped = dedupe([_bridge(b) for b in root.bridges])
    return SwitchConfig(bridges=bridges, next_cfg=int(root.next_cfg), root_uuid=root.uuid,
                        ssl=_ssl(root), duplicates=dropped)
