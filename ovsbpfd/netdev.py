"""Linux network devices as the vswitch sees them (pyroute2).

Two jobs: describe existing netdevs (ifindex, MAC, up/carrier, counters) and
create or delete the devices behind ``type=internal`` interfaces.

An internal port is a veth pair.  The end the host sees carries the
interface's name (``br0``) and is where the host sends and receives; its peer
(``ovs`` + 8 hex digits of a hash of the name) is what the datapath attaches
to, so a packet the switch outputs to the peer is received by the host on
``br0`` and vice versa.  Both ends carry an owner tag as their alias (by
default ``OWNER_ALIAS``; a daemon adds its datapath's pin root so that two
daemons on one host never take each other's devices): only devices that carry
it are ever deleted, so a foreign ``br0`` is never touched.

pyroute2's synchronous API runs its own event loop and therefore cannot be
called from a thread that runs asyncio; ``NetdevThread`` runs the calls on a
dedicated worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger(__name__)

OWNER_ALIAS = "ovsbpfd internal port"
IFNAMSIZ = 16  # including the terminating NUL
IFF_UP = 0x1
IFF_RUNNING = 0x40

T = TypeVar("T")


@dataclass(frozen=True)
class NetdevInfo:
    """A snapshot of one netdev's identity and state."""

    name: str
    ifindex: int
    mac: bytes
    admin_up: bool
    link_up: bool
    mtu: int
    kind: str = ""  # IFLA_INFO_KIND ("veth", ...); "" for plain devices
    alias: str = ""
    peer_ifindex: int = 0  # IFLA_LINK: a veth's peer
    stats: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def mac_str(self) -> str:
        return format_mac(self.mac)


@dataclass(frozen=True)
class InternalPort:
    """The two ends of an internal port's veth pair."""

    host: NetdevInfo  # named like the interface, seen by the host
    peer: NetdevInfo  # attached to the datapath


class NetdevError(Exception):
    """A netdev operation failed; ``errno`` as the kernel reported it."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def parse_mac(text: str) -> bytes | None:
    """``aa:bb:cc:dd:ee:ff`` -> 6 bytes, None when malformed."""
    parts = text.strip().split(":")
    if len(parts) != 6:
        return None
    try:
        mac = bytes(int(p, 16) for p in parts)
    except ValueError:
        return None
    return mac if all(len(p) <= 2 for p in parts) else None


def valid_ifname(name: str) -> bool:
    return 0 < len(name.encode()) < IFNAMSIZ and "/" not in name and not any(
        c.isspace() for c in name
    ) and name not in (".", "..")


def internal_peer_name(name: str) -> str:
    """The datapath-side name of internal port ``name`` (stable, <= 15 chars)."""
    return "ovs" + hashlib.sha1(name.encode()).hexdigest()[:8]


def _link_info(msg: Any) -> NetdevInfo:
    linkinfo = msg.get("IFLA_LINKINFO")
    kind = linkinfo.get("IFLA_INFO_KIND") if linkinfo else None
    flags = int(msg["flags"])
    address = msg.get("IFLA_ADDRESS") or "00:00:00:00:00:00"
    return NetdevInfo(
        name=msg.get("IFLA_IFNAME"),
        ifindex=int(msg["index"]),
        mac=parse_mac(address) or bytes(6),
        admin_up=bool(flags & IFF_UP),
        link_up=bool(flags & IFF_RUNNING),
        mtu=int(msg.get("IFLA_MTU") or 0),
        kind=kind or "",
        alias=msg.get("IFLA_IFALIAS") or "",
        peer_ifindex=int(msg.get("IFLA_LINK") or 0),
        stats=dict(msg.get("IFLA_STATS64") or {}),
    )


class Netdevs:
    """Synchronous netdev operations on one rtnetlink socket.

    Not for use on a thread running an asyncio loop (see NetdevThread).
    """

    def __init__(self, owner: str = OWNER_ALIAS) -> None:
        self.owner = owner[:255]
        self._ipr: IPRoute | None = None

    def ours(self, info: NetdevInfo) -> bool:
        return info.alias == self.owner

    @property
    def ipr(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    # ------------------------------------------------------------ lookups
    def lookup(self, name: str) -> NetdevInfo | None:
        if not valid_ifname(name):
            return None
        indexes = self.ipr.link_lookup(ifname=name)
        if not indexes:
            return None
        return self.by_index(indexes[0])

    def by_index(self, ifindex: int) -> NetdevInfo | None:
        try:
            msgs = self.ipr.get_links(ifindex)
        except NetlinkError as exc:
            if exc.code in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _link_info(msgs[0]) if msgs else None

    def all_links(self) -> dict[str, NetdevInfo]:
        """Every netdev of this network namespace, by name."""
        out = {}
        for msg in self.ipr.get_links():
            info = _link_info(msg)
            out[info.name] = info
        return out

    # ------------------------------------------------------------ internal
    def internal_port(self, name: str) -> InternalPort | None:
        """The existing pair for ``name`` if ovsbpfd created it, else None."""
        host = self.lookup(name)
        peer = self.lookup(internal_peer_name(name))
        if host is None or peer is None or not (self.ours(host) and self.ours(peer)):
            return None
        if host.peer_ifindex != peer.ifindex:
            return None
        return InternalPort(host, peer)

    def create_internal(self, name: str, mac: bytes | None = None) -> InternalPort:
        """Create (or adopt our existing) veth pair for internal port ``name``.

        Raises NetdevError(EEXIST) when a device of that name exists and is
        not ours, EINVAL for an unusable name.
        """
        if not valid_ifname(name):
            raise NetdevError(errno.EINVAL, f"{name}: invalid network device name")
        existing = self.internal_port(name)
        if existing is not None:
            return existing
        peer_name = internal_peer_name(name)
        if self.lookup(name) is not None:
            raise NetdevError(errno.EEXIST, f"{name}: device exists and is not ours")
        stale_peer = self.lookup(peer_name)
        if stale_peer is not None and self.ours(stale_peer):
            self.ipr.link("del", index=stale_peer.ifindex)  # half a pair of ours
        try:
            self.ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer_name})
        except NetlinkError as exc:
            raise NetdevError(exc.code, f"{name}: {os.strerror(exc.code)}") from exc
        try:
            host = self.lookup(name)
            peer = self.lookup(peer_name)
            if host is None or peer is None:
                raise NetdevError(errno.ENODEV, f"{name}: veth pair vanished")
            host_args: dict[str, Any] = {"ifalias": self.owner}
            if mac is not None:
                host_args["address"] = format_mac(mac)
            self.ipr.link("set", index=host.ifindex, **host_args)
            self.ipr.link("set", index=peer.ifindex, ifalias=self.owner, state="up")
        except BaseException:
            with contextlib.suppress(NetlinkError):
                self.ipr.link("del", ifname=name)
            raise
        pair = self.internal_port(name)
        if pair is None:
            raise NetdevError(errno.ENODEV, f"{name}: veth pair vanished")
        return pair

    def delete_internal(self, name: str) -> bool:
        """Delete internal port ``name`` if ovsbpfd created it; True if it did."""
        pair = self.internal_port(name)
        if pair is None:
            return False
        try:
            self.ipr.link("del", index=pair.host.ifindex)  # takes the peer along
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise
        return True

    def set_mac(self, ifindex: int, mac: bytes) -> None:
        self.ipr.link("set", index=ifindex, address=format_mac(mac))

    def set_admin_state(self, name: str, up: bool) -> None:
        """Take netdev ``name`` administratively up or down (``ip link set``)."""
        info = self.lookup(name)
        if info is None:
            raise NetdevError(errno.ENODEV, f"{name}: no such device")
        try:
            self.ipr.link("set", index=info.ifindex, state="up" if up else "down")
        except NetlinkError as exc:
            raise NetdevError(exc.code, f"{name}: {os.strerror(exc.code)}") from exc


class NetdevThread:
    """Runs ``Netdevs`` calls on one worker thread, awaitable from asyncio."""

    def __init__(self, owner: str = OWNER_ALIAS) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netdev")
        self.netdevs = Netdevs(owner)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run on the worker and wait (for use outside a running loop)."""
        return self._executor.submit(fn, *args).result()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._executor.submit(self.netdevs.close).result(timeout=5)
        self._executor.shutdown(wait=True)


# ---------------------------------------------------------------- watching

RTMGRP_LINK = 1
NETLINK_ROUTE = 0


class LinkWatcher:
    """Calls ``on_change()`` soon after any netdev appears, changes or goes.

    It only listens on an rtnetlink multicast socket and coalesces bursts;
    the callback re-reads whatever it cares about.
    """

    def __init__(self, on_change: Callable[[], None], delay: float = 0.05) -> None:
        self._on_change = on_change
        self._delay = delay
        self._sock: socket.socket | None = None
        self._pending: asyncio.TimerHandle | None = None

    def start(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, RTMGRP_LINK))
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def stop(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # ENOBUFS: we lost events; rescan anyway
                log.debug("netlink watcher: %s", exc)
                break
            if len(data) < struct.calcsize("=LHHLL"):
                break
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.call_later(self._delay, self._fire)

    def _fire(self) -> None:
        self._pending = None
        try:
            self._on_change()
        except Exception:
            log.exception("netdev change handler failed")


class AsyncNetdevs:
    """The netdev operations the vswitch needs, awaitable (on NetdevThread)."""

    def __init__(self, owner: str = OWNER_ALIAS) -> None:
        self._thread = NetdevThread(owner)

    @property
    def owner(self) -> str:
        return self._thread.netdevs.owner

    async def links(self) -> dict[str, NetdevInfo]:
        return await self._thread.call(self._thread.netdevs.all_links)

    async def create_internal(self, name: str, mac: bytes | None = None) -> InternalPort:
        return await self._thread.call(self._thread.netdevs.create_internal, name, mac)

    async def delete_internal(self, name: str) -> bool:
        return await self._thread.call(self._thread.netdevs.delete_internal, name)

    async def set_mac(self, ifindex: int, mac: bytes) -> None:
        await self._thread.call(self._thread.netdevs.set_mac, ifindex, mac)

    async def set_admin_state(self, name: str, up: bool) -> None:
        await self._thread.call(self._thread.netdevs.set_admin_state, name, up)

    async def owned_internal_names(self) -> list[str]:
        """Host-side names of every internal port this owner created."""
        links = await self.links()
        nd = self._thread.netdevs
        return sorted(
            info.name for info in links.values()
            if nd.ours(info) and info.name != internal_peer_name(info.name)
            and links.get(internal_peer_name(info.name)) is not None
        )

    def close(self) -> None:
        self._thread.close()
