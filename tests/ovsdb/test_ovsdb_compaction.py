"""Compaction in a worker thread: commits made while it runs are kept, and the
event loop keeps turning meanwhile."""

from __future__ import annotations

import asyncio

from ovsbpfd.ovsdb.execution import Executor
from ovsbpfd.ovsdb.storage import Storage, changes_to_record, create_db, read_records

from .helpers import SCHEMA


def commit(storage: Storage, db, *ops) -> None:
    outcome = Executor(db, set()).run(list(ops))
    assert outcome.changes is not None, outcome.results
    storage.append(changes_to_record(db, outcome.changes, []))
    db.apply(outcome.changes)


def big_db(path: str, n_ports: int):
    create_db(path, SCHEMA)
    storage = Storage(path)
    db = storage.load()
    ops = [{"op": "insert", "table": "Open_vSwitch", "row": {}},
           {"op": "insert", "table": "Bridge", "uuid-name": "br", "row": {
               "name": "br0", "ports": ["set", [["named-uuid", f"p{i}"] for i in range(n_ports)]]}},
           {"op": "mutate", "table": "Open_vSwitch", "where": [],
            "mutations": [["bridges", "insert", ["named-uuid", "br"]]]}]
    for i in range(n_ports):
        ops.append({"op": "insert", "table": "Interface", "uuid-name": f"i{i}",
                    "row": {"name": f"p{i}", "external_ids": ["map", [["n", str(i)]]]}})
        ops.append({"op": "insert", "table": "Port", "uuid-name": f"p{i}",
                    "row": {"name": f"p{i}", "interfaces": ["named-uuid", f"i{i}"]}})
    commit(storage, db, *ops)
    return storage, db


def test_ovsdb_commits_during_async_compaction_survive(tmp_path):
    path = str(tmp_path / "db")
    storage, db = big_db(path, 3000)

    async def scenario() -> int:
        task = asyncio.create_task(storage.compact_async(db))
        await asyncio.sleep(0)
        assert storage.compacting
        n = 0
        while not task.done():
            commit(storage, db, {"op": "mutate", "table": "Open_vSwitch", "where": [],
                                 "mutations": [["next_cfg", "+=", 1]]})
            n += 1
            await asyncio.sleep(0.001)
        await task
        return n

    # Commits went on while the snapshot was written: the loop was not held
    # for the compaction.  (How long it was held is a benchmark's question,
    # not a test's: a loaded machine stretches any bound.)
    n = asyncio.run(scenario())
    assert n >= 2
    storage.close()
    records, _ = read_records(path)
    assert records[1]["_comment"] == "compacting database online"
    assert len(records) == 2 + n  # schema, snapshot, then the commits made meanwhile
    reloaded = Storage(path).load()
    (root,) = reloaded.tables["Open_vSwitch"].values()
    assert root.data["next_cfg"].to_json() == n
    assert len(reloaded.tables["Port"]) == 3000
