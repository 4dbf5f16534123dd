"""What a bridge does about its controllers coming and going (fail modes).

Open vSwitch's rules, which this follows:

- A bridge with no controller configured in fail mode *standalone* has the
  visible flow ``priority=0 actions=NORMAL``; in *secure* it has no flows.
  Whenever the bridge goes from having controllers to having none or back,
  or its fail mode changes while it has none, every flow is flushed and that
  default is set up again (``ofproto_flush_flows`` + ``connmgr_flushed``).
- *Fail-open* (standalone with controllers): once no controller has been
  connected for three inactivity-probe intervals, the flows are flushed and
  a hidden catch-all NORMAL rule above every flow makes the bridge a
  learning switch; as soon as a controller connects that rule goes away
  (the controller then installs what it wants).

This module keeps that state; the bridge does the flushing.
"""

from __future__ import annotations

import time
from typing import Protocol

PROBE_INTERVAL_S = 5.0  # OVS's default Controller.inactivity_probe
FAIL_OPEN_AFTER_S = 3 * PROBE_INTERVAL_S


class ControllerMonitor(Protocol):
    """What fail modes read from the connection manager.

    A monitor may also have an int ``status_epoch`` that changes whenever
    what these two methods return may have changed (controllers configured,
    connected, disconnected): then a bridge whose state depends on nothing
    else skips asking them (a FLOW_MOD checks the fail modes first).
    """

    def controller_status(self) -> dict[str, dict]: ...

    def has_controllers_connected(self) -> bool: ...


class FailOpen:
    def __init__(self, fail_after_s: float = FAIL_OPEN_AFTER_S) -> None:
        self.fail_after_s = fail_after_s
        self.monitor: ControllerMonitor | None = None
        self.active = False
        self.had_controllers = False
        self._last_connected = time.monotonic()
        # The monitor's status_epoch when a full check last found a state
        # that only a status change can alter (None: check fully next time),
        # and whether a controller was connected then.
        self._steady_epoch: int | None = None
        self._steady_connected = False

    def watch(self, monitor: ControllerMonitor | None) -> None:
        self.monitor = monitor
        self._last_connected = time.monotonic()
        self.unsteady()

    def unsteady(self) -> None:
        """Something besides the monitor changed (the fail mode): check fully next time."""
        self._steady_epoch = None

    def steady(self, now: float | None = None) -> bool:
        """True if nothing the fail modes depend on changed since the last full
        check found a steady state; a connected controller stays "last seen now"."""
        epoch = self._steady_epoch
        if epoch is None or getattr(self.monitor, "status_epoch", None) != epoch:
            return False
        if self._steady_connected:
            self._last_connected = time.monotonic() if now is None else now
        return True

    def checked(self, fail_mode: str, is_open: bool) -> None:
        """After a full check leaving the fail-open rule ``is_open``: is the
        state steady until the monitor's next status change?  Not while the
        time since the controllers left is running towards fail-open."""
        epoch = getattr(self.monitor, "status_epoch", None)
        waiting = fail_mode == "standalone" and self.had_controllers and not is_open
        self._steady_connected = waiting and self._connected()
        self._steady_epoch = epoch if (not waiting or self._steady_connected) else None

    def has_controllers(self) -> bool:
        if self.monitor is None:
            return False
        try:
            return bool(self.monitor.controller_status())
        except Exception:
            return False

    def _connected(self) -> bool:
        try:
            return self.monitor is not None and self.monitor.has_controllers_connected()
        except Exception:
            return False

    def controllers_changed(self) -> bool:
        """True once each time the bridge gains its first or loses its last controller."""
        has = self.has_controllers()
        if has == self.had_controllers:
            return False
        self.had_controllers = has
        self._last_connected = time.monotonic()  # a new controller gets its chance
        return True

    def should_be_open(self, fail_mode: str, now: float | None = None) -> bool:
        """Should the fail-open rule be in place now?"""
        now = time.monotonic() if now is None else now
        if fail_mode != "standalone" or not self.had_controllers:
            return False
        if self._connected():
            self._last_connected = now
            return False
        return now - self._last_connected >= self.fail_after_s
