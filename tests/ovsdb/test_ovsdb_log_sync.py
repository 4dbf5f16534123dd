"""The log's flush overlapping the rest of a commit (begin_sync, then sync).

A real Storage on a real file: the background flush is the kernel's (Linux
AIO fdatasync), and the inline fdatasync calls the Storage still makes are
counted by a recorder around the real os.fdatasync, to show that a flush
begun early is waited for, topped up when records came after it, and never
skipped."""

from __future__ import annotations

import os

import pytest

from ovsbpfd.ovsdb import log_sync
from ovsbpfd.ovsdb.execution import Executor
from ovsbpfd.ovsdb.log_sync import BackgroundSync
from ovsbpfd.ovsdb.storage import Storage, changes_to_record, create_db, read_records

from .helpers import SCHEMA


class FlushRecorder:
    """os.fdatasync, counting the calls."""

    def __init__(self, real) -> None:
        self.real = real
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.real(fd)


@pytest.fixture
def inline_flushes(monkeypatch):
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


def test_ovsdb_flush_begun_early_is_waited_for_not_repeated(tmp_path, inline_flushes):
    storage, db = _open(tmp_path)
    try:
        _append(storage, db, 1)
        storage.begin_sync()
        storage.sync()
        assert inline_flushes.calls == 0  # the kernel's flush covered it
        assert storage._flusher.completed == 1
        storage.sync()  # nothing new: nothing to flush
        assert inline_flushes.calls == 0
    finally:
        storage.close()


def test_ovsdb_records_after_the_early_flush_are_flushed_again(tmp_path, inline_flushes):
    storage, db = _open(tmp_path)
    try:
        _append(storage, db, 1)
        storage.begin_sync()
        _append(storage, db, 2)
        storage.begin_sync()  # one flush in flight at a time: no second one begins
        storage.sync()
        assert storage._flusher.completed == 1
        assert inline_flushes.calls == 1  # for the record written after it began
    finally:
        storage.close()


def test_ovsdb_without_kernel_aio_the_sync_flushes_inline(tmp_path, inline_flushes, monkeypatch):
    monkeypatch.setattr(log_sync, "_SYSCALL_NUMBERS", {})  # as on an unknown architecture
    storage, db = _open(tmp_path)
    try:
        _append(storage, db, 1)
        storage.begin_sync()
        assert inline_flushes.calls == 0
        storage.sync()
        assert inline_flushes.calls == 1
        assert storage._flusher.completed == 0
    finally:
        storage.close()


def test_ovsdb_flush_the_kernel_refuses_is_left_to_the_inline_sync():
    read_end, write_end = os.pipe()  # a pipe has no fdatasync: io_submit says EINVAL
    flusher = BackgroundSync()
    try:
        flusher.start(write_end, 1)
        assert flusher.wait() == 0  # nothing was in flight
        with pytest.raises(OSError):
            os.fdatasync(write_end)  # what Storage.sync() then does, and reports
    finally:
        flusher.close()
        os.close(read_end)
        os.close(write_end)


def test_ovsdb_compaction_while_a_flush_runs(tmp_path, inline_flushes):
    storage, db = _open(tmp_path)
    try:
        _append(storage, db, 1)
        storage.begin_sync()
        storage.compact(db)  # waits for the flush before swapping files
        storage.sync()  # the compacted file was synced whole: nothing left
        assert inline_flushes.calls == 0
        _append(storage, db, 2)
        storage.begin_sync()  # now on the new file
        storage.sync()
        assert inline_flushes.calls == 0
        assert storage._flusher.completed == 2
    finally:
        storage.close()
    records, _end = read_records(str(tmp_path / "conf.db"))
    assert len(records) == 3  # schema, snapshot, the commit after it
    assert records[2]["Open_vSwitch"]


def test_ovsdb_close_waits_for_a_flush_in_flight(tmp_path):
    storage, db = _open(tmp_path)
    _append(storage, db, 1)
    storage.begin_sync()
    flusher = storage._flusher
    storage.close()
    assert flusher.completed == 1
