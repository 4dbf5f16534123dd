"""Seeded generator of OVSDB JSON-RPC sequences for the differential fuzzer.

A sequence is a list of steps run on numbered clients of one server:
  ("call", c, method, params)   a request (its reply may come later: a wait)
  ("note", c, method, params)   a JSON-RPC notification (id null)
  ("raw", c, bytes)             bytes as they are (bad JSON-RPC: the server drops c)

Everything is drawn from the schema: mostly valid operations, so that the
database fills up and commits, monitors and waits have something to see, and
a share of invalid ones (wrong types, out-of-range values, constraint,
reference and index violations, malformed operations and messages).  Rows are
often inserted with a fixed "uuid" (FIXED_PREFIX) so that later steps can name
them in where-clauses and references on both servers alike.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import ovs.db.error
import ovs.db.schema
from ovs.db.data import Atom
from ovs.db.types import BaseType, Type

FIXED_PREFIX = "f0f0"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
LOCKS = ["L1", "L2"]
MONITOR_IDS: list[Any] = ["m1", "m2", 7, ["x"]]
STRINGS = ["", "a", "b", "br0", "x y", "zz", "é", "abcd", "true", "1"]
CLIENTS = (1, 2)
ROW_BUDGET = 3
# (cumulative probability, method) of each kind of operation; the rest are bad.
OPERATIONS = ((0.30, "op_insert"), (0.42, "op_update"), (0.57, "op_mutate"),
              (0.66, "op_delete"), (0.76, "op_select"), (0.86, "op_wait"), (0.97, "op_other"))

Step = tuple


def fixed_uuid(table_index: int, n: int) -> str:
    return f"{FIXED_PREFIX}{table_index:04x}-0000-4000-8000-{n:012x}"


class SequenceGenerator:
    """Draws sequences for one database (schema JSON) from a seeded Random."""

    def __init__(self, schema_json: dict, rng: random.Random, pool: int = 4) -> None:
        self.schema = ovs.db.schema.DbSchema.from_json(schema_json, allow_extensions=True)
        self.db = self.schema.name
        self.rng = rng
        self.tables = sorted(self.schema.tables)
        self.uuids = {t: [fixed_uuid(i, n) for n in range(pool)]
                      for i, t in enumerate(self.tables)}
        # uuid-names of the transaction being built, each for a row of one table
        self.names: dict[str, str] = {}
        self.inserting: str | None = None  # the name of the insert being built
        self.free_names: list[str] = []  # those no insert has declared yet
        self.budget_left = False
        self.given: str | None = None  # the "uuid" of the insert being built
        # Each lock's queue of clients, owner first, as the server keeps it.
        self.locks: dict[str, list[int]] = {}
        self.stealers: set[tuple[str, int]] = set()  # (lock, client) that stole
        self.dropped: set[tuple[str, int]] = set()  # stolen from a stealer
        # How many invalid values may still be drawn: a few per row object
        # (the server checks a row's members in ovsdb-server's hash order of
        # them, hash_order.py), none in monitor requests of several tables.
        self.budget = 1 << 30
        self.bad_defaults = {t: _bad_defaults(ts) for t, ts in self.schema.tables.items()}

    # --- sequences ------------------------------------------------------------
    def sequence(self, length: int) -> list[Step]:
        self.locks, self.stealers, self.dropped = {}, set(), set()
        steps = [self.step() for _ in range(length)]
        c = self.rng.choice(CLIENTS)
        if self.rng.random() < 0.05 and not self._spurious_locked(c, list(self.locks)):
            steps.append(("raw", c, self.rng.choice(BAD_MESSAGES)))
        return steps

    def step(self) -> Step:
        r = self.rng.random()
        c = self.rng.choice(CLIENTS) if self.rng.random() < 0.35 else 1
        if r < 0.62:
            return ("call", c, "transact", [self.db, *self.transaction()])
        if r < 0.80:
            return ("call", c, *self.monitor_request())
        if r < 0.87:
            lock = self.lock_request(c)
            if lock is not None:
                return ("call", c, *lock)
        if r < 0.90:
            return ("note", c, "cancel", [self.rng.randrange(40)])
        return ("call", c, *self.misc_request())

    # --- transactions -----------------------------------------------------------
    def transaction(self) -> list[Any]:
        n = self.rng.choice([1, 1, 2, 2, 3, 4, 6])
        self.names = {f"n{i}": self.table() for i in range(n) if self.rng.random() < 0.6}
        self.free_names = list(self.names)
        ops = [self.operation() for _ in range(n)]
        return ops

    def operation(self) -> Any:
        r = self.rng.random()
        for bound, method in OPERATIONS:
            if r < bound:
                return getattr(self, method)()
        return self.rng.choice(BAD_OPS)

    def op_other(self) -> dict:
        return self.rng.choice([
            {"op": "commit", "durable": self.rng.random() < 0.5},
            {"op": "abort"},
            {"op": "comment", "comment": self.rng.choice(STRINGS)},
            {"op": "assert", "lock": self.rng.choice(LOCKS)},
            {"op": "commit"},
        ])

    def table(self) -> str:
        return self.rng.choice(self.tables)

    def op_insert(self) -> dict:
        name = self.free_names.pop(0) if self.free_names and self.rng.random() < 0.8 else None
        table = self.names[name] if name else self.table()
        r = self.rng.random()
        given = self.rng.choice(self.uuids[table]) if r < 0.55 else \
            self.rng.choice(["nope", fixed_uuid(99, 1)]) if r < 0.57 else None
        self.inserting, self.given = name, given
        ts = self.schema.tables[table]
        row = self.row(ts)
        # Defaults that break their own constraints are errors too, checked
        # after the given values in ovsdb-server's hash order of the table's
        # columns (not emulated): at most one of them is left out.
        missing = [c for c in self.bad_defaults[table] if c not in row]
        allowed = 1 if self.rng.random() < 0.3 else 0
        saved, self.budget = self.budget, 0
        for column in missing[allowed:]:
            row[column] = self.datum(ts.columns[column].type)
        self.budget = saved
        self.inserting = self.given = None
        op: dict[str, Any] = {"op": "insert", "table": table, "row": row}
        if given:
            op["uuid"] = given
        if name:
            op["uuid-name"] = name
        if self.rng.random() < 0.02:
            op["uuid-name"] = self.rng.choice(["1bad", "n0"])
        return op

    def _bad(self, p: float) -> bool:
        """Whether to draw an invalid value now (probability p, within budget)."""
        if self.budget <= 0 or self.rng.random() >= p:
            return False
        self.budget -= 1
        return True

    def row(self, ts: Any, for_update: bool = False) -> dict:
        """A row object with up to ROW_BUDGET invalid members (budget_left
        says whether one is still unused) and, in an update, at most one
        immutable column (reported after every value is parsed)."""
        saved, self.budget = self.budget, ROW_BUDGET
        cols = [c for c in ts.columns.values() if c.mutable or not for_update]
        k = min(len(cols), self.rng.choice([0, 1, 2, 2, 3, 4]))
        row = {c.name: self.datum(c.type) for c in self.rng.sample(cols, k)}
        fixed = [c for c in ts.columns.values() if not c.mutable]
        if for_update and fixed and self.rng.random() < 0.1:
            col = self.rng.choice(fixed)
            row[col.name] = self.datum(col.type)
        if self._bad(0.04):
            row[self.rng.choice(["nope", "_uuid", "_version"])] = ["uuid", ZERO_UUID]
        self.budget_left = self.budget > 0
        self.budget = saved
        return row

    def where(self, ts: Any) -> list:
        r = self.rng.random()
        if r < 0.25:
            return []
        if r < 0.45:
            return [["_uuid", "==", ["uuid", self.rng.choice(self.uuids[ts.name])]]]
        clauses: list[Any] = []
        for _ in range(self.rng.choice([1, 1, 2])):
            if self.rng.random() < 0.08:
                clauses.append(self.rng.choice([True, False]))
                continue
            col = self.rng.choice(list(ts.columns.values()))
            clauses.append(self.clause(col.name, col.type))
        if self._bad(0.03):
            clauses.append(self.rng.choice([["nope", "==", 1], ["name"], "x", [1, "==", 1]]))
        return clauses

    def clause(self, name: str, t: Type) -> list:
        funcs = ["==", "!=", "includes", "excludes"]
        if t.is_scalar() and t.key.type.to_string() in ("integer", "real"):
            funcs += ["<", "<=", ">", ">="]
        if self._bad(0.04):
            funcs = ["<", "~", "=="]
        func = self.rng.choice(funcs)
        # The argument's type as ovsdb-server derives it from the column's.
        if func in ("<", "<=", ">", ">=", "~"):
            arg = Type(t.key, t.value, 1, 1)
        elif func == "includes" and not t.is_scalar():
            arg = Type(t.key, t.value, 0, t.n_max)
        elif func == "excludes" and not t.is_scalar():
            arg = Type(t.key, t.value, 0, max(t.n_max, 4))
        else:
            arg = t
        return [name, func, self.datum(arg)]

    def op_select(self) -> dict:
        table = self.table()
        ts = self.schema.tables[table]
        op: dict[str, Any] = {"op": "select", "table": table, "where": self.where(ts)}
        if self.rng.random() < 0.6:
            op["columns"] = self.columns(ts)
        return op

    def columns(self, ts: Any) -> list:
        names = [*ts.columns, "_uuid", "_version"]
        cols = self.rng.sample(names, min(len(names), self.rng.choice([0, 1, 2, 3])))
        if self.rng.random() < 0.03:
            cols.append(self.rng.choice(["nope", cols[0] if cols else "_uuid"]))
        return cols

    def op_update(self) -> dict:
        table = self.table()
        ts = self.schema.tables[table]
        return {"op": "update", "table": table, "where": self.where(ts),
                "row": self.row(ts, for_update=True)}

    def op_delete(self) -> dict:
        table = self.table()
        return {"op": "delete", "table": table, "where": self.where(self.schema.tables[table])}

    def op_mutate(self) -> dict:
        table = self.table()
        ts = self.schema.tables[table]
        mutations = [self.mutation(ts) for _ in range(self.rng.choice([0, 1, 1, 2, 3]))]
        return {"op": "mutate", "table": table, "where": self.where(ts), "mutations": mutations}

    def mutation(self, ts: Any) -> list:
        col = self.rng.choice(list(ts.columns.values()))
        t = col.type
        numeric = t.value is None and t.key.type.to_string() in ("integer", "real")
        choices = ["insert", "delete"]
        if numeric:
            choices += ["+=", "-=", "*=", "/=", "%="]
        if self.rng.random() < 0.05:
            choices = ["^=", "+=", "insert"]
        mutator = self.rng.choice(choices)
        if mutator in ("insert", "delete"):
            arg_type = Type(t.key, t.value, 0, max(t.n_max, 1))
            if t.is_map() and mutator == "delete" and self.rng.random() < 0.4:
                arg_type = Type(t.key, None, 0, max(t.n_max, 1))
            return [col.name, mutator, self.datum(arg_type)]
        if t.key.type.to_string() == "integer":
            arg: Any = self.rng.choice([0, 1, 2, -3, 7, 100, 2**62])
            if mutator == "*=" and arg <= 0:
                # ovsdb-server 3.1's overflow test for a negative (or zero)
                # integer times a negative one or 0 divides by the latter:
                # SIGFPE for 0 (test_ovsdb_multiply_negative_by_zero), a
                # wrapped product for a big one.  Not copied, not compared.
                arg = 2
        else:
            arg = self.rng.choice([0, 0.5, -2.0, 3, 1e300])
        if self.rng.random() < 0.05:
            arg = self.rng.choice(["x", True, ["set", [1]]])
        return [col.name, mutator, arg]

    def op_wait(self) -> dict:
        table = self.table()
        ts = self.schema.tables[table]
        op: dict[str, Any] = {"op": "wait", "table": table, "where": self.where(ts),
                              "until": self.rng.choice(["==", "!=", "==", "!=", "<"]),
                              "rows": [self.row(ts) for _ in range(self.rng.choice([0, 1, 1, 2]))]}
        if self.rng.random() < 0.85:
            op["columns"] = [c for c in self.columns(ts) if c != "_version"]
        r = self.rng.random()
        if r < 0.75:
            op["timeout"] = 0
        elif r < 0.9:
            op["timeout"] = 600000  # pending until the database changes
        elif r < 0.95:
            op["timeout"] = self.rng.choice([-1, "x"])
        return op

    # --- atoms and datums -----------------------------------------------------
    def datum(self, t: Type) -> Any:
        if self._bad(0.06):
            return self.bad_datum(t)
        lo = t.n_min
        hi = min(t.n_max, lo + 3)
        n = self.rng.randint(lo, hi)
        if self._bad(0.03):
            n = t.n_max + 1 if t.n_max < 10 else max(t.n_min - 1, 0)
        if t.value is not None:
            pairs = [[self.atom(t.key), self.atom(t.value)] for _ in range(n)]
            if not self._bad(0.03):
                pairs = list({json.dumps(p[0]): p for p in pairs}.values())
            return ["map", pairs]
        atoms = [self.atom(t.key) for _ in range(n)]
        if not self._bad(0.03):
            atoms = list({json.dumps(a): a for a in atoms}.values())
        if n == 1 and self.rng.random() < 0.7:
            return atoms[0]
        return ["set", atoms]

    def bad_datum(self, t: Type) -> Any:
        return self.rng.choice([
            ["set", [self.atom(t.key), self.atom(t.key)]],  # maybe a duplicate
            ["map", [[1, 2]]],
            ["set", "x"],
            {"a": 1},
            None,
            ["uuid", "zz"],
            ["named-uuid", "nowhere"],
            1.5,
            True,
            "s",
            7,
        ])

    def atom(self, base: BaseType) -> Any:
        kind = base.type.to_string()
        bad = self._bad(0.04)
        if base.enum is not None:
            options = [a.value for a in base.enum.values]
            if bad:
                return self.rng.choice(["zz", 5])
            return self.rng.choice(options)
        if kind == "integer":
            lo = base.min if base.min is not None else -3
            hi = base.max if base.max is not None else max(lo, 0) + 12
            if bad:
                return self.rng.choice([lo - 1, hi + 1, 1.5, "1", True, 2**63])
            return self.rng.choice([lo, hi, self.rng.randint(lo, max(lo, min(hi, 12)))])
        if kind == "real":
            lo = base.min if base.min is not None else -2.5
            hi = base.max if base.max is not None else max(lo, 0) + 1e10
            if bad:
                return self.rng.choice([lo - 1, hi * 2 + 1, "1.0", False])
            return self.rng.choice([lo, hi, 0, 0.5, 1, -0.25])
        if kind == "boolean":
            return self.rng.choice([True, False, 0] if bad else [True, False])
        if kind == "string":
            if bad:
                return self.rng.choice([1, "x" * min(base.max_length + 1, 9), None])
            options = [s for s in STRINGS if base.min_length <= len(s) <= base.max_length]
            return self.rng.choice(options or ["ab"])
        return self.uuid_atom(base, bad)

    def uuid_atom(self, base: BaseType, bad: bool) -> Any:
        if bad:
            return self.rng.choice([["uuid", "zz"], "u", ["named-uuid", "1bad"],
                                    ["named-uuid", "ghost"]])
        target = base.ref_table_name
        # A row's reference to its own uuid in another table is left out:
        # ovsdb-server skips such "self-references" in its reference check
        # (and then commits a dangling strong reference), ovsbpfd does not.
        names = [n for n, t in self.names.items() if t == target]
        if self.inserting and self.rng.random() < 0.1:
            names = [n for n in self.names if n != self.inserting]
        if self.given:  # its own name and its uuid would be one element twice
            names = [n for n in names if n != self.inserting]
        if names and self.rng.random() < 0.45:
            return ["named-uuid", self.rng.choice(names)]
        pool = self.uuids.get(target) if target else None
        if pool is None:
            pool = [u for us in self.uuids.values() for u in us[:1]] + [ZERO_UUID]
        if self.rng.random() < 0.08:
            return ["uuid", fixed_uuid(98, self.rng.randrange(3))]  # never a row
        return ["uuid", self.rng.choice(pool)]

    # --- monitors, locks, other methods -------------------------------------------
    def monitor_request(self) -> tuple[str, list]:
        r = self.rng.random()
        mon_id = self.rng.choice(MONITOR_IDS)
        if r < 0.22:
            return "monitor", [self.db, mon_id, self.monitor_tables(1)]
        if r < 0.52:
            return "monitor_cond", [self.db, mon_id, self.monitor_tables(2)]
        if r < 0.67:
            since = self.rng.choice([ZERO_UUID, ZERO_UUID, fixed_uuid(97, 1), "bad"])
            return "monitor_cond_since", [self.db, mon_id, self.monitor_tables(3), since]
        if r < 0.87:
            changes: dict[str, Any] = {}
            for table in self.rng.sample(self.tables, self.rng.choice([0, 1, 1, 2])):
                ts = self.schema.tables[table]
                reqs = [{"where": self.where(ts)} for _ in range(self.rng.choice([1, 1, 2]))]
                if self.rng.random() < 0.03:
                    reqs = [{"columns": ["_uuid"]}]
                changes[table] = reqs
            new_id = mon_id if self.rng.random() < 0.5 else self.rng.choice(MONITOR_IDS)
            return "monitor_cond_change", [mon_id, new_id, changes]
        return "monitor_cancel", [mon_id]

    def monitor_tables(self, version: int) -> dict:
        """Monitor requests; with more than one table all of them valid:
        ovsdb-server parses the tables in its hash order, so which table's
        error it reports is not something to compare."""
        tables = self.rng.sample(self.tables, self.rng.randint(1, len(self.tables)))
        saved = self.budget
        if len(tables) > 1:
            self.budget = 0
        try:
            return self._monitor_tables(tables, version)
        finally:
            self.budget = saved

    def _monitor_tables(self, tables: list[str], version: int) -> dict:
        out: dict[str, Any] = {}
        for table in tables:
            ts = self.schema.tables[table]
            reqs = []
            for k in range(self.rng.choice([1, 1, 1, 2]) if len(tables) == 1 else 1):
                req: dict[str, Any] = {}
                # A later request without "columns" names every column in
                # ovsdb-server's hash order, so which one is a duplicate first
                # is not something to compare.
                if k or self.rng.random() < 0.7:
                    names = [*ts.columns, "_uuid", "_version"] if self.rng.random() < 0.1 \
                        else list(ts.columns)
                    req["columns"] = self.rng.sample(names, self.rng.randint(1, len(names)))
                if self.rng.random() < 0.35:
                    req["select"] = {k: self.rng.random() < 0.7 for k in
                                     self.rng.sample(["initial", "insert", "delete", "modify"],
                                                     self.rng.randint(1, 4))}
                if version >= 2 and self.rng.random() < 0.55:
                    req["where"] = self.where(ts)
                reqs.append(req)
            out[table] = reqs if version >= 2 or len(reqs) > 1 or self.rng.random() < 0.3 \
                else reqs[0]
        return out

    def lock_request(self, c: int) -> tuple[str, list] | None:
        """A lock, steal or unlock, tracked in self.locks; None where
        ovsdb-server 3.1 would send a spurious "locked" (see below)."""
        method = self.rng.choice(["lock", "lock", "steal", "unlock", "unlock"])
        name = self.rng.choice(LOCKS)
        queue = self.locks.setdefault(name, [])
        requested = c in queue or (name, c) in self.dropped
        if method == "unlock" and c in queue:
            if self._spurious_locked(c, [name]):
                return None
            queue.remove(c)
        elif method == "lock" and not requested:
            queue.append(c)
        elif method == "steal" and not requested:
            if queue and (name, queue[0]) in self.stealers:
                # An owner that had stolen the lock leaves the queue (but
                # must still unlock).
                self.dropped.add((name, queue.pop(0)))
            queue.insert(0, c)
            self.stealers.add((name, c))
        if method == "unlock":
            self.stealers.discard((name, c))
            self.dropped.discard((name, c))
        return method, [name]

    def _spurious_locked(self, c: int, names: list[str]) -> bool:
        """Whether client c leaving these locks' queues (unlock, disconnect)
        would make ovsdb-server 3.1 send "locked" to an owner that already
        holds the lock: it notifies the owner whenever anyone leaves a queue
        that others remain in.  RFC 7047 sends "locked" only when a lock is
        acquired, as ovsbpfd does, so such sequences are not compared."""
        return any(c in q and q[0] != c and len(q) > 1
                   for q in (self.locks.get(n, []) for n in names))

    def misc_request(self) -> tuple[str, list]:
        return self.rng.choice([
            ("echo", ["e", 1]),
            ("list_dbs", []),
            ("get_schema", [self.db]),
            ("get_schema", ["nope"]),
            ("set_db_change_aware", [True]),
            ("transact", []),
            ("transact", ["nope"]),
            ("transact", [self.db]),
            ("transact", ["_Server", {"op": "select", "table": "Database",
                                      "where": [["name", "==", self.db]],
                                      "columns": ["name", "model", "connected", "leader"]}]),
            ("monitor_cond", ["_Server", "s", {"Database": [{"columns": ["name", "model"]}]}]),
            ("frob", []),
            ("monitor", []),
            ("monitor_cond_change", ["m1"]),
        ])


DEFAULT_ATOMS: dict[str, Any] = {"integer": 0, "real": 0.0, "boolean": False, "string": "",
                                 "uuid": uuid.UUID(int=0)}


def _bad_defaults(ts: Any) -> list[str]:
    """Columns whose default value breaks the column's own constraints."""
    out = []
    for name, col in ts.columns.items():
        if col.type.n_min != 1:
            continue
        for base in (col.type.key, col.type.value):
            if base is None:
                continue
            try:
                Atom(base.type, DEFAULT_ATOMS[base.type.to_string()]).check_constraints(base)
            except ovs.db.error.Error:
                out.append(name)
                break
    return out


BAD_OPS: list[Any] = [
    5, {}, {"op": 5}, {"op": "frob"}, {"op": "select"},
    {"op": "insert", "table": "nope", "row": {}},
    {"op": "abort", "x": 1},
    {"op": "comment"},
]

BAD_MESSAGES: list[bytes] = [
    b'{"id":1,"method":"echo","params":[],"x":1}',
    b"[1,2]",
    b'{"id":1,"method":5,"params":[]}',
    b'{"id":1,"method":"echo"}',
    b'{"id":1,"result":[]}',
    b"]",
    b'{"id":1,"method":"transact","params":"x"}',
]
