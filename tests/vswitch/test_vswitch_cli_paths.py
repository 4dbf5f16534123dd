"""Where the daemon puts its files: OVS's defaults, variables and options."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovsbpfd.cli import _paths, build_parser


def paths(*argv: str) -> tuple[str, str, str, str | None]:
    return _paths(build_parser().parse_args(list(argv)))


def test_rundir_and_dbdir_follow_ovs_variables(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("OVS_RUNDIR", str(tmp_path / "run"))
    monkeypatch.setenv("OVS_DBDIR", str(tmp_path / "db"))
    rundir, dbfile, pidfile, log_file = paths()
    assert rundir == str(tmp_path / "run")
    assert dbfile == str(tmp_path / "db" / "conf.db")
    assert pidfile == str(tmp_path / "run" / "ovsbpfd.pid")
    assert log_file is None


def test_options_override_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OVS_RUNDIR", "/nonexistent/run")
    rundir, _dbfile, _pidfile, _log = paths("--rundir", str(tmp_path))
    assert rundir == str(tmp_path)


def test_database_symlink_is_written_through(tmp_path: Path) -> None:
    """Debian's /etc/openvswitch/conf.db is a link into /var/lib/openvswitch."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "conf.db").symlink_to(tmp_path / "lib" / "conf.db")
    _rundir, dbfile, _pidfile, _log = paths("--dbdir", str(tmp_path / "etc"))
    assert dbfile == str(tmp_path / "lib" / "conf.db")
