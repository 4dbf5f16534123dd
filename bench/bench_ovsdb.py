"""OVSDB benchmark: ovsbpfd's embedded server beside Debian's ovsdb-server.

Both servers run at once (fresh database each) and the workloads alternate
between them, so that the load other programs put on the machine falls on
both alike.  For each workload: wall time on each server, the ratio
ours/reference (below 1 means faster), and the server process's own CPU
time; then each server's peak resident memory (VmHWM):

  vsctl    N `ovs-vsctl --no-wait add-port` runs on each server, one run on
           one server then one on the other
  set      S `ovs-vsctl set Port ap0 tag=T` runs (the smallest write), the
           same way
  show     S `ovs-vsctl show` runs (a read), the same way
  durable  the same add-port, its four requests replayed as ovs-vsctl sends
           them (waits verifying every row it read included), but committed
           with "durable": true.  ovsdb-server writes an ovs-vsctl commit to
           its log without syncing it (ovs-vsctl does not ask for
           durability), while ovsbpfd syncs every commit before the reply;
           asking both for it compares the same work
  bulk     one python-ovs Idl transaction inserting 10,000 ports (with their
           interfaces), then a fresh Idl reading them all back
  fanout   100 clients monitor_cond the bridge; one writer commits M changes;
           time until every client has every update (median of --rounds)

Run from the repository root (not a timed test):

    python3 -m bench.bench_ovsdb [--ports 10000] [--vsctl 200] [--small 100] [--clients 100]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack

warnings.filterwarnings("ignore", module="ovs.poller")  # its eventlet deprecation notice

import ovs.db.idl  # noqa: E402
import ovs.poller  # noqa: E402

from tests.ovsdb.helpers import (  # noqa: E402
    SCHEMA,
    RpcClient,
    debian_server,
    idl_run_until,
    ovsbpfd_server,
)

DB = "Open_vSwitch"


def say(text: str) -> None:
    print(text, flush=True)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def vsctl(sock: str, *args: str) -> None:
    subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait", "--timeout=60", *args],
                   check=True, capture_output=True)


# --- workloads ------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alternating(servers: dict[str, tuple[str, int]], n: int, what: str,
                run: Callable[[str, int], None]) -> dict[str, tuple[float, float]]:
    """name -> (seconds, server CPU seconds) for run(sock, i), i in range(n),
    on each server, alternating between the servers (and which one goes
    first), so that the machine's other load falls on both alike."""
    names = list(servers)
    wall = dict.fromkeys(names, 0.0)
    cpu = {name: -cpu_seconds(pid) for name, (_sock, pid) in servers.items()}
    for i in range(n):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.monotonic()
            run(servers[name][0], i)
            wall[name] += time.monotonic() - start
        if (i + 1) % 50 == 0:
            say(f"      {what} {i + 1}/{n} on each: " + ", ".join(
                f"{name} {wall[name]:.2f} s" for name in names))
    return {name: (wall[name], cpu[name] + cpu_seconds(pid))
            for name, (_sock, pid) in servers.items()}


def bench_vsctl(servers: dict[str, tuple[str, int]], n: int) -> dict[str, tuple[float, float]]:
    """n `ovs-vsctl add-port` runs on each server (see alternating)."""
    for sock, _pid in servers.values():
        vsctl(sock, "init")
        vsctl(sock, "add-br", "br0")
    return alternating(servers, n, "add-port",
                       lambda sock, i: vsctl(sock, "add-port", "br0", f"ap{i}"))


def bench_vsctl_set(servers: dict[str, tuple[str, int]], n: int) -> dict[str, tuple[float, float]]:
    """n `ovs-vsctl set Port ap0 tag=T` runs on each server (after bench_vsctl
    made the ports): the smallest write, where the commit's own cost (and
    ovsbpfd's sync before the reply) is not hidden behind a large transaction."""
    return alternating(servers, n, "set",
                       lambda sock, i: vsctl(sock, "set", "Port", "ap0", f"tag={i % 4095 + 1}"))


def bench_vsctl_show(servers: dict[str, tuple[str, int]], n: int) -> dict[str, tuple[float, float]]:
    """n `ovs-vsctl show` runs on each server: a read of the whole
    configuration, no transaction."""
    return alternating(servers, n, "show", lambda sock, _i: vsctl(sock, "show"))


# ovs-vsctl add-port's first three requests, as it sends them.  Its fourth,
# the transact, is built from the third's reply (replay_add_port).
_VSCTL_OPENING: tuple[tuple[str, list], ...] = (
    ("get_schema", ["_Server"]),
    ("monitor_cond", ["_Server", ["monid", "_Server"], {"Database": [{"columns": [
        "name", "model", "connected", "leader", "schema", "cid", "index"]}]}]),
    ("monitor_cond_since", [DB, ["monid", DB], {
        "Port": [{"columns": ["fake_bridge", "interfaces", "name", "tag"]}],
        "Interface": [{"columns": ["error", "name", "ofport"]}],
        "Controller": [{"columns": []}],
        "Bridge": [{"columns": ["controller", "fail_mode", "name", "ports"]}],
        "Open_vSwitch": [{"columns": ["bridges"]}]}, "00000000-0000-0000-0000-000000000000"]),
)


def _verify(table: str, row_uuid: str, column: str, value: object) -> dict:
    """The wait with which ovs-vsctl checks that a column it read is unchanged."""
    return {"op": "wait", "table": table, "timeout": 0, "until": "==", "columns": [column],
            "where": [["_uuid", "==", ["uuid", row_uuid]]], "rows": [{column: value}]}


def replay_add_port(sock: str, port: str, durable: bool) -> None:
    """`ovs-vsctl --no-wait add-port br0 PORT`, request by request, with the
    commit made durable if asked."""
    client = RpcClient(sock, timeout=60)
    try:
        for method, params in _VSCTL_OPENING:
            reply, _ = client.call(method, params)
        rows = {table: {u: row["initial"] for u, row in by_uuid.items()}
                for table, by_uuid in reply["result"][2].items()}
        (root_uuid, root), = rows["Open_vSwitch"].items()
        (bridge_uuid, bridge), = rows["Bridge"].items()
        ops = [_verify("Open_vSwitch", root_uuid, "bridges", root["bridges"]),
               _verify("Bridge", bridge_uuid, "ports", bridge["ports"])]
        ops += [_verify("Port", u, "interfaces", p["interfaces"])
                for u, p in rows.get("Port", {}).items()]
        ports = bridge["ports"]
        members = ports[1] if ports[0] == "set" else [ports]
        ops += [{"uuid-name": "newport", "op": "insert", "table": "Port",
                 "row": {"name": port, "interfaces": ["named-uuid", "newiface"]}},
                {"uuid-name": "newiface", "op": "insert", "table": "Interface",
                 "row": {"name": port}},
                {"op": "update", "table": "Bridge",
                 "where": [["_uuid", "==", ["uuid", bridge_uuid]]],
                 "row": {"ports": ["set", [*members, ["named-uuid", "newport"]]]}},
                {"op": "comment", "comment": f"ovs-vsctl add-port br0 {port}"}]
        if durable:
            ops.append({"op": "commit", "durable": True})
        reply, _ = client.call("transact", [DB, *ops])
        failed = [r for r in reply["result"] if r and "error" in r]
        if failed:
            raise RuntimeError(f"add-port {port} failed: {failed[0]}")
    finally:
        client.close()


def bench_durable(servers: dict[str, tuple[str, int]], n: int) -> dict[str, tuple[float, float]]:
    """n replayed add-ports with a durable commit on each server (see
    alternating); after bench_vsctl, which made the bridge."""
    return alternating(servers, n, "durable add-port",
                       lambda sock, i: replay_add_port(sock, f"dp{i}", durable=True))


def _idl(sock: str) -> ovs.db.idl.Idl:
    helper = ovs.db.idl.SchemaHelper(SCHEMA)
    helper.register_all()
    return ovs.db.idl.Idl(f"unix:{sock}", helper)


def bench_bulk(sock: str, n: int) -> tuple[float, float]:
    """(seconds for the one-transaction insert, seconds for a fresh Idl to read it)."""
    idl = _idl(sock)
    try:
        idl_run_until(idl, lambda: bool(idl.tables["Bridge"].rows), 60)
        (bridge,) = idl.tables["Bridge"].rows.values()
        txn = ovs.db.idl.Transaction(idl)
        ports = []
        for i in range(n):
            iface = txn.insert(idl.tables["Interface"])
            iface.name = f"bulk{i}"
            iface.type = "internal"
            port = txn.insert(idl.tables["Port"])
            port.name = f"bulk{i}"
            port.interfaces = [iface]
            ports.append(port)
        bridge.ports = list(bridge.ports) + ports
        say(f"      built a transaction of {2 * n} inserts; committing")
        start = time.monotonic()
        status = txn.commit_block()
        insert_s = time.monotonic() - start
        if status != ovs.db.idl.Transaction.SUCCESS:
            raise RuntimeError(f"bulk insert failed: {status} {txn.get_error()}")
    finally:
        idl.close()
    reader = _idl(sock)
    try:
        start = time.monotonic()
        idl_run_until(reader, lambda: len(reader.tables["Port"].rows) >= n, 300)
        read_s = time.monotonic() - start
    finally:
        reader.close()
    return insert_s, read_s


def bench_fanout(sock: str, n_clients: int, n_changes: int) -> float:
    sel = selectors.DefaultSelector()
    clients = []
    request = {"id": 1, "method": "monitor_cond", "params": [
        DB, None, {"Bridge": [{"columns": ["name", "external_ids"]}],
                   "Open_vSwitch": [{"columns": ["next_cfg"]}]}]}
    for _ in range(n_clients):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(json.dumps(request).encode())
        clients.append(s)
    # Wait for every initial reply (a monitor reply has "result").
    seen = {s: 0 for s in clients}
    for s in clients:
        s.settimeout(60)
        buf = b""
        while b'"result"' not in buf:
            buf += s.recv(1 << 20)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    writer = RpcClient(sock, timeout=60)
    start = time.monotonic()
    for i in range(n_changes):
        writer.send({"id": 100 + i, "method": "transact", "params": [
            DB, {"op": "mutate", "table": "Open_vSwitch", "where": [],
                 "mutations": [["next_cfg", "+=", 1]]},
            {"op": "mutate", "table": "Bridge", "where": [],
             "mutations": [["external_ids", "insert", ["map", [[f"k{i}", str(i)]]]]]}]})
    want = n_changes
    deadline = time.monotonic() + 300
    while min(seen.values()) < want:
        if time.monotonic() > deadline:
            raise TimeoutError("fan-out did not complete")
        for key, _ in sel.select(timeout=1):
            data = key.fileobj.recv(1 << 20)
            seen[key.fileobj] += data.count(b'"update2"')
    elapsed = time.monotonic() - start
    for s in clients:
        s.close()
    writer.close()
    return elapsed


# --- driver ---------------------------------------------------------------------------

SERVERS = (("ovsdb-server", debian_server), ("ovsbpfd", ovsbpfd_server))


def run_all(servers: dict[str, tuple[str, int]], args: argparse.Namespace) -> dict:
    res: dict[str, dict[str, float]] = {name: {} for name in servers}
    loops = [("vsctl", bench_vsctl, args.vsctl, "ovs-vsctl add-port"),
             ("vsctl_set", bench_vsctl_set, args.small, "ovs-vsctl set Port (one column)"),
             ("vsctl_show", bench_vsctl_show, args.small, "ovs-vsctl show"),
             ("durable", bench_durable, args.durable,
              "add-port replayed with a durable commit")]
    for key, bench, n, what in loops:  # in this order: each builds on the one before
        say(f"{key}: {n} x {what} on each server, alternating")
        for name, (wall, cpu) in bench(servers, n).items():
            res[name][key], res[name][f"{key}_cpu"] = wall, cpu
    for name, (sock, pid) in servers.items():
        say(f"bulk: [{name}] one Idl transaction inserting {args.ports} ports")
        cpu = cpu_seconds(pid)
        res[name]["bulk_insert"], res[name]["bulk_read"] = bench_bulk(sock, args.ports)
        res[name]["bulk_cpu"] = cpu_seconds(pid) - cpu
        say(f"      [{name}] insert {res[name]['bulk_insert']:.2f} s, read back "
            f"{res[name]['bulk_read']:.2f} s")
    say(f"fanout: {args.changes} commits to {args.clients} monitors, {args.rounds} rounds")
    names = list(servers)
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            sock, pid = servers[name]
            cpu = cpu_seconds(pid)
            wall = bench_fanout(sock, args.clients, args.changes)
            rounds[name].append((wall, cpu_seconds(pid) - cpu))
        say(f"      round {r + 1}: " + ", ".join(
            f"{name} {rounds[name][-1][0]:.3f} s" for name in names))
    for name in names:
        walls = sorted(w for w, _c in rounds[name])
        cpus = sorted(c for _w, c in rounds[name])
        res[name]["fanout"] = walls[len(walls) // 2]
        res[name]["fanout_cpu"] = cpus[len(cpus) // 2]
        res[name]["peak_mb"] = peak_rss_mb(servers[name][1])
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bench.bench_ovsdb")
    p.add_argument("--ports", type=int, default=10000)
    p.add_argument("--vsctl", type=int, default=200)
    p.add_argument("--small", type=int, default=100,
                   help="ovs-vsctl set and show runs")
    p.add_argument("--durable", type=int, default=200,
                   help="replayed add-ports with a durable commit")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--changes", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5, help="fan-out rounds per server")
    args = p.parse_args(argv)
    with ExitStack() as stack:
        servers = {}
        for name, start in SERVERS:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-"))
            say(f"starting {name}")
            sock, proc = stack.enter_context(start(tmp))
            servers[name] = (sock, proc.pid)
        results = run_all(servers, args)
    ours, ref = results["ovsbpfd"], results["ovsdb-server"]
    rows = [("vsctl", f"{args.vsctl} x add-port", "s"),
            ("vsctl_cpu", "  server CPU", "s"),
            ("vsctl_set", f"{args.small} x set Port (1 column)", "s"),
            ("vsctl_set_cpu", "  server CPU", "s"),
            ("vsctl_show", f"{args.small} x show", "s"),
            ("vsctl_show_cpu", "  server CPU", "s"),
            ("durable", f"{args.durable} x add-port, durable commit", "s"),
            ("durable_cpu", "  server CPU", "s"),
            ("bulk_insert", f"1 txn, {args.ports} ports (Idl)", "s"),
            ("bulk_read", f"fresh Idl reads {args.ports} ports", "s"),
            ("bulk_cpu", "  server CPU (insert + read)", "s"),
            ("fanout", f"{args.changes} commits -> {args.clients} monitors", "s"),
            ("fanout_cpu", "  server CPU", "s"),
            ("peak_mb", "peak RSS (VmHWM)", "MB")]
    say("")
    say(f"{'workload':38} {'ovsdb-server':>13} {'ovsbpfd':>10} {'ratio':>7}")
    for key, label, unit in rows:
        ratio = ours[key] / ref[key] if ref[key] else float("inf")
        say(f"{label:38} {ref[key]:>10.2f} {unit:2} {ours[key]:>8.2f} {unit:2} {ratio:>6.2f}x")
    say("(ratio = ovsbpfd / ovsdb-server; below 1 is faster or smaller)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
