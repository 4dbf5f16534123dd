"""Runs fuzz sequences (fuzz_gen) on one server and records what each client
received, step by step, in a form two servers' records can be compared in.

After every step each open client sends an echo and everything it receives
before the echo's reply is that step's record for it: replies, update
notifications, lock notifications, a connection closed.  ovsdb-server flushes
a client's monitor updates before it reads the client's next request, so this
is deterministic for both servers.  A transaction that fails must leave the
database as it was: the runner checks that on the server itself (a dump
before and after, by a separate observer client).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from .fuzz_gen import FIXED_PREFIX, Step
from .helpers import RpcClient
from .test_ovsdb_differential_more import normalise as base_normalise

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMEOUT_S = 5.0
CLOSE_SETTLE_S = 0.05


class ServerGone(Exception):
    """The server stopped answering (crashed or hung)."""


class SequenceRunner:
    """Runs sequences against one server, each on fresh client connections,
    after emptying the database (deleting its root rows)."""

    def __init__(self, sock: str, schema_json: dict) -> None:
        self.sock = sock
        self.db = schema_json["name"]
        self.tables = sorted(schema_json["tables"])
        self.roots = [t for t, v in schema_json["tables"].items() if v.get("isRoot")]
        self.observer: RpcClient | None = None
        self.broken_invariants: list[str] = []

    def _observer(self) -> RpcClient:
        if self.observer is None:
            self.observer = RpcClient(self.sock, timeout=TIMEOUT_S)
        return self.observer

    def close(self) -> None:
        if self.observer is not None:
            self.observer.close()
            self.observer = None

    def _observe(self, what: str, ops: list) -> list:
        """The results of a transaction sent by the observer client."""
        try:
            reply, _ = self._observer().call("transact", [self.db, *ops])
        except OSError as e:
            raise ServerGone(f"{what}: {e!r}") from None
        if reply is None:
            raise ServerGone(f"{what}: connection closed")
        return reply["result"]

    def dump(self) -> Any:
        """Every row of every table (with _version: any write shows)."""
        return self._observe("dump", [{"op": "select", "table": t, "where": []}
                                      for t in self.tables])

    def reset(self) -> None:
        results = self._observe("reset", [{"op": "delete", "table": t, "where": []}
                                          for t in self.roots])
        if any("error" in (r or {}) for r in results):
            raise ServerGone(f"reset failed: {results}")

    def run(self, steps: list[Step]) -> list:
        """The raw transcript: per step, per client, the messages received."""
        self.reset()
        clients: dict[int, RpcClient | None] = {}
        transcript: list = []
        try:
            for i, step in enumerate(steps):
                kind, c = step[0], step[1]
                record: dict[str, Any] = {}
                client = clients.get(c)
                if client is None:
                    client = clients[c] = RpcClient(self.sock, timeout=TIMEOUT_S)
                before = self.dump() if kind == "call" and step[2] == "transact" else None
                try:
                    if kind == "call":
                        client.send({"id": i, "method": step[2], "params": step[3]})
                    elif kind == "note":
                        client.send({"id": None, "method": step[2], "params": step[3]})
                    elif kind == "raw":
                        client.send_raw(step[2])
                except OSError:
                    record["send"] = "<closed>"
                # The acting client first: its echo's reply means the server
                # has handled the step, so the others' syncs see its effects.
                for n, other in sorted(clients.items(), key=lambda kv: kv[0] != c):
                    if other is not None:
                        got, open_ = _sync(other, f"sync-{i}")
                        record[str(n)] = got
                        if not open_:
                            other.close()
                            clients[n] = None
                            # The server drops what the client held (locks)
                            # in a later turn of its loop than the one that
                            # closed the connection: let it before the others'
                            # syncs look for the effects.
                            time.sleep(CLOSE_SETTLE_S)
                if before is not None:
                    self._check_unchanged(before, i, record.get(str(c), []))
                transcript.append(record)
        finally:
            for client in clients.values():
                if client is not None:
                    client.close()
        transcript.append({"final": self.dump()})
        return transcript

    def _check_unchanged(self, before: Any, i: int, got: list) -> None:
        reply = next((m for m in got if isinstance(m, dict) and m.get("id") == i), None)
        if reply is None or not isinstance(reply.get("result"), list):
            return
        if any(isinstance(r, dict) and "error" in r for r in reply["result"]):
            after = self.dump()
            if after != before:
                self.broken_invariants.append(
                    f"step {i}: a failed transaction changed the database")


def _sync(client: RpcClient, sync_id: str) -> tuple[list, bool]:
    """Messages received until the reply to an echo sent now; (messages, open)."""
    got: list = []
    try:
        client.send({"id": sync_id, "method": "echo", "params": []})
    except OSError:
        pass
    while True:
        try:
            msg = client.recv()
        except TimeoutError:
            raise ServerGone(f"no reply to echo {sync_id}") from None
        except OSError:
            msg = None
        if msg is None:
            got.append("<closed>")
            return got, False
        if isinstance(msg, dict) and msg.get("id") == sync_id and "method" not in msg:
            return got, True
        got.append(msg)


DANGLING = re.compile(r"Table \w+ column \w+ row \S+ references nonexistent row \S+ in table \w+\.")


WEAK_MIN = re.compile(r'^(Weak reference column "\w+" in "\w+"|Deletion of \d+ weak reference)')


def normalise(transcript: list, coarse: bool = True) -> list:
    """Fixed uuids (FIXED_PREFIX) stay as they are; the uuids inserts returned
    are numbered in the order the replies gave them; every other uuid
    (versions, transaction ids) becomes <uuid>, and the rest is normalised
    as in the hand-written differential suites.  coarse: also word alike
    the commit errors whose row ovsdb-server picks in its hash order of rows
    (_rename)."""
    names: dict[str, str] = {}
    for record in transcript:
        for key, msgs in record.items():
            if key == "final" or not isinstance(msgs, list):
                continue
            for msg in msgs:
                if isinstance(msg, dict) and isinstance(msg.get("result"), list):
                    for r in msg["result"]:
                        u = r.get("uuid") if isinstance(r, dict) else None
                        if isinstance(u, list) and len(u) == 2 and isinstance(u[1], str) \
                                and not u[1].startswith(FIXED_PREFIX):
                            names.setdefault(u[1], f"<row{len(names)}>")
    transcript = [_late_waits(i, r) for i, r in enumerate(transcript)]
    records = _sort_rows(base_normalise(_rename(transcript, names, coarse)))
    return [{k: _sort_notifications(v) if k != "final" else v for k, v in r.items()}
            for r in records]


LATE_WAIT_ERRORS = ('"where" clause test failed', '"wait" timed out after')


def _late_waits(step: int, record: dict) -> dict:
    """A transaction answered in a later step than its own waited, and a
    wait that fails then says either '"where" clause test failed' or
    '"wait" timed out after N ms', by whether the server's clock crossed a
    millisecond meanwhile (ovsdb-server counts whole milliseconds): one
    wording for both."""
    out = {}
    for key, msgs in record.items():
        if isinstance(msgs, list):
            msgs = [_late_wait(m) if isinstance(m, dict) and isinstance(m.get("id"), int)
                    and m["id"] != step else m for m in msgs]
        out[key] = msgs
    return out


def _late_wait(msg: dict) -> dict:
    results = msg.get("result")
    if not isinstance(results, list):
        return msg
    fixed = [{**r, "details": "a late wait failed"} if isinstance(r, dict)
             and str(r.get("details", "")).startswith(LATE_WAIT_ERRORS) else r for r in results]
    return {**msg, "result": fixed}


def _sort_notifications(messages: list) -> list:
    """Each run of update notifications in sorted order: ovsdb-server sends
    one client's monitors their updates in its hash order of monitor ids."""
    out: list = []
    run: list = []
    for msg in [*messages, None]:
        if isinstance(msg, dict) and str(msg.get("method", "")).startswith("update"):
            run.append(msg)
            continue
        out.extend(sorted(run, key=lambda m: json.dumps(m, sort_keys=True)))
        run = []
        if msg is not None:
            out.append(msg)
    return out


def _sort_rows(value: Any) -> Any:
    """Rows in a sorted order that does not depend on the order of their
    members (ovsdb-server writes a row's columns in its hash order)."""
    if isinstance(value, list):
        return [_sort_rows(v) for v in value]
    if isinstance(value, dict):
        out = {k: _sort_rows(v) for k, v in value.items()}
        if isinstance(out.get("rows"), list):
            out["rows"] = sorted(out["rows"], key=lambda r: json.dumps(r, sort_keys=True))
        return out
    return value


def _rename(value: Any, names: dict[str, str], coarse: bool) -> Any:
    if isinstance(value, str):
        if "First row, with UUID" in value:  # the base normaliser's own business
            return value
        if coarse:
            # Of several dangling references, ovsdb-server names the first in
            # its hash order of rows and columns.
            value = DANGLING.sub("a row references a nonexistent row", value)
            # Likewise of several rows left with too few weak references (and
            # whether it words that for an all-zeros uuid depends on the row).
            if WEAK_MIN.search(value):
                return "a weak reference column became too small"
        return UUID_RE.sub(lambda m: _name(m.group(0), names), value)
    if isinstance(value, list):
        return [_rename(v, names, coarse) for v in value]
    if isinstance(value, dict):
        unknown = [k for k in value if UUID_RE.fullmatch(k) and _name(k, names) == k]
        if unknown and len(unknown) == len(value):
            # Rows no insert here returned (_Server's): left to the base
            # normaliser, which lists such an object's values in sorted order.
            return {k: _rename(v, names, coarse) for k, v in value.items()}
        return {_rename(k, names, coarse): _rename(v, names, coarse) for k, v in value.items()}
    return value


def _name(text: str, names: dict[str, str]) -> str:
    if text.startswith(FIXED_PREFIX):
        return "<" + text.replace("-", ":") + ">"  # no longer looks like a uuid
    return names.get(text, text)


def describe(steps: list[Step]) -> str:
    """The sequence as text to paste into a regression case."""
    lines = []
    for step in steps:
        if step[0] == "raw":
            lines.append(f"  ('raw', {step[1]}, {step[2]!r}),")
        else:
            lines.append(f"  ({step[0]!r}, {step[1]}, {step[2]!r}, {json.dumps(step[3])}),")
    return "[\n" + "\n".join(lines) + "\n]"
