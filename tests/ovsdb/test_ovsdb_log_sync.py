"""The log's flush overlapping the rest of a commit (begin_sync, then sync).

Each test counts the fdatasync calls a real Storage makes on a real file
(the recorder calls the real fdatasync), to show that a flush begun early is
waited for, topped up when records came after it, and never skipped."""

from __future__ import annotations

import os
import threading

import pytest

from ovsbpfd.ovsdb.execution import Executor
from ovsbpfd.ovsdb.storage import Storage, changes_to_record, create_db, read_records

from .helpers import SCHEMA


class FlushRecorder:
    """os.fdatasync, noting which thread called it; can be told to fail."""

    def __init__(self, real) -> None:
        self.real = real
        self.calls: list[str] = []
        self.fail = False
        self.gate: threading.Event | None = None

    def __call__(self, fd: int) -> None:
        self.calls.append(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise OSError(5, "Input/output error")
        self.real(fd)


@pytest.fixture
def flushes(monkeypatch):
    recorder = FlushRecorder(os.fdatasync)
    monkeypatch.setattr(os, "fdatasync", recorder)
    return recorder


def _open(tmp_path) -> tuple[Storage, object]:
    path = str(tmp_path / "conf.db")
    create_db(path, SCHEMA)
    storage = Storage(path)
    return storage, storage.load()


def _append(storage: Storage, db, cfg: int) -> None:
    """One commit written without a sync, as the server writes them."""
    if cfg == 1:
        op = {"op": "insert", "table": "Open_vSwitch", "row": {"next_cfg": cfg}}
    else:
        op = {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"next_cfg": cfg}}
    outcome = Executor(db, set()).run([op])
    assert outcome.changes, outcome.results
    storage.append(changes_to_record(db, outcome.changes, []), sync=False)
    db.apply(outcome.changes)


def test_ovsdb_flush_begun_early_is_waited_for_not_repeated(tmp_path, flushes):
    storage, db = _open(tmp_path)
    try:
        _append(storage, db, 1)
        storage.begin_sync()
        storage.sync()
        assert len(flushes.calls) == 1
        assert flushes.calls[0].startswith("ovsdb-sync")  # on the worker thread
        storage.sync()  # nothing new: nothing to flush
        assert len(flushes.calls) == 1
    finally:
        storage.close()


def test_ovsdb_records_after_the_early_flush_are_flushed_again(tmp_path, flushes):
    storage, db = _open(tmp_path)
    try:
        flushes.gate = threading.Event()  # hold the early flush until both are written
        _append(storage, db, 1)
        storage.begin_sync()
        _append(storage, db, 2)
        storage.begin_sync()  # one flush in flight at a time: no second one begins
        flushes.gate.set()
        storage.sync()
        assert len(flushes.calls) == 2
        assert flushes.calls[1] == threading.current_thread().name
    finally:
        storage.close()


def test_ovsdb_failed_early_flush_fails_the_sync(tmp_path, flushes):
    storage, db = _open(tmp_path)
    try:
        flushes.fail = True
        _append(storage, db, 1)
        storage.begin_sync()
        with pytest.raises(OSError):
            storage.sync()
        flushes.fail = False
        storage.sync()  # the record is still not known durable: flushed again
        assert len(flushes.calls) == 2
    finally:
        storage.close()


def test_ovsdb_compaction_while_a_flush_runs(tmp_path, flushes):
    storage, db = _open(tmp_path)
    try:
        flushes.gate = threading.Event()
        _append(storage, db, 1)
        storage.begin_sync()
        threading.Timer(0.2, flushes.gate.set).start()
        storage.compact(db)  # waits for the flush before swapping files
        before = len(flushes.calls)
        storage.sync()  # the compacted file was synced whole: nothing left
        assert len(flushes.calls) == before
        _append(storage, db, 2)
        storage.sync()
        assert len(flushes.calls) == before + 1
    finally:
        storage.close()
    records, _end = read_records(str(tmp_path / "conf.db"))
    assert len(records) == 3  # schema, snapshot, the commit after it


def test_ovsdb_close_waits_for_a_flush_in_flight(tmp_path, flushes):
    storage, db = _open(tmp_path)
    flushes.gate = threading.Event()
    _append(storage, db, 1)
    storage.begin_sync()
    threading.Timer(0.2, flushes.gate.set).start()
    storage.close()
    assert flushes.gate.is_set()
    assert flushes.calls and flushes.calls[0].startswith("ovsdb-sync")
