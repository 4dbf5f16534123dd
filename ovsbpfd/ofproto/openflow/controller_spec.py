"""How one Controller row asks to be connected, in ovs-vswitchd's terms.

``ControllerSpec.from_db`` turns the row's columns into the settings the
connection manager uses, with ovs-vswitchd's defaults and rounding
(bridge.c ``bridge_configure_remotes``): milliseconds become whole seconds,
an unset inactivity probe is 5 s and 0 disables it, an unset max_backoff is
8 s, and a target without ``type`` is a primary controller when it is an
active one (tcp:, ssl:, unix:) and a service connection when it listens.
"""

from __future__ import annotations

from dataclasses import dataclass

PRIMARY = "primary"
SERVICE = "service"
ACTIVE_METHODS = ("tcp", "ssl", "unix")

DEFAULT_MAX_BACKOFF = 8.0
DEFAULT_PROBE_INTERVAL = 5.0


@dataclass(frozen=True)
class ControllerSpec:
    target: str
    kind: str = PRIMARY
    max_backoff: float = DEFAULT_MAX_BACKOFF  # seconds, at least 1
    probe_interval: float | None = DEFAULT_PROBE_INTERVAL  # None: never probe
    in_band: bool = False  # accepted; connections always go out of band here
    enable_async: bool = True  # False: no async messages until SET_ASYNC
    rate_limit: int | None = None  # packet-ins per second
    burst_limit: int | None = None

    @classmethod
    def from_db(cls, target: str, *, type_: str | None = None,
                max_backoff_ms: int | None = None, inactivity_probe_ms: int | None = None,
                connection_mode: str | None = None, enable_async_messages: bool | None = None,
                rate_limit: int | None = None, burst_limit: int | None = None,
                ) -> ControllerSpec:
        method = target.partition(":")[0]
        kind = type_ if type_ in (PRIMARY, SERVICE) else (
            PRIMARY if method in ACTIVE_METHODS else SERVICE)
        return cls(
            target=target,
            kind=kind,
            max_backoff=max(1, max_backoff_ms // 1000) if max_backoff_ms else DEFAULT_MAX_BACKOFF,
            probe_interval=probe_seconds(inactivity_probe_ms),
            in_band=connection_mode in (None, "in-band"),
            enable_async=enable_async_messages is not False,
            rate_limit=rate_limit if rate_limit and rate_limit > 0 else None,
            burst_limit=burst_limit if burst_limit and burst_limit > 0 else None,
        )


def probe_seconds(inactivity_probe_ms: int | None) -> float | None:
    """Controller.inactivity_probe as ovs-vswitchd reads it."""
    if inactivity_probe_ms is None:
        return DEFAULT_PROBE_INTERVAL
    if inactivity_probe_ms <= 0:
        return None
    return float(max(1, inactivity_probe_ms // 1000))
