"""The packet-in scheduler (rate_limit.py), on a fake clock, as ovs-vswitchd's pinsched."""

from __future__ import annotations

from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec
from ovsbpfd.ofproto.openflow.rate_limit import MAX_PER_RUN, PacketInLimiter, PinScheduler
from ovsbpfd.ofproto.types import OFPR_ACTION, OFPR_NO_MATCH
from tests.ofproto.openflow.of_client import running_manager
from tests.ofproto.openflow.of_stub_core import StubCore
from tests.ofproto.openflow.test_of_controller_settings import Controller, async_test, wait_for


class FakeLoop:
    """A clock that moves only when told, and the timers due on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[list] = []  # [due, callback, cancelled]

    def call_later(self, delay: float, callback):
        timer = [self.now + delay, callback, False]
        self.timers.append(timer)

        class Handle:
            def cancel(self) -> None:
                timer[2] = True
        return Handle()

    def advance(self, seconds: float, step: float = 0.001) -> None:
        end = self.now + seconds
        while self.now < end - 1e-12:
            self.now = min(end, self.now + step)
            for timer in sorted(self.timers, key=lambda t: t[0]):
                if timer[0] <= self.now + 1e-12 and timer in self.timers:
                    self.timers.remove(timer)
                    if not timer[2]:
                        timer[1]()


def scheduler(rate: int, burst: int | None, loop: FakeLoop, sent: list) -> PinScheduler:
    return PinScheduler(rate, burst, sent.append, lambda: loop.now, loop.call_later)


def test_burst_at_once_then_a_bounded_backlog_at_the_rate() -> None:
    loop, sent = FakeLoop(), []
    pins = scheduler(100, 25, loop, sent)
    for i in range(300):
        pins.submit(1 if i < 150 else 2, i)
    assert sent == list(range(25))  # the burst goes at once
    assert pins.n_queued == 25 and pins.dropped == 250
    loop.advance(0.1)
    assert len(sent) == 35  # one per 10 ms
    loop.advance(1.0)
    assert len(sent) == 50 and pins.n_queued == 0 and not loop.timers


def test_ports_are_served_round_robin_and_the_longest_queue_loses() -> None:
    loop, sent = FakeLoop(), []
    pins = scheduler(100, 25, loop, sent)
    for i in range(300):
        pins.submit(1 if i < 150 else 2, (1 if i < 150 else 2, i))
    loop.advance(1.0)
    backlog = [port for port, _ in sent[25:]]
    # the drops kept both queues about even: both ports share the backlog, in turns
    assert abs(backlog.count(1) - backlog.count(2)) <= 1
    assert all(a != b for a, b in zip(backlog, backlog[1:-1], strict=False))
    # each queue kept its newest packet-ins (the oldest of the longest is dropped)
    assert max(i for port, i in sent[25:] if port == 2) == 299
    assert max(i for port, i in sent[25:] if port == 1) == 149


def test_nothing_overtakes_the_queue() -> None:
    loop, sent = FakeLoop(), []
    pins = scheduler(10, 2, loop, sent)
    for msg in "abc":
        pins.submit(1, msg)
    assert sent == ["a", "b"] and pins.n_queued == 1  # "c" waits for a token
    loop.now += 0.5  # tokens are due now, but "c" is still queued ...
    pins.submit(1, "d")
    assert sent == ["a", "b"]  # ... so "d" queues behind it
    loop.advance(0.1)
    assert sent == ["a", "b", "c", "d"] and pins.dropped == 0


def test_a_full_backlog_drops_its_oldest() -> None:
    loop, sent = FakeLoop(), []
    pins = scheduler(10, 1, loop, sent)
    for msg in "abc":
        pins.submit(1, msg)
    assert sent == ["a"] and pins.dropped == 1  # "b" made way for "c"
    loop.advance(0.2)
    assert sent == ["a", "c"]


def test_below_the_rate_everything_passes_at_once() -> None:
    loop, sent = FakeLoop(), []
    pins = scheduler(100, None, loop, sent)  # burst rate/4
    assert pins.burst == 25
    for i in range(200):
        loop.now += 0.02
        pins.submit(i % 3, i)
    assert sent == list(range(200)) and pins.dropped == 0 and not loop.timers


def test_a_run_sends_at_most_its_share() -> None:
    loop, sent = FakeLoop(), []
    pins = scheduler(100000, 1000, loop, sent)
    pins.tokens = 0.0
    pins.stamp = 0.0
    for i in range(200):
        pins.submit(1, i)
    loop.now = 1.0
    pins.run()
    assert len(sent) == MAX_PER_RUN and loop.timers  # the rest on the next turn


def test_misses_and_other_reasons_have_their_own_buckets() -> None:
    loop, sent = FakeLoop(), []
    limiter = PacketInLimiter(100, 5, sent.append, lambda: loop.now, loop.call_later)
    for i in range(10):
        limiter.submit(OFPR_NO_MATCH, 1, ("miss", i))
    for i in range(10):
        limiter.submit(OFPR_ACTION, 1, ("action", i))
    assert [kind for kind, _ in sent] == ["miss"] * 5 + ["action"] * 5
    limiter.close()
    loop.advance(1.0)
    assert len(sent) == 10 and limiter.dropped == 0


def test_limits_follow_the_controller_row() -> None:
    assert PacketInLimiter.for_spec(ControllerSpec("tcp:1.2.3.4"), print) is None
    limiter = PacketInLimiter.for_spec(
        ControllerSpec.from_db("tcp:1.2.3.4", rate_limit=100, burst_limit=3), print)
    assert limiter is not None and limiter.misses.burst == 3
    limiter.set_limits(1000, None)
    assert (limiter.misses.rate, limiter.others.burst) == (1000.0, 250)


@async_test
async def test_a_row_without_rate_limit_any_more_drops_the_limiter() -> None:
    controller = Controller()
    try:
        async with running_manager(StubCore()) as mgr:
            target = await controller.start()
            mgr.set_controllers([ControllerSpec.from_db(target, rate_limit=100)])
            await wait_for(lambda: mgr.has_controllers_connected())
            (conn,) = mgr.all_connections()
            limiter = conn.packet_in_limiter
            assert limiter is not None and limiter.misses.burst == 25
            mgr.set_controllers([ControllerSpec.from_db(target, rate_limit=200,
                                                        burst_limit=7)])
            assert conn.packet_in_limiter is limiter and limiter.others.burst == 7
            mgr.set_controllers([ControllerSpec.from_db(target)])
            assert conn.packet_in_limiter is None
    finally:
        controller.close()
