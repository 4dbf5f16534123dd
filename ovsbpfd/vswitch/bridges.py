"""Reconcile the wanted configuration with the live bridges (bridge.c's job).

``BridgeSet.apply(config)`` makes the running switch match a ``SwitchConfig``:
it creates and destroys OpenFlow bridges, creates the internal devices it
needs, attaches netdevs as ports, applies VLAN settings and controllers, and
returns what each Interface row should now say.  It removes only what it
created: ports it attached and internal devices it made.

After a daemon restart the datapath still holds the previous run's ports;
attaching the same netdevs adopts them (same datapath port numbers), and the
``on_first_apply`` hook runs once the first configuration is in place, so the
daemon can take over the old flows and drop the ports nobody claimed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno as errno_mod
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ovsbpfd import coverage
from ovsbpfd.netdev import InternalPort, NetdevError, NetdevInfo, internal_peer_name
from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec
from ovsbpfd.ofproto.openflow.tls import SslSettings
from ovsbpfd.vswitch.config import BridgeConfig, InterfaceConfig, PortConfig, SwitchConfig
from ovsbpfd.vswitch.status import (
    OFPP_LOCAL,
    ControllerStatus,
    InterfaceStatus,
    could_not_add,
    no_such_device,
    unsupported_type,
)

log = logging.getLogger(__name__)
_RECONFIGURE = coverage.counter("bridge_reconfigure")


class NetdevProvider(Protocol):
    async def links(self) -> dict[str, NetdevInfo]: ...

    async def create_internal(self, name: str, mac: bytes | None = None) -> InternalPort: ...

    async def delete_internal(self, name: str) -> bool: ...

    async def set_mac(self, ifindex: int, mac: bytes) -> None: ...

    async def owned_internal_names(self) -> list[str]: ...

    async def set_admin_state(self, name: str, up: bool) -> None: ...


class SwitchFactory(Protocol):
    """Makes the ofproto objects of one bridge (OfprotoBridge, ConnectionManager)."""

    def create_bridge(self, name: str, datapath_id: int, fail_mode: str) -> Any: ...

    async def start_connmgr(self, bridge: Any) -> Any: ...


@dataclass
class AttachedIface:
    """A port this process attached to a bridge."""

    name: str
    kind: str  # "system" / "internal"
    ofport: int
    dp_ifindex: int  # the device the datapath attached to
    requested: int | None = None  # ofport_request when attached
    vlan: tuple[int | None, tuple[int, ...]] | None = None
    state: tuple[bool, bool] | None = None  # (link_up, admin_up) last pushed
    host_seen: NetdevInfo | None = None  # an internal port's host end, last seen here


@dataclass
class LiveBridge:
    cfg: BridgeConfig
    core: Any
    datapath_id: int
    connmgr: Any | None = None
    local: InternalPort | None = None
    local_error: str | None = None
    local_vlan: tuple[int | None, tuple[int, ...]] | None = None
    local_state: tuple[bool, bool] | None = None
    ifaces: dict[str, AttachedIface] = field(default_factory=dict)
    controllers: tuple[ControllerSpec, ...] | None = None
    protocols: tuple[str, ...] | None = None
    ssl: SslSettings | None = None
    last_ofport: dict[str, int] = field(default_factory=dict)


def datapath_id_for(cfg: BridgeConfig, local: InternalPort | None) -> int:
    """other_config:datapath-id, else the bridge MAC in the low 48 bits."""
    if cfg.datapath_id is not None:
        return cfg.datapath_id
    mac = cfg.hwaddr or (local.host.mac if local else None)
    if mac is None:  # no LOCAL device: derive a stable, locally administered MAC
        digest = uuid.uuid5(uuid.NAMESPACE_DNS, cfg.name).bytes
        mac = bytes([(digest[0] & 0xFC) | 0x02]) + digest[1:6]
    return int.from_bytes(mac, "big")


def internal_host_view(
    host: NetdevInfo | None, peer: NetdevInfo | None, last_seen: NetdevInfo | None
) -> NetdevInfo | None:
    """The host end of an internal port, even after users moved it to another netns.

    People move internal ports into namespaces (as with OVS).  The datapath
    end stays here, and its carrier tells whether the far end is up; the
    identity is what we saw last.
    """
    if host is not None or peer is None or last_seen is None:
        return host
    return dataclasses.replace(last_seen, admin_up=peer.link_up, link_up=peer.link_up,
                               mtu=peer.mtu, stats={})


def _errno_of(exc: BaseException) -> int:
    err = getattr(exc, "errno", None)
    return err if isinstance(err, int) and err > 0 else errno_mod.EINVAL


class BridgeSet:
    """The live bridges, kept equal to the last applied ``SwitchConfig``."""

    def __init__(
        self, netdevs: NetdevProvider, factory: SwitchFactory,
        on_first_apply: Callable[[], Awaitable[object] | object] | None = None,
    ) -> None:
        self.netdevs = netdevs
        self.factory = factory
        self.bridges: dict[str, LiveBridge] = {}
        self._lock = asyncio.Lock()
        self._swept = False
        self._on_first_apply = on_first_apply
        self.ssl: SslSettings | None = None
        #: called when a controller connects or disconnects (to write its row soon)
        self.on_controller_change: Callable[[], None] | None = None

    # ------------------------------------------------------------ apply
    async def apply(self, cfg: SwitchConfig) -> dict[uuid.UUID, InterfaceStatus]:
        """Make the switch match ``cfg``; return every interface's status."""
        _RECONFIGURE.inc()
        async with self._lock:
            self.ssl = cfg.ssl
            wanted = {b.name: b for b in cfg.bridges}
            if not self._swept:
                await self._sweep_stale_internal(cfg)
                self._swept = True
            for name in list(self.bridges):
                if name not in wanted:
                    await self._remove_bridge(self.bridges.pop(name))
            links = await self.netdevs.links()
            for name, live in self.bridges.items():
                await self._prune_ifaces(live, wanted[name], links)
            statuses: dict[uuid.UUID, InterfaceStatus] = {}
            for bcfg in cfg.bridges:
                live = self.bridges.get(bcfg.name)
                if live is None:
                    live = await self._add_bridge(bcfg)
                    self.bridges[bcfg.name] = live
                else:
                    await self._update_bridge(live, bcfg)
                live.cfg = bcfg
                links = await self.netdevs.links()
                for port, iface in bcfg.interfaces():
                    statuses[iface.uuid] = await self._sync_iface(live, port, iface, links)
                self._sync_controllers(live)
            await self._first_apply_done()
            return statuses

    async def _first_apply_done(self) -> None:
        """Run the on_first_apply hook once (every bridge and port is in place now)."""
        hook, self._on_first_apply = self._on_first_apply, None
        if hook is None:
            return
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("first-apply hook failed")

    async def refresh(self) -> dict[uuid.UUID, InterfaceStatus]:
        """Statuses (and link states) of the current config, without DB input."""
        cfg = SwitchConfig(bridges=tuple(b.cfg for b in self.bridges.values()), ssl=self.ssl)
        return await self.apply(cfg)

    async def destroy_all(self) -> None:
        """Remove every bridge with its ports and internal devices (exit --cleanup)."""
        async with self._lock:
            for name in list(self.bridges):
                await self._remove_bridge(self.bridges.pop(name))

    async def close(self) -> None:
        """Stop the OpenFlow connections; leave ports and devices in place."""
        async with self._lock:
            for live in self.bridges.values():
                await self._stop_connmgr(live)

    def datapath_ids(self) -> dict[uuid.UUID, int]:
        return {b.cfg.uuid: b.datapath_id for b in self.bridges.values()}

    def controller_status(self) -> dict[uuid.UUID, ControllerStatus]:
        out: dict[uuid.UUID, ControllerStatus] = {}
        for live in self.bridges.values():
            by_target: dict[str, Any] = {}
            if live.connmgr is not None:
                try:
                    by_target = live.connmgr.controller_db_status() or {}
                except Exception:
                    log.exception("%s: controller_db_status failed", live.cfg.name)
            for row_uuid, spec in live.cfg.controllers:
                st = by_target.get(spec.target) or {}
                out[row_uuid] = ControllerStatus(
                    is_connected=bool(st.get("is_connected", False)),
                    role=st.get("role"),
                    status={str(k): str(v) for k, v in (st.get("status") or {}).items()},
                )
        return out

    def bridge(self, name: str) -> Any | None:
        live = self.bridges.get(name)
        return live.core if live else None

    def names(self) -> list[str]:
        """The running bridges' names, sorted."""
        return sorted(self.bridges)

    # ------------------------------------------------------------ bridges
    async def _add_bridge(self, bcfg: BridgeConfig) -> LiveBridge:
        local: InternalPort | None = None
        local_error: str | None = None
        try:
            local = await self.netdevs.create_internal(bcfg.name, bcfg.hwaddr)
        except (NetdevError, OSError) as exc:
            local_error = could_not_add(bcfg.name, _errno_of(exc))
            log.warning("bridge %s: no LOCAL device: %s", bcfg.name, exc)
        dpid = datapath_id_for(bcfg, local)
        core = self.factory.create_bridge(bcfg.name, dpid, bcfg.fail_mode)
        live = LiveBridge(cfg=bcfg, core=core, datapath_id=dpid, local=local,
                          local_error=local_error)
        if local is not None:
            try:
                core.port_add(bcfg.name, local.peer.ifindex, local.host.mac, local=True)
            except Exception as exc:
                live.local_error = could_not_add(bcfg.name, _errno_of(exc))
                log.warning("bridge %s: LOCAL port: %s", bcfg.name, exc)
        try:
            live.connmgr = await self.factory.start_connmgr(core)
        except Exception:
            log.exception("bridge %s: OpenFlow connection manager failed", bcfg.name)
        else:
            live.connmgr.set_port_admin_hook(
                lambda ofport, up: self._set_port_admin(live, ofport, up))
            live.connmgr.set_status_listener(self._controller_changed)
        log.info("created bridge %s (datapath_id %016x)", bcfg.name, dpid)
        return live

    async def _update_bridge(self, live: LiveBridge, bcfg: BridgeConfig) -> None:
        old = live.cfg
        if bcfg.fail_mode != old.fail_mode:
            setter = getattr(live.core, "set_fail_mode", None)
            if setter is not None:
                setter(bcfg.fail_mode)
            else:
                live.core.fail_mode = bcfg.fail_mode
        if bcfg.hwaddr != old.hwaddr and bcfg.hwaddr is not None and live.local is not None:
            try:
                await self.netdevs.set_mac(live.local.host.ifindex, bcfg.hwaddr)
            except Exception as exc:
                log.warning("bridge %s: cannot set hwaddr: %s", bcfg.name, exc)
        if bcfg.datapath_id != old.datapath_id or bcfg.hwaddr != old.hwaddr:
            dpid = datapath_id_for(bcfg, live.local)
            if bcfg.hwaddr is not None and bcfg.datapath_id is None:
                dpid = int.from_bytes(bcfg.hwaddr, "big")
            if dpid != live.datapath_id:
                live.datapath_id = dpid
                setter = getattr(live.core, "set_datapath_id", None)
                if setter is not None:
                    setter(dpid)
                else:
                    live.core.datapath_id = dpid

    async def _remove_bridge(self, live: LiveBridge) -> None:
        name = live.cfg.name
        for iface in list(live.ifaces.values()):
            await self._detach(live, iface)
        await self._stop_connmgr(live)
        if live.local is not None and live.local_error is None:
            try:
                live.core.port_del(OFPP_LOCAL)
            except Exception as exc:
                log.debug("bridge %s: LOCAL port_del: %s", name, exc)
        try:
            live.core.destroy()
        except Exception:
            log.exception("bridge %s: destroy failed", name)
        if live.local is not None:
            await self._delete_internal(name)
        log.info("deleted bridge %s", name)

    async def _stop_connmgr(self, live: LiveBridge) -> None:
        if live.connmgr is None:
            return
        try:
            await live.connmgr.stop()
        except Exception:
            log.exception("bridge %s: stopping connections failed", live.cfg.name)
        live.connmgr = None

    def _sync_controllers(self, live: LiveBridge) -> None:
        """Bridge.protocols, the SSL row and the controllers, each when it changed."""
        connmgr = live.connmgr
        if connmgr is None:
            return
        try:
            if live.cfg.protocols != live.protocols:
                connmgr.set_protocols(list(live.cfg.protocols))
                live.protocols = live.cfg.protocols
            if self.ssl != live.ssl:
                connmgr.set_ssl(self.ssl)
                live.ssl = self.ssl
            specs = tuple(spec for _uuid, spec in live.cfg.controllers)
            if specs != live.controllers:
                connmgr.set_controllers(list(specs))
                live.controllers = specs
        except Exception:
            log.exception("bridge %s: configuring OpenFlow connections failed", live.cfg.name)

    def _controller_changed(self) -> None:
        if self.on_controller_change is not None:
            self.on_controller_change()

    async def _set_port_admin(self, live: LiveBridge, ofport: int, up: bool) -> None:
        """A PORT_MOD took a port down or up: do the same to its netdev, as OVS does.

        The port's new state (LINK_DOWN follows a device taken down) is
        pushed to the core at once, so the next OpenFlow request sees it."""
        async with self._lock:
            if self.bridges.get(live.cfg.name) is not live:
                return
            att = next((a for a in live.ifaces.values() if a.ofport == ofport), None)
            if att is None and not (ofport == OFPP_LOCAL and live.local is not None):
                return
            name = att.name if att is not None else live.cfg.name
            await self.netdevs.set_admin_state(name, up)
            links = await self.netdevs.links()
            if att is None:
                visible = internal_host_view(links.get(name), links.get(live.local.peer.name),
                                             live.local.host)
            else:
                visible, _counted = self._devices(att, links)
            if visible is None:
                return
            state = (visible.link_up, visible.admin_up)
            self._call(live, "set_port_state", ofport, *state)
            if att is None:
                live.local_state = state
            else:
                att.state = state

    # ------------------------------------------------------------ ports
    async def _prune_ifaces(
        self, live: LiveBridge, bcfg: BridgeConfig, links: dict[str, NetdevInfo]
    ) -> None:
        wanted = {iface.name: iface for _port, iface in bcfg.interfaces()}
        for name, att in list(live.ifaces.items()):
            want = wanted.get(name)
            stale = want is None or want.kind != att.kind
            if not stale and att.kind == "system":
                info = links.get(name)
                stale = info is None or info.ifindex != att.dp_ifindex
            if not stale and want is not None and want.ofport_request is not None:
                stale = want.ofport_request != att.requested
            if stale:
                await self._detach(live, att)

    async def _detach(self, live: LiveBridge, att: AttachedIface) -> None:
        try:
            live.core.port_del(att.ofport)
        except Exception as exc:
            log.warning("%s: port_del(%s) failed: %s", live.cfg.name, att.name, exc)
        live.ifaces.pop(att.name, None)
        if att.kind == "internal":
            await self._delete_internal(att.name)
        log.info("%s: removed port %s (ofport %d)", live.cfg.name, att.name, att.ofport)

    async def _delete_internal(self, name: str) -> None:
        try:
            await self.netdevs.delete_internal(name)
        except Exception as exc:
            log.warning("cannot delete internal device %s: %s", name, exc)

    async def _sync_iface(
        self, live: LiveBridge, port: PortConfig, iface: InterfaceConfig,
        links: dict[str, NetdevInfo],
    ) -> InterfaceStatus:
        if iface.name == live.cfg.name:
            return self._sync_local(live, port, links)
        if iface.kind == "unsupported":
            return InterfaceStatus.failed(unsupported_type(iface.name))
        att = live.ifaces.get(iface.name)
        if att is None:
            result = await self._attach(live, iface, links)
            if isinstance(result, InterfaceStatus):
                return result
            att = result
            links = await self.netdevs.links() if att.kind == "internal" else links
        visible, counted = self._devices(att, links)
        if visible is None or counted is None:
            return InterfaceStatus.failed(no_such_device(iface.name))
        self._push_port_settings(live, att.ofport, port, visible, att)
        return InterfaceStatus.attached(att.ofport, visible, counted)

    def _devices(
        self, att: AttachedIface, links: dict[str, NetdevInfo]
    ) -> tuple[NetdevInfo | None, NetdevInfo | None]:
        visible = links.get(att.name)
        if att.kind == "internal":
            peer = links.get(internal_peer_name(att.name))
            if visible is not None:
                att.host_seen = visible
            return internal_host_view(visible, peer, att.host_seen), peer
        return visible, visible

    async def _attach(
        self, live: LiveBridge, iface: InterfaceConfig, links: dict[str, NetdevInfo]
    ) -> AttachedIface | InterfaceStatus:
        name = iface.name
        if iface.kind == "internal":
            try:
                pair = await self.netdevs.create_internal(name)
            except (NetdevError, OSError) as exc:
                return InterfaceStatus.failed(could_not_add(name, _errno_of(exc)))
            dp_ifindex, mac = pair.peer.ifindex, pair.host.mac
        else:
            info = links.get(name)
            if info is None or name in self.bridges:
                return InterfaceStatus.failed(no_such_device(name))
            dp_ifindex, mac = info.ifindex, info.mac
        try:
            ofport = self._port_add(live, iface, dp_ifindex, mac)
        except Exception as exc:
            log.warning("%s: cannot add port %s: %s", live.cfg.name, name, exc)
            if iface.kind == "internal":
                await self._delete_internal(name)
            return InterfaceStatus.failed(could_not_add(name, _errno_of(exc)))
        att = AttachedIface(name=name, kind=iface.kind, ofport=ofport, dp_ifindex=dp_ifindex,
                            requested=iface.ofport_request)
        live.ifaces[name] = att
        live.last_ofport[name] = ofport
        log.info("%s: added port %s (ofport %d)", live.cfg.name, name, ofport)
        return att

    def _port_add(
        self, live: LiveBridge, iface: InterfaceConfig, dp_ifindex: int, mac: bytes
    ) -> int:
        """Add the port, honouring ofport_request, else reusing its old number."""
        if iface.ofport_request is not None:
            return live.core.port_add(iface.name, dp_ifindex, mac,
                                      ofport_request=iface.ofport_request)
        hint = live.last_ofport.get(iface.name) or iface.ofport_current
        if hint is not None and hint not in {a.ofport for a in live.ifaces.values()}:
            try:
                return live.core.port_add(iface.name, dp_ifindex, mac, ofport_request=hint)
            except Exception as exc:
                log.debug("%s: ofport %d not reusable: %s", iface.name, hint, exc)
        return live.core.port_add(iface.name, dp_ifindex, mac)

    def _sync_local(
        self, live: LiveBridge, port: PortConfig, links: dict[str, NetdevInfo]
    ) -> InterfaceStatus:
        if live.local is None or live.local_error:
            return InterfaceStatus.failed(live.local_error or no_such_device(live.cfg.name))
        counted = links.get(live.local.peer.name)
        visible = internal_host_view(links.get(live.cfg.name), counted, live.local.host)
        if visible is None or counted is None:
            return InterfaceStatus.failed(no_such_device(live.cfg.name))
        vlan = (port.tag, port.trunks)
        if vlan != live.local_vlan:
            self._call(live, "set_port_vlan", OFPP_LOCAL, port.tag, list(port.trunks))
            live.local_vlan = vlan
        state = (visible.link_up, visible.admin_up)
        if state != live.local_state:
            self._call(live, "set_port_state", OFPP_LOCAL, *state)
            live.local_state = state
        return InterfaceStatus.attached(OFPP_LOCAL, visible, counted)

    def _push_port_settings(
        self, live: LiveBridge, ofport: int, port: PortConfig, visible: NetdevInfo,
        att: AttachedIface,
    ) -> None:
        vlan = (port.tag, port.trunks)
        if vlan != att.vlan:
            self._call(live, "set_port_vlan", ofport, port.tag, list(port.trunks))
            att.vlan = vlan
        state = (visible.link_up, visible.admin_up)
        if state != att.state:
            self._call(live, "set_port_state", ofport, *state)
            att.state = state

    @staticmethod
    def _call(live: LiveBridge, method: str, *args: Any) -> None:
        try:
            getattr(live.core, method)(*args)
        except Exception:
            log.exception("%s: %s%r failed", live.cfg.name, method, args)

    async def _sweep_stale_internal(self, cfg: SwitchConfig) -> None:
        """Delete internal devices an earlier run made for rows now gone."""
        wanted = {b.name for b in cfg.bridges}
        for bcfg in cfg.bridges:
            wanted.update(i.name for _p, i in bcfg.interfaces() if i.kind == "internal")
        try:
            names = await self.netdevs.owned_internal_names()
        except Exception:
            log.exception("cannot list internal devices")
            return
        for name in names:
            if name not in wanted:
                log.info("removing stale internal device %s", name)
                await self._delete_internal(name)

