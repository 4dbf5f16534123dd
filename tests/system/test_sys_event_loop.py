"""The daemon's event loop: uvloop by default, the stdlib loop on request or
when uvloop is missing, and a switch that works the same on either."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from ovsbpfd.event_loop import EVENT_LOOP_ENV, event_loop_factory
from tests.system.daemon_proc import Daemon
from tests.system.netns import unique_name


def test_default_is_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EVENT_LOOP_ENV, raising=False)
    name, factory = event_loop_factory()
    loop = factory()
    try:
        assert name == "uvloop" and type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_environment_chooses_the_stdlib_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, "asyncio")
    name, factory = event_loop_factory()
    loop = factory()
    try:
        assert name == "asyncio" and isinstance(loop, asyncio.BaseEventLoop)
        assert not type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_missing_uvloop_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    name, _factory = event_loop_factory("uvloop")
    assert name == "asyncio"


def test_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match=EVENT_LOOP_ENV):
        event_loop_factory("trio")


@pytest.mark.parametrize("loop_name", ["uvloop", "asyncio"])
def test_switch_serves_on_either_loop(tmp_path: Path, loop_name: str) -> None:
    """OVSDB client, OpenFlow management connection and unixctl on each loop."""
    daemon = Daemon(tmp_path, datapath="dummy")
    daemon.env[EVENT_LOOP_ENV] = loop_name
    bridge = unique_name("bel", 1 if loop_name == "uvloop" else 2)
    try:
        daemon.start()
        assert f"event loop: {loop_name}" in daemon.log.read_text()
        daemon.vsctl("add-br", bridge, "--", "set", "bridge", bridge, "fail-mode=secure")
        for n in range(1, 4):
            daemon.ofctl("add-flow", bridge, f"priority={n},tcp,tp_dst={n},actions=drop")
        dump = daemon.ofctl("dump-flows", bridge, "--no-stats").stdout
        assert sorted(line.strip() for line in dump.splitlines() if "priority" in line) == [
            f"priority={n},tcp,tp_dst={n} actions=drop" for n in range(1, 4)]
        assert "bridges:1" in daemon.appctl("memory/show").stdout
    finally:
        daemon.stop(cleanup=True)


def test_bad_environment_value_stops_the_daemon(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, datapath="dummy")
    daemon.env[EVENT_LOOP_ENV] = "trio"
    with pytest.raises(RuntimeError, match="exited with 1"):
        daemon.start(timeout=10)
    daemon.stop(cleanup=True)
