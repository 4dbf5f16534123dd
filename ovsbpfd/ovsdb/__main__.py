"""python -m ovsbpfd.ovsdb: the embedded OVSDB server process.

    python -m ovsbpfd.ovsdb [--remote punix:PATH]... [--schema SCHEMA]
                            [--unixctl PATH] [--die-with-parent] DBFILE

Runs until SIGTERM/SIGINT (or `ovs-appctl exit`), then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import sys

from .. import __version__
from .server import OvsdbServer
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
    p.add_argument("--schema", help="create DBFILE from this schema if it is missing")
    p.add_argument("--unixctl", help="serve ovs-appctl commands on this socket")
    p.add_argument("--die-with-parent", action="store_true")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("dbfile", nargs="+")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    server = OvsdbServer(args.dbfile, args.remote)
    await server.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    unixctl = None
    if args.unixctl:
        from ..unixctl import UnixctlServer

        unixctl = UnixctlServer(args.unixctl, f"ovsdb-server (ovsbpfd) {__version__}")

        def _exit(_args: list[str]) -> str:
            loop.call_soon(done.set)
            return ""

        def _compact(_args: list[str]) -> str:
            server.compact()
            return ""

        unixctl.register("exit", "", 0, 0, _exit)
        unixctl.register("ovsdb-server/compact", "[DB]", 0, 1, _compact)
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
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s|ovsdb|%(levelname)s|%(message)s")
    if args.die_with_parent:
        die_with_parent()
    if args.schema:
        for path in args.dbfile:
            if not os.path.exists(path):
                create_db(path, args.schema)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
