"""The vswitch: an OVSDB IDL client that keeps the bridges equal to the DB.

On every database change it snapshots the configuration, lets ``BridgeSet``
apply it, and writes the outcome back (Interface ofport/error/ifindex/...,
Bridge.datapath_id, Controller status, Open_vSwitch versions) together with
``cur_cfg = next_cfg`` in one transaction, so a waiting ``ovs-vsctl`` sees the
ofports of the interfaces it added at the moment it sees the new cur_cfg.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

import ovs.db.idl
import ovs.json

from ovsbpfd.vswitch.bridges import BridgeSet
from ovsbpfd.vswitch.config import SwitchConfig, read_config
from ovsbpfd.vswitch.ovs_async import OvsLoopDriver
from ovsbpfd.vswitch.status import ControllerStatus, InterfaceStatus

log = logging.getLogger(__name__)

#: table -> (columns read, columns written); written ones do not wake us up
COLUMNS: dict[str, tuple[list[str], list[str]]] = {
    "Open_vSwitch": (
        ["bridges", "next_cfg", "ssl"],
        ["cur_cfg", "ovs_version", "db_version", "datapath_types", "iface_types"],
    ),
    "Bridge": (
        ["name", "ports", "controller", "fail_mode", "other_config", "datapath_type",
         "protocols"],
        ["datapath_id"],
    ),
    "Port": (["name", "interfaces", "tag", "trunks"], []),
    "Interface": (
        ["name", "type", "ofport_request"],
        ["ofport", "ifindex", "mac_in_use", "admin_state", "link_state", "error",
         "statistics", "mtu"],
    ),
    "Controller": (
        ["target", "type", "max_backoff", "inactivity_probe", "connection_mode",
         "enable_async_messages", "controller_rate_limit", "controller_burst_limit"],
        ["is_connected", "role", "status"],
    ),
    "SSL": (["private_key", "certificate", "ca_cert", "bootstrap_ca_cert"], []),
}

IFACE_TYPES = ["internal", "system"]


def schema_path() -> str:
    return str(resources.files("ovsbpfd") / "schemas" / "vswitch.ovsschema")


def make_idl(remote: str, schema_file: str | None = None) -> ovs.db.idl.Idl:
    helper = ovs.db.idl.SchemaHelper(location=schema_file or schema_path())
    for table, (read, written) in COLUMNS.items():
        helper.register_columns(table, read + written)
    idl = ovs.db.idl.Idl(remote, helper)
    for table, (_read, written) in COLUMNS.items():
        for column in written:
            idl.tables[table].columns[column].alert = False
    return idl


@dataclass
class _PendingTxn:
    txn: ovs.db.idl.Transaction
    next_cfg: int | None


class Vswitch:
    """Drives a ``BridgeSet`` from the Open_vSwitch database at ``remote``."""

    def __init__(
        self,
        remote: str,
        bridges: BridgeSet,
        *,
        version: str,
        datapath_types: list[str],
        stats_interval: float = 5.0,
        schema_file: str | None = None,
    ) -> None:
        self.remote = remote
        self.bridges = bridges
        self.version = version
        self.datapath_types = datapath_types
        self.stats_interval = stats_interval
        self.idl = make_idl(remote, schema_file)
        self.db_version = str(self.idl._db.version or "")
        self._driver = OvsLoopDriver(self._step, self.idl.wait)
        self._seen_seqno = -1
        self._dirty = False
        self._want_stats = True
        self._last_applied: SwitchConfig | None = None
        #: apply even if the config is unchanged (netdevs changed, a retry);
        #: a flag, not ``_last_applied = None``, since an apply in flight
        #: would overwrite that and the change would wait for the stats tick
        self._force_apply = False
        self._reconcile_task: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._pending: list[_PendingTxn] = []
        self._retry: asyncio.TimerHandle | None = None
        self._stopped = False
        self.acked_cfg: int | None = None  # last cur_cfg the DB accepted from us
        self.settled = asyncio.Event()
        bridges.on_controller_change = self._controller_changed

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._driver.start()
        self._stats_task = asyncio.create_task(self._stats_loop())

    async def stop(self) -> None:
        """Stop talking to the DB; bridges stay (see BridgeSet.close/destroy_all)."""
        self._stopped = True
        self._driver.stop()
        if self._retry is not None:
            self._retry.cancel()
        for task in (self._stats_task, self._reconcile_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.idl.close()

    def _controller_changed(self) -> None:
        """A controller connected or went: write its row soon, as OVS does."""
        self._want_stats = True
        self._request_reconcile()

    def netdevs_changed(self) -> None:
        """A netdev appeared, changed or went away: look again."""
        self._force_apply = True
        self._request_reconcile()

    # ------------------------------------------------------------ DB loop
    def _step(self) -> None:
        self.idl.run()
        self._check_pending()
        if (
            self.idl.state == ovs.db.idl.Idl.IDL_S_MONITORING
            and self.idl.change_seqno != self._seen_seqno
        ):
            self._seen_seqno = self.idl.change_seqno
            self._request_reconcile()

    def _request_reconcile(self) -> None:
        if self._stopped:
            return
        self._dirty = True
        if self._reconcile_task is None or self._reconcile_task.done():
            self._reconcile_task = asyncio.create_task(self._reconcile_loop())

    async def _reconcile_loop(self) -> None:
        while self._dirty and not self._stopped:
            self._dirty = False
            if self.idl.state != ovs.db.idl.Idl.IDL_S_MONITORING:
                return  # the next successful (re)connect wakes us again
            cfg = read_config(self.idl)
            if cfg == self._last_applied and not (self._want_stats or self._force_apply):
                continue
            # Taken before the apply: a request arriving while it runs (the
            # apply may have read the netdevs already) goes round once more.
            with_stats, self._want_stats = self._want_stats, False
            self._force_apply = False
            try:
                statuses = await self.bridges.apply(cfg)
            except Exception:
                log.exception("applying the configuration failed")
                self._want_stats |= with_stats
                self._schedule_retry()
                continue
            if self._write_status(cfg, statuses, with_stats):
                self._last_applied = cfg
            else:
                self._want_stats |= with_stats

    def _schedule_retry(self, delay: float = 1.0) -> None:
        if self._retry is None and not self._stopped:
            def fire() -> None:
                self._retry = None
                self._force_apply = True
                self._request_reconcile()

            self._retry = asyncio.get_running_loop().call_later(delay, fire)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            self._want_stats = True
            self._request_reconcile()

    # ------------------------------------------------------------ write back
    def _write_status(
        self, cfg: SwitchConfig, statuses: dict[uuid.UUID, InterfaceStatus], with_stats: bool
    ) -> bool:
        """Queue one transaction with every status column; False if it could not."""
        if self.idl.state != ovs.db.idl.Idl.IDL_S_MONITORING:
            return False
        txn = ovs.db.idl.Transaction(self.idl)
        txn.add_comment("ovsbpfd: status update")
        root = self.idl.tables["Open_vSwitch"].rows.get(cfg.root_uuid) if cfg.root_uuid else None
        try:
            ifaces = self.idl.tables["Interface"].rows
            for row_uuid, st in statuses.items():
                row = ifaces.get(row_uuid)
                if row is not None:
                    _write_interface(row, st, with_stats or not row.statistics)
            bridge_rows = self.idl.tables["Bridge"].rows
            for row_uuid, dpid in self.bridges.datapath_ids().items():
                row = bridge_rows.get(row_uuid)
                if row is not None:
                    _set(row, "datapath_id", [f"{dpid:016x}"])
            ctl_rows = self.idl.tables["Controller"].rows
            for row_uuid, cst in self.bridges.controller_status().items():
                row = ctl_rows.get(row_uuid)
                if row is not None:
                    _write_controller(row, cst)
            if root is not None:
                _set(root, "ovs_version", [self.version])
                _set(root, "db_version", [self.db_version] if self.db_version else [])
                _set(root, "datapath_types", sorted(self.datapath_types))
                _set(root, "iface_types", IFACE_TYPES)
                if root.cur_cfg != cfg.next_cfg:
                    root.cur_cfg = cfg.next_cfg
        except Exception:
            log.exception("composing the status transaction failed")
            txn.abort()
            self._schedule_retry()
            return False
        status = txn.commit()
        if status == ovs.db.idl.Transaction.INCOMPLETE:
            self._pending.append(_PendingTxn(txn, cfg.next_cfg if root is not None else None))
            self._driver.kick()
        elif status not in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
            log.info("status transaction: %s", ovs.db.idl.Transaction.status_to_string(status))
            self._schedule_retry(0.2)
            return False
        return True

    def _check_pending(self) -> None:
        still: list[_PendingTxn] = []
        for p in self._pending:
            status = p.txn.commit()
            if status == ovs.db.idl.Transaction.INCOMPLETE:
                still.append(p)
            elif status in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
                if p.next_cfg is not None:
                    self.acked_cfg = p.next_cfg
                    self.settled.set()
            else:
                log.info("status transaction %s: %s",
                         ovs.db.idl.Transaction.status_to_string(status), p.txn.get_error())
                self._schedule_retry(0.2)
        self._pending = still


def _set(row: Any, column: str, value: Any) -> None:
    """Write only real changes (write-only columns skip equal values anyway)."""
    if getattr(row, column) != value:
        setattr(row, column, value)


def _write_interface(row: Any, st: InterfaceStatus, with_stats: bool) -> None:
    _set(row, "ofport", [st.ofport])
    _set(row, "error", [st.error] if st.error else [])
    _set(row, "ifindex", [st.ifindex] if st.ifindex is not None else [])
    _set(row, "mac_in_use", [st.mac_in_use] if st.mac_in_use else [])
    _set(row, "admin_state", [st.admin_state] if st.admin_state else [])
    _set(row, "link_state", [st.link_state] if st.link_state else [])
    _set(row, "mtu", [st.mtu] if st.mtu else [])
    if with_stats:
        _set(row, "statistics", dict(st.statistics))


def _write_controller(row: Any, st: ControllerStatus) -> None:
    _set(row, "is_connected", st.is_connected)
    _set(row, "role", [st.role] if st.role else [])
    _set(row, "status", dict(st.status))
