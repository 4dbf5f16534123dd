"""Controller.controller_rate_limit / controller_burst_limit for PACKET_IN.

A token bucket per controller connection: ``rate`` packet-ins per second
with bursts of ``burst`` (default rate/4, at least 1, as ovs-vswitchd's
pinsched).  ovs-vswitchd queues the excess for later; this switch drops it
(the packets' flows are still translated when they come again).
"""

from __future__ import annotations

from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec


class PacketInLimiter:
    def __init__(self, rate: int, burst: int | None = None) -> None:
        self.rate = float(rate)
        self.burst = float(max(1, burst if burst else rate // 4))
        self.tokens = self.burst
        self.stamp: float | None = None
        self.dropped = 0
        self.sent = 0

    @classmethod
    def for_spec(cls, spec: ControllerSpec) -> PacketInLimiter | None:
        if spec.rate_limit is None:
            return None
        return cls(spec.rate_limit, spec.burst_limit)

    def allow(self, now: float) -> bool:
        """Take one token if there is one (``now`` in seconds, monotonic)."""
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.sent += 1
            return True
        self.dropped += 1
        return False
