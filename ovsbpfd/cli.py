"""``ovsbpfd`` command line: options spelled like the Open vSwitch daemons'."""

from __future__ import annotations

import argparse
import os
import sys

from ovsbpfd import __version__
from ovsbpfd.rundir import (
    AlreadyRunning,
    default_dbdir,
    default_logdir,
    default_rundir,
    pidfile_path,
)

PROGRAM = "ovsbpfd"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Open vSwitch compatible switch daemon with an eBPF/TC datapath.",
    )
    p.add_argument("--rundir", default=None,
                   help="runtime directory (default: $OVS_RUNDIR or /var/run/openvswitch)")
    p.add_argument("--dbdir", default=None,
                   help="database directory (default: $OVS_DBDIR or /etc/openvswitch)")
    p.add_argument("--db", metavar="FILE", default=None,
                   help="database file (default: DBDIR/conf.db)")
    p.add_argument("--db-remote", metavar="REMOTE", default=None,
                   help="use this external OVSDB server (e.g. unix:/path/db.sock) "
                        "instead of starting the embedded one")
    p.add_argument("--remote", metavar="REMOTE", action="append", default=[],
                   help="extra listener for the embedded OVSDB server (ptcp:PORT[:IP]); "
                        "may be repeated")
    p.add_argument("--datapath", choices=("bpf", "dummy"), default="bpf",
                   help="datapath provider (default: bpf)")
    p.add_argument("--pin-root", default="/sys/fs/bpf/ovsbpfd",
                   help="bpffs directory for pinned programs and maps")
    p.add_argument("--event-loop", choices=("uvloop", "asyncio"), default=None,
                   help="event loop (default: $OVSBPFD_EVENT_LOOP or uvloop; "
                        "asyncio is the stdlib loop, also used when uvloop is missing)")
    p.add_argument("--pidfile", nargs="?", const="", default="", metavar="FILE",
                   help="pidfile (default: RUNDIR/ovsbpfd.pid)")
    p.add_argument("--detach", action="store_true",
                   help="run in the background once the DB socket and unixctl are up")
    p.add_argument("--log-file", nargs="?", const="", default=None, metavar="FILE",
                   help="log to FILE (default with no FILE: $OVS_LOGDIR/ovsbpfd.log)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-V", "--version", action="version",
                   version=f"{PROGRAM} (Open vSwitch) {__version__}")
    return p


def _paths(args: argparse.Namespace) -> tuple[str, str, str, str | None]:
    rundir = os.path.abspath(args.rundir or default_rundir())
    dbdir = os.path.abspath(args.dbdir or default_dbdir())
    # Debian links /etc/openvswitch/conf.db to /var/lib/openvswitch/conf.db:
    # write through the link (as ovsdb-server does), never replace it.
    dbfile = os.path.realpath(args.db or os.path.join(dbdir, "conf.db"))
    pidfile = os.path.abspath(args.pidfile or pidfile_path(rundir, PROGRAM))
    log_file = None
    if args.log_file is not None:
        log_file = os.path.abspath(args.log_file or os.path.join(default_logdir(),
                                                                  f"{PROGRAM}.log"))
    return rundir, dbfile, pidfile, log_file


def _detach() -> tuple[int, bool]:
    """Fork; the parent waits for the child's readiness byte and exits.

    Returns (write end of the readiness pipe, True) in the child.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(wfd)
        data = b""
        while True:
            chunk = os.read(rfd, 16)
            if not chunk:
                break
            data += chunk
        os._exit(0 if data.startswith(b"R") else 1)
    os.close(rfd)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return wfd, True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rundir, dbfile, pidfile, log_file = _paths(args)

    from ovsbpfd import logsetup
    from ovsbpfd.daemon import DaemonConfig, run_daemon

    ready_fd: int | None = None
    if args.detach:
        ready_fd, _ = _detach()
    logsetup.setup(log_file, args.verbose, console=not args.detach)

    def ready() -> None:
        if ready_fd is not None:
            os.write(ready_fd, b"R")
            os.close(ready_fd)

    cfg = DaemonConfig(
        rundir=rundir, dbfile=dbfile, pidfile=pidfile, datapath=args.datapath,
        pin_root=args.pin_root, db_remote=args.db_remote, db_log_file=log_file,
        extra_db_remotes=list(args.remote),
    )
    try:
        return run_daemon(cfg, ready, event_loop=args.event_loop)
    except AlreadyRunning as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        import logging

        logging.getLogger("ovsbpfd.daemon").exception("fatal error")
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
