"""python -m ovsbpfd.ovsdb: the embedded OVSDB server process.

    python -m ovsbpfd.ovsdb [--remote REMOTE]... [--schema SCHEMA]
                            [--unixctl PATH] [--die-with-parent]
                            [--private-key KEY --certificate CERT
                             (--ca-cert | --bootstrap-ca-cert) CACERT]
                            [--max-backlog BYTES] DBFILE

REMOTE is punix:PATH, ptcp:PORT[:IP], pssl:PORT[:IP], unix:PATH, tcp:IP:PORT,
ssl:IP:PORT or db:DB,TABLE,COLUMN (e.g. db:Open_vSwitch,Open_vSwitch,manager_options).
KEY, CERT and CACERT are file names or db:DB,TABLE,COLUMN references
(e.g. db:Open_vSwitch,SSL,private_key), read again for each new connection.

With --schema, a missing DBFILE is created from SCHEMA, and one whose own
schema differs is converted to SCHEMA first, after a copy to
DBFILE.backupVERSION-CKSUM (what ovs-ctl does before it starts ovsdb-server).

Runs until SIGTERM/SIGINT (or `ovs-appctl exit`), then exits 0.

The event loop is uvloop's (libuv) unless OVSBPFD_EVENT_LOOP=asyncio (see
ovsbpfd.event_loop): this process only serves sockets, and accepting a
connection, reading a request and writing its reply cost about half of
asyncio's pure-Python selector loop, which is most of what an ovs-vsctl run
costs besides its transaction (a fresh connection each run).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import signal
import sys

from .. import __version__
from ..event_loop import event_loop_factory
from . import _no_eventlet, compat  # noqa: F401 - _no_eventlet first
from .convert import upgrade_file
from .errors import OvsdbError
from .remotes import SslFiles
from .schema import Schema
from .server import OvsdbServer
from .session import DEFAULT_MAX_BACKLOG
from .storage import create_db

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM us when the parent (ovsbpfd) goes away."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:
        os.kill(os.getpid(), signal.SIGTERM)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ovsbpfd.ovsdb")
    p.add_argument("--remote", action="append", default=[])
    p.add_argument("--schema", help="create DBFILE from this schema if it is missing, "
                   "convert it to this schema (after a backup) if its own differs")
    p.add_argument("--unixctl", help="serve ovs-appctl commands on this socket")
    p.add_argument("--die-with-parent", action="store_true")
    p.add_argument("--private-key", "-p", help="PEM private key for SSL remotes")
    p.add_argument("--certificate", "-c", help="PEM certificate for SSL remotes")
    p.add_argument("--ca-cert", "-C", help="PEM CA certificate that peers must chain to")
    p.add_argument("--bootstrap-ca-cert", help="as --ca-cert (what ovs-ctl passes); "
                   "a missing file is not bootstrapped")
    p.add_argument("--max-backlog", type=int, default=DEFAULT_MAX_BACKLOG,
                   help="drop a client once this many bytes wait unsent to it")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("dbfile", nargs="+")
    return p.parse_args(argv)


def tune_gc() -> None:
    """The database is a heap of long-lived rows, and each request allocates
    thousands of short-lived JSON objects, so Python's default collector ran
    several collections per ovs-vsctl transaction, each walking the rows:
    about an eighth of the server's time.  Rows hold no reference cycles, so
    the loaded database is moved out of the collector's sight (freeze) and
    young collections run every 20,000 allocations instead of 700."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


async def serve(args: argparse.Namespace) -> int:
    try:
        ssl_files = SslFiles(args.private_key, args.certificate,
                             args.ca_cert or args.bootstrap_ca_cert,
                             bootstrap_ca_cert=args.bootstrap_ca_cert is not None)
    except ValueError as e:  # a malformed db: reference
        sys.exit(f"ovsdb-server: {e}")
    server = OvsdbServer(args.dbfile, args.remote, ssl_files, args.max_backlog)
    ssl_files.bind(lambda name: handle.db if (handle := server.dbs.get(name)) else None)
    await server.start()
    tune_gc()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    unixctl = None
    if args.unixctl:
        from ..unixctl import UnixctlServer
        from .appctl import register_commands

        unixctl = UnixctlServer(args.unixctl, f"ovsdb-server (ovsbpfd) {__version__}")
        register_commands(unixctl, server, lambda: loop.call_soon(done.set))
        await unixctl.start()
    try:
        await done.wait()
    finally:
        if unixctl is not None:
            await unixctl.stop()
        await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    compat.install()
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s|ovsdb|%(levelname)s|%(message)s")
    if args.die_with_parent:
        die_with_parent()
    if args.schema:
        schema = Schema.from_file(args.schema)
        for path in args.dbfile:
            if not os.path.exists(path):
                create_db(path, args.schema)
                continue
            try:
                upgrade_file(path, schema)
            except OvsdbError as e:
                sys.exit(f"ovsdb-server: {path}: cannot convert to schema {args.schema}: "
                         f"{e.to_text()}")
    _name, factory = event_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
