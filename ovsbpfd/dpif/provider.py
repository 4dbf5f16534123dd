"""The datapath provider interface (OVS's ``dpif``), in Python.

ofproto talks to the datapath only through this class.  One instance is one
datapath (like OVS's single ``ovs-system`` datapath shared by all bridges):
datapath port numbers are global to it and distinct from OpenFlow port
numbers, which belong to ofproto.

Providers: ``dummy`` (pure Python, for unit tests and hosts without BPF) and
``bpf`` (TC programs through libbpf).  Both must pass the same conformance
tests (tests/dpif/).
"""

from __future__ import annotations

import abc
import errno as errno_mod
from collections.abc import Sequence

from ovsbpfd.dpif.types import (
    DpAction,
    DpFlow,
    DpPort,
    DpStats,
    FlowKey,
    FlowStats,
    MeterBand,
    MeterFeatures,
    MeterStats,
    PortStats,
    Upcall,
)


class DpifError(Exception):
    """A datapath operation failed; ``errno`` says why, as in OVS."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno


class Dpif(abc.ABC):
    """A datapath: ports, megaflows, packet execution and upcalls."""

    #: provider type, as shown by ``dpctl/show`` (``bpf@ovs-system``)
    type: str = ""
    name: str = "ovs-system"

    # ------------------------------------------------------------ ports
    @abc.abstractmethod
    def port_add(self, name: str, ifindex: int, port_no: int | None = None) -> int:
        """Attach the netdev ``name`` (``ifindex``) and return its port number.

        Packets received on the device enter the datapath with that in_port;
        ``Output(port_no)`` transmits on it.  ``port_no`` requests a number
        (EEXIST if taken); otherwise the lowest free number >= 1 is used.

        Takeover after a restart: a port that was already in the datapath when
        this handle opened (a previous process added it, see
        ``recovered_ports``) is *adopted* by a port_add with the same name and
        ifindex (and ``port_no`` None or equal): its number is returned and
        its filter and counters stay, so installed flows remain valid.  Only
        the first such call adopts; later duplicates get EEXIST as usual.  A
        recovered port that shares only the name or only the ifindex is stale
        (its device was replaced or renamed): it is removed and the port is
        added afresh.
        """

    @abc.abstractmethod
    def port_del(self, port_no: int) -> None:
        """Detach the port (only what this datapath attached).  ENOENT if unknown."""

    @abc.abstractmethod
    def port_list(self) -> list[DpPort]:
        ...

    def recovered_ports(self) -> list[DpPort]:
        """Ports found in the datapath on open that no port_add has adopted yet.

        A restarted daemon adopts the ones its configuration still names and
        removes the rest.  Providers without persistent state have none.
        """
        return []

    @abc.abstractmethod
    def port_stats(self, port_no: int) -> PortStats:
        ...

    # ------------------------------------------------------------ flows
    @abc.abstractmethod
    def flow_put(
        self,
        key: FlowKey,
        mask: FlowKey,
        actions: Sequence[DpAction],
        *,
        create: bool = True,
        modify: bool = True,
        reset_stats: bool = False,
    ) -> None:
        """Install or change the megaflow (key & mask) -> actions.

        ``key`` need not be pre-masked.  EEXIST if it exists and not
        ``modify``; ENOENT if missing and not ``create``; EFBIG/E2BIG if the
        mask or action table is full or the actions are too long.
        """

    def flow_put_many(
        self, flows: Sequence[tuple[FlowKey, FlowKey, Sequence[DpAction]]],
    ) -> list[DpifError | None]:
        """``flow_put(key, mask, actions)`` (create or modify, counters kept)
        for each flow in order; per flow None or the error it met.

        The same outcome as the calls one by one: providers may batch them
        (the upcall handler installs a whole batch of megaflows at once)."""
        results: list[DpifError | None] = []
        for key, mask, actions in flows:
            try:
                self.flow_put(key, mask, actions)
            except DpifError as err:
                results.append(err)
            else:
                results.append(None)
        return results

    def flow_add_many(
        self, flows: Sequence[tuple[FlowKey, FlowKey, Sequence[DpAction]]],
    ) -> list[DpifError | None]:
        """Add flows the caller knows are not in the datapath (every megaflow
        a batch of misses makes); per flow None or the error it met.

        Providers may write them all at once, replacing (counters and all)
        a flow that was there after all; this one is ``flow_put_many``."""
        return self.flow_put_many(flows)

    @abc.abstractmethod
    def flow_get(self, key: FlowKey, mask: FlowKey) -> DpFlow | None:
        ...

    @abc.abstractmethod
    def flow_del(self, key: FlowKey, mask: FlowKey) -> FlowStats | None:
        """Remove the megaflow; return its final stats, None if it was absent."""

    @abc.abstractmethod
    def flow_dump(self) -> list[DpFlow]:
        ...

    def flow_dump_stats(self) -> list[tuple[bytes, bytes, FlowStats]]:
        """(packed masked key, packed mask, counters) of every flow: what the
        once-a-second sweep reads, which providers can give without decoding
        keys and actions."""
        return [(f.key.masked_bytes(f.mask), f.mask.pack(), f.stats) for f in self.flow_dump()]

    @abc.abstractmethod
    def flow_flush(self) -> None:
        ...

    def flow_limit(self) -> int:
        """How many megaflows the datapath can hold (``upcall/show``); 0: no fixed limit."""
        return 0

    # ------------------------------------------------------------ packets
    @abc.abstractmethod
    def execute(self, packet: bytes, actions: Sequence[DpAction]) -> None:
        """Apply ``actions`` to ``packet`` (e.g. the packet of a miss upcall)."""

    def execute_many(
        self, batch: Sequence[tuple[bytes, Sequence[DpAction]]],
    ) -> list[DpifError | None]:
        """``execute`` each (packet, actions) in order; per packet None or the
        error it met.  Providers may hand the transmissions over together."""
        results: list[DpifError | None] = []
        for packet, actions in batch:
            try:
                self.execute(packet, actions)
            except DpifError as err:
                results.append(err)
            else:
                results.append(None)
        return results

    @abc.abstractmethod
    def recv(self, max_batch: int = 64) -> list[Upcall]:
        """Drain up to ``max_batch`` pending upcalls without blocking."""

    @abc.abstractmethod
    def upcall_fd(self) -> int:
        """A file descriptor that polls readable when ``recv`` has work."""

    @abc.abstractmethod
    def stats(self) -> DpStats:
        ...

    # ------------------------------------------------------------ meters
    # OVS's dpif meter_set/meter_get/meter_del.  Providers without meters keep
    # these defaults, so a Meter action is refused by their flow_put instead.
    def meter_features(self) -> MeterFeatures:
        """Limits and capabilities of this datapath's meters."""
        raise DpifError(errno_mod.EOPNOTSUPP, f"{self.type or 'this'} datapath has no meters")

    def meter_set(self, meter_id: int, bands: Sequence[MeterBand], kbps: bool,
                  burst: bool = False) -> None:
        """Create or replace meter ``meter_id`` (0 .. max_meters-1).

        Rates are pkts/s (kbit/s if ``kbps``); each band's bucket holds
        ``burst_size`` packets (kbits) when ``burst`` and burst_size > 0, else
        one second of its rate.  Buckets start full; a replaced meter starts
        over with full buckets and zero counters.  EINVAL for a bad id or bad
        bands (none, too many, rate 0, values out of range), EOPNOTSUPP for a
        band type other than "drop"; a failed call changes nothing.
        """
        raise DpifError(errno_mod.EOPNOTSUPP, f"{self.type or 'this'} datapath has no meters")

    def meter_get(self, meter_id: int) -> MeterStats:
        """The meter's counters; ENOENT if it is not set, EINVAL for a bad id."""
        raise DpifError(errno_mod.EOPNOTSUPP, f"{self.type or 'this'} datapath has no meters")

    def meter_del(self, meter_id: int) -> MeterStats:
        """Remove the meter and return its final counters (ENOENT/EINVAL as meter_get).

        Flows that still name it let their packets through from now on.
        """
        raise DpifError(errno_mod.EOPNOTSUPP, f"{self.type or 'this'} datapath has no meters")

    def now_ns(self) -> int:
        """The datapath clock that ``FlowStats.used_ns`` is measured on."""
        import time

        return time.monotonic_ns()

    def close(self) -> None:  # noqa: B027 - optional for providers without handles
        """Release this process's handles.  Pinned state stays (restart)."""

    def destroy(self) -> None:
        """Detach every port and remove all state this datapath created."""
        for port in self.port_list():
            self.port_del(port.port_no)
        self.flow_flush()
        self.close()
