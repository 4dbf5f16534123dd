"""In-memory stand-ins for the layers below the vswitch (netdevs, ofproto).

They keep just enough state for reconciliation tests to check outcomes
(which ports a bridge has, which devices exist) rather than call sequences.
"""

from __future__ import annotations

import errno
import itertools
from dataclasses import dataclass, field, replace

from ovsbpfd.netdev import InternalPort, NetdevError, NetdevInfo, internal_peer_name
from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec
from ovsbpfd.ofproto.openflow.tls import SslSettings

OFPP_LOCAL = 0xFFFFFFFE


class FakeNetdevs:
    """A netdev table; ``add_system`` plays the admin creating a veth."""

    def __init__(self) -> None:
        self.devices: dict[str, NetdevInfo] = {}
        self.internal: set[str] = set()
        self._ifindex = itertools.count(100)
        self._mac = itertools.count(1)

    def add_system(self, name: str, up: bool = True) -> NetdevInfo:
        info = NetdevInfo(name, next(self._ifindex), self._next_mac(), up, up, 1500,
                          stats={"rx_packets": 3, "tx_packets": 4})
        self.devices[name] = info
        return info

    def remove(self, name: str) -> None:
        self.devices.pop(name, None)

    def set_state(self, name: str, admin_up: bool, link_up: bool) -> None:
        self.devices[name] = replace(self.devices[name], admin_up=admin_up, link_up=link_up)

    def _next_mac(self) -> bytes:
        return bytes([2, 0, 0, 0, 0, next(self._mac)])

    async def links(self) -> dict[str, NetdevInfo]:
        return dict(self.devices)

    async def create_internal(self, name: str, mac: bytes | None = None) -> InternalPort:
        peer = internal_peer_name(name)
        if name in self.internal:
            return InternalPort(self.devices[name], self.devices[peer])
        if name in self.devices:
            raise NetdevError(errno.EEXIST, f"{name} exists")
        host = NetdevInfo(name, next(self._ifindex), mac or self._next_mac(), False, False, 1500)
        peer_info = NetdevInfo(peer, next(self._ifindex), self._next_mac(), True, False, 1500)
        self.devices[name] = host
        self.devices[peer] = peer_info
        self.internal.add(name)
        return InternalPort(host, peer_info)

    async def delete_internal(self, name: str) -> bool:
        if name not in self.internal:
            return False
        self.internal.discard(name)
        self.devices.pop(name, None)
        self.devices.pop(internal_peer_name(name), None)
        return True

    async def set_mac(self, ifindex: int, mac: bytes) -> None:
        for name, info in self.devices.items():
            if info.ifindex == ifindex:
                self.devices[name] = replace(info, mac=mac)

    async def owned_internal_names(self) -> list[str]:
        return sorted(self.internal)

    async def set_admin_state(self, name: str, up: bool) -> None:
        """As the kernel: a device taken down loses its carrier too."""
        if name not in self.devices:
            raise NetdevError(errno.ENODEV, f"{name}: no such device")
        self.devices[name] = replace(self.devices[name], admin_up=up, link_up=up)


@dataclass
class FakePort:
    name: str
    ifindex: int
    hw_addr: bytes
    vlan: tuple[int | None, tuple[int, ...]] = (None, ())
    state: tuple[bool, bool] = (False, False)


@dataclass
class FakeBridge:
    name: str
    datapath_id: int
    fail_mode: str
    ports: dict[int, FakePort] = field(default_factory=dict)
    destroyed: bool = False

    def port_add(self, name: str, ifindex: int, hw_addr: bytes,
                 ofport_request: int | None = None, local: bool = False) -> int:
        if local:
            ofport = OFPP_LOCAL
        elif ofport_request is not None and ofport_request not in self.ports:
            ofport = ofport_request
        else:  # a taken request gets another number, as in OVS
            ofport = next(n for n in itertools.count(1) if n not in self.ports)
        self.ports[ofport] = FakePort(name, ifindex, hw_addr)
        return ofport

    def port_del(self, ofport: int) -> None:
        del self.ports[ofport]

    def set_port_vlan(self, ofport: int, tag: int | None, trunks: list[int]) -> None:
        self.ports[ofport].vlan = (tag, tuple(trunks))

    def set_port_state(self, ofport: int, link_up: bool, admin_up: bool) -> None:
        self.ports[ofport].state = (link_up, admin_up)

    def set_fail_mode(self, mode: str) -> None:
        self.fail_mode = mode

    def destroy(self) -> None:
        self.destroyed = True

    def port_names(self) -> dict[str, int]:
        return {p.name: n for n, p in self.ports.items()}


class FakeConnmgr:
    """Records what the vswitch configured; reports every controller backing off."""

    def __init__(self) -> None:
        self.specs: list[ControllerSpec] = []
        self.protocols: list[str] = []
        self.ssl: SslSettings | None = None
        self.port_admin_hook = None
        self.status_listener = None
        self.stopped = False

    @property
    def targets(self) -> list[str]:
        return [spec.target for spec in self.specs]

    def set_controllers(self, specs: list[ControllerSpec]) -> None:
        self.specs = list(specs)

    def set_protocols(self, protocols: list[str]) -> None:
        self.protocols = list(protocols)

    def set_ssl(self, settings: SslSettings | None) -> None:
        self.ssl = settings

    def set_port_admin_hook(self, hook) -> None:
        self.port_admin_hook = hook

    def set_status_listener(self, listener) -> None:
        self.status_listener = listener

    def controller_db_status(self) -> dict[str, dict]:
        return {t: {"is_connected": False, "role": None,
                    "status": {"state": "BACKOFF"}} for t in self.targets}

    async def stop(self) -> None:
        self.stopped = True


class FakeFactory:
    def __init__(self) -> None:
        self.created: list[FakeBridge] = []

    def create_bridge(self, name: str, datapath_id: int, fail_mode: str) -> FakeBridge:
        br = FakeBridge(name, datapath_id, fail_mode)
        self.created.append(br)
        return br

    async def start_connmgr(self, bridge: FakeBridge) -> FakeConnmgr:
        return FakeConnmgr()
