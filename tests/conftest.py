"""Shared fixtures: one datapath ``harness`` per dpif provider, so the same
test code runs on both (dpif conformance, switching over each provider)."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator

import pytest

from tests.dpif.harness import DatapathHarness, DummyHarness

_pin_counter = itertools.count()


def _bpf_harness(pin_root: str) -> DatapathHarness:
    from tests.dpif.harness_bpf import BpfHarness

    return BpfHarness(pin_root=pin_root)


@pytest.fixture(params=["dummy", "bpf"])
def harness(request: pytest.FixtureRequest) -> Iterator[DatapathHarness]:
    if request.param == "dummy":
        dummy = DummyHarness()
        try:
            yield dummy
        finally:
            dummy.close()
        return
    pin_root = f"/sys/fs/bpf/ovsbpfd-test-{os.getpid()}-{next(_pin_counter)}"
    try:
        bpf = _bpf_harness(pin_root)
        try:
            yield bpf
        finally:
            bpf.close()
    finally:
        # Pinned objects are files on bpffs: whatever the harness left, we remove.
        shutil.rmtree(pin_root, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """In CI every tool is installed, so a skipped test is a failed one.

    Skips exist for people running parts of the suite on a machine without
    Open vSwitch or os-ken; on CI they would hide a missing install step.
    """
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI: {report.longrepr}"
