"""coverage/show's counters and rates, on a clock the test moves."""

from __future__ import annotations

import re

from ovsbpfd.coverage import Coverage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _line(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(name + " "))


def test_never_hit_counters_are_only_counted() -> None:
    cov = Coverage(Clock())
    cov.counter("a")
    cov.counter("b").inc()
    assert cov.counter("a") is cov.counter("a")
    text = cov.show()
    assert re.fullmatch(r"Event coverage, avg rate over last: 5 seconds, last minute, "
                        r"last hour,  hash=[0-9a-f]{8}:\nb +0\.0/sec +0\.000/sec +0\.0000/sec"
                        r"   total: 1\n1 events never hit\n", text), text
    assert (cov.read_counter("b"), cov.read_counter("nope")) == (1, None)


def test_rates_over_5_seconds_minute_and_hour() -> None:
    clock = Clock()
    cov = Coverage(clock)
    c = cov.counter("event")
    c.inc(10)  # the first sample is due 5 s after the registry was made
    clock.now = 5
    assert _line(cov.show(), "event") == (
        "event                      2.0/sec     0.167/sec        0.0028/sec   total: 10")
    clock.now = 10
    assert _line(cov.show(), "event").startswith("event                      0.0/sec     0.167")
    c.inc(30)
    clock.now = 26  # three slots late: 10 each
    assert _line(cov.show(), "event") == (
        "event                      2.0/sec     0.667/sec        0.0111/sec   total: 40")
    clock.now = 26 + 60  # a minute later the minute has forgotten, the hour has not
    assert _line(cov.show(), "event") == (
        "event                      0.0/sec     0.000/sec        0.0111/sec   total: 40")


def test_hash_follows_which_counters_have_which_totals() -> None:
    cov = Coverage(Clock())
    a, b = cov.counter("a"), cov.counter("b")
    a.inc()
    first = cov.show().splitlines()[0]
    b.inc()
    second = cov.show().splitlines()[0]
    b.inc()
    assert len({first, second, cov.show().splitlines()[0]}) == 3
    a.inc()
    assert cov.show().splitlines()[0] == second  # a and b equal again, as before


def test_sampling_starts_with_the_registry() -> None:
    """As in OVS, the 5-second slots run from start-up, not from the first
    time anyone looks: a first look 7 s in already has a sample."""
    clock = Clock()
    cov = Coverage(clock)
    cov.counter("event").inc(5)
    clock.now = 7
    assert _line(cov.show(), "event").startswith("event                      1.0/sec")
