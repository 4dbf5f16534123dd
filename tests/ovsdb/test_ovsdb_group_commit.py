"""Group commit: output waits for the log's sync; one sync per event-loop turn.

Unit tests drive CommitBarrier with recording clients and logs; the system
test pipelines transactions at a real server and reads its log afterwards."""

from __future__ import annotations

import asyncio
import json
import os

from ovsbpfd.ovsdb.durability import CommitBarrier
from ovsbpfd.ovsdb.storage import read_records

from .helpers import RpcClient, ovsbpfd_server


class Log:
    """Stands for a Storage: records when it was synced."""

    def __init__(self, events: list, fail: bool = False) -> None:
        self.events = events
        self.fail = fail
        self.begun = 0

    def begin_sync(self) -> None:
        self.begun += 1

    def sync(self) -> None:
        if self.fail:
            raise OSError(5, "Input/output error")
        self.events.append(("sync", id(self)))


class Client:
    def __init__(self, name: str, events: list) -> None:
        self.name = name
        self.events = events
        self.closed = False

    def write_now(self, data: bytes) -> None:
        self.events.append((self.name, data))

    def close(self) -> None:
        self.closed = True


def test_ovsdb_output_waits_for_the_sync_and_keeps_its_order():
    events: list = []
    barrier = CommitBarrier()
    log, a, b = Log(events), Client("a", events), Client("b", events)

    async def turn() -> None:
        assert not barrier.holding
        barrier.written(log)
        barrier.written(log)  # a second commit in the same turn
        assert barrier.holding
        barrier.hold(a, b"1")
        barrier.hold(b, b"x")
        barrier.hold(a, b"2")
        assert events == []  # nothing leaves before the sync
        await asyncio.sleep(0)  # the end of the turn
        assert not barrier.holding

    asyncio.run(turn())
    assert events == [("sync", id(log)), ("a", b"12"), ("b", b"x")]


def test_ovsdb_failed_sync_sends_nothing_and_drops_the_clients():
    events: list = []
    barrier = CommitBarrier()
    good, bad = Log(events), Log(events, fail=True)
    a = Client("a", events)
    barrier.written(good)  # no loop running: synced at once
    assert events == [("sync", id(good))] and not barrier.holding

    async def turn() -> None:
        barrier.written(bad)
        barrier.hold(a, b"reply")
        await asyncio.sleep(0)

    asyncio.run(turn())
    assert a.closed and ("a", b"reply") not in events


def test_ovsdb_pipelined_transactions_are_all_acknowledged_and_logged(tmp_path):
    """A client that sends many transactions without waiting gets every reply,
    in order, and every one of them is in the log when its reply arrives."""
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        c = RpcClient(sock, timeout=10)
        try:
            c.transact("Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}})
            n = 60
            data = b"".join(json.dumps({"id": i, "method": "transact", "params": [
                "Open_vSwitch", {"op": "mutate", "table": "Open_vSwitch", "where": [],
                                 "mutations": [["next_cfg", "+=", 1]]}]}).encode()
                for i in range(n))
            c.send_raw(data)
            ids = []
            for _ in range(n):
                msg = c.recv()
                assert msg["result"] == [{"count": 1}], msg
                ids.append(msg["id"])
            assert ids == list(range(n))
            records, _end = read_records(os.path.join(str(tmp_path), "conf.db"))
            values = [row.get("next_cfg") for rec in records[1:] if isinstance(rec, dict)
                      for row in (rec.get("Open_vSwitch") or {}).values() if row]
            assert values[-1] == n
        finally:
            c.close()


def test_ovsdb_half_closed_client_still_gets_its_reply(tmp_path):
    """A client that sends a transaction and then shuts down its sending side
    gets the reply (held for the sync) before the server closes."""
    import socket

    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(sock)
        s.sendall(json.dumps({"id": 7, "method": "transact", "params": [
            "Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}}]}).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        reply = json.loads(data)
        assert reply["id"] == 7 and reply["result"][0]["uuid"][0] == "uuid"
        c = RpcClient(sock)
        try:
            rows = c.transact("Open_vSwitch", {"op": "select", "table": "Open_vSwitch",
                                               "where": [], "columns": ["_uuid"]})[0]["rows"]
            assert rows == [{"_uuid": reply["result"][0]["uuid"]}]
        finally:
            c.close()
