"""vlog/reopen and vlog/close on the daemon's log file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovsbpfd import logsetup
from ovsbpfd.unixctl import UnixctlError

log = logging.getLogger("ovsbpfd.daemon")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """logsetup changes process-wide state: put it back for the other tests."""
    root = logging.getLogger("ovsbpfd")
    saved = (list(root.handlers), root.level, root.propagate, dict(logsetup._handlers),
             logsetup._log_file)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            if handler not in saved[0]:
                handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        root.propagate = saved[2]
        logsetup._handlers.clear()
        logsetup._handlers.update(saved[3])
        logsetup._log_file = saved[4]


def test_close_stops_writing_and_reopen_starts_a_new_file(
        tmp_path: Path, restore_logging: None) -> None:
    path = tmp_path / "ovsbpfd.log"
    logsetup.setup(str(path), verbose=False, console=False)
    log.info("first")
    assert "first" in path.read_text()
    logsetup.vlog_set(["file:warn"])
    assert logsetup.vlog_close([]) == ""
    path.rename(tmp_path / "ovsbpfd.log.1")  # logrotate
    log.warning("while closed")
    assert not path.exists()
    assert logsetup.vlog_reopen([]) == ""
    log.info("below the file level")
    log.warning("after reopen")
    assert path.read_text().count("\n") == 1 and "after reopen" in path.read_text()
    assert "WARN" in logsetup.vlog_list([]).splitlines()[2]  # the file level survived


def test_reopen_without_a_log_file_and_when_it_cannot_be_opened(
        tmp_path: Path, restore_logging: None) -> None:
    logsetup.setup(None, verbose=False, console=False)
    with pytest.raises(UnixctlError, match="^Logging to file not configured$"):
        logsetup.vlog_reopen([])
    assert logsetup.vlog_close([]) == ""  # nothing to close is fine, as in OVS
    path = tmp_path / "sub" / "ovsbpfd.log"
    logsetup.setup(str(path), verbose=False, console=False)
    path.unlink()
    path.parent.rmdir()  # the directory is gone: reopening fails, logging goes on
    with pytest.raises(UnixctlError, match="^No such file or directory$"):
        logsetup.vlog_reopen([])
