"""Controller row settings read as ovs-vswitchd reads them."""

from __future__ import annotations

from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec, probe_seconds


def test_defaults_follow_ovs() -> None:
    spec = ControllerSpec.from_db("tcp:10.0.0.1:6653")
    assert (spec.kind, spec.max_backoff, spec.probe_interval) == ("primary", 8.0, 5.0)
    assert spec.in_band and spec.enable_async and spec.rate_limit is None
    assert ControllerSpec.from_db("ssl:10.0.0.1").kind == "primary"
    assert ControllerSpec.from_db("unix:/x").kind == "primary"
    for passive in ("ptcp:6653", "pssl:", "punix:/x", "bogus:x"):
        assert ControllerSpec.from_db(passive).kind == "service"
    assert ControllerSpec.from_db("ptcp:6653", type_="primary").kind == "primary"
    assert ControllerSpec.from_db("tcp:1.2.3.4", type_="service").kind == "service"


def test_milliseconds_become_whole_seconds() -> None:
    assert probe_seconds(None) == 5.0
    assert probe_seconds(0) is None  # 0 disables probing
    assert probe_seconds(300) == 1.0  # under a second: one second
    assert probe_seconds(2500) == 2.0
    spec = ControllerSpec.from_db("tcp:1.2.3.4", max_backoff_ms=4999,
                                  connection_mode="out-of-band",
                                  enable_async_messages=False, rate_limit=100,
                                  burst_limit=25)
    assert spec.max_backoff == 4 and not spec.in_band and not spec.enable_async
    assert (spec.rate_limit, spec.burst_limit) == (100, 25)
