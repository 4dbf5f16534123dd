"""Durability under SIGKILL: kill the server at random moments during a stream
of transactions, restart it, and find every acknowledged transaction and no
partial one (each transaction writes two places that must agree)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import threading

import pytest

from .helpers import RpcClient, ovsbpfd_server

DB = "Open_vSwitch"


def txn_ops(n: int, rng: random.Random) -> list[dict]:
    """Transaction n: next_cfg := n, plus key k<n> in external_ids, plus a
    fresh 2 kB blob so that the log outgrows its snapshot and compacts."""
    blob = "".join(rng.choice("abcdef") for _ in range(2048))
    return [{"op": "update", "table": "Open_vSwitch", "where": [],
             "row": {"next_cfg": n, "other_config": ["map", [["blob", blob]]]}},
            {"op": "mutate", "table": "Open_vSwitch", "where": [],
             "mutations": [["external_ids", "insert", ["map", [[f"k{n}", str(n)]]]]]}]


def read_root(sock: str) -> tuple[int, set[int]]:
    client = RpcClient(sock)
    try:
        (res,) = client.transact(DB, {"op": "select", "table": "Open_vSwitch", "where": [],
                                      "columns": ["next_cfg", "external_ids"]})
    finally:
        client.close()
    (row,) = res["rows"]
    keys = {int(k[1:]) for k, _v in row["external_ids"][1]}
    return row["next_cfg"], keys


def stream_until_killed(sock: str, first: int, rng: random.Random) -> tuple[int, int]:
    """Send transactions n = first, first+1, ... until the server dies.
    Returns (highest acknowledged n, highest n sent)."""
    acked, sent = first - 1, first - 1
    client = RpcClient(sock, timeout=10)
    try:
        n = first
        while True:
            sent = n
            reply, _ = client.call("transact", [DB, *txn_ops(n, rng)])
            if reply is None:
                break
            assert all("error" not in r for r in reply["result"]), reply
            acked = n
            n += 1
    except (ConnectionError, OSError):
        pass
    finally:
        client.close()
    return acked, sent


@pytest.mark.skipif(shutil.which("ovsdb-tool") is None, reason="ovsdb-tool missing")
def test_ovsdb_sigkill_keeps_every_acknowledged_transaction(tmp_path):
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    dbfile = str(tmp_path / "conf.db")
    with ovsbpfd_server(str(tmp_path), dbfile=dbfile) as (sock, _proc):
        RpcClient(sock).transact(DB, {"op": "insert", "table": "Open_vSwitch",
                                      "row": {"next_cfg": 0}})
    expected_cfg, rounds, compactions = 0, 8, 0
    for _ in range(rounds):
        with ovsbpfd_server(str(tmp_path), dbfile=dbfile) as (sock, proc):
            cfg, keys = read_root(sock)
            # Every acknowledged transaction is there; at most the one that was in
            # flight when the server died is there too; none is half there.
            assert expected_cfg <= cfg <= expected_cfg + 1
            assert keys == set(range(1, cfg + 1))
            killer = threading.Timer(rng.uniform(0.05, 0.8), proc.send_signal,
                                     (signal.SIGKILL,))
            killer.start()
            try:
                acked, sent = stream_until_killed(sock, cfg + 1, rng)
            finally:
                killer.cancel()
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL
            expected_cfg = acked
            with open(dbfile, "rb") as f:
                compactions += b"compacting database online" in f.read(1 << 16)
    with ovsbpfd_server(str(tmp_path), dbfile=dbfile) as (sock, _proc):
        cfg, keys = read_root(sock)
        assert expected_cfg <= cfg <= expected_cfg + 1
        assert keys == set(range(1, cfg + 1))
    assert cfg > rounds  # the stream really ran
    # The file is still one Open vSwitch tools read.
    out = subprocess.run(["ovsdb-tool", "query", dbfile, json.dumps(
        [DB, {"op": "select", "table": "Open_vSwitch", "where": [],
              "columns": ["next_cfg"]}])], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[0]["rows"][0]["next_cfg"] == cfg
    assert compactions > 0
