"""Logging set-up, and the ``vlog/set`` / ``vlog/list`` / ``vlog/reopen`` /
``vlog/close`` unixctl commands.

OVS names log levels off/emer/err/warn/info/dbg and destinations console/
syslog/file; we map those onto Python logging: a module is a logger under
``ovsbpfd``, a destination is a handler.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from ovsbpfd.unixctl import UnixctlError

LEVELS = {
    "off": logging.CRITICAL + 10,
    "emer": logging.CRITICAL,
    "err": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "dbg": logging.DEBUG,
}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
DESTINATIONS = ("console", "syslog", "file")
MODULES = ("daemon", "dbchild", "netdev", "unixctl", "vswitch", "ofproto", "dpif", "ovsdb")
FORMAT = "%(asctime)s|%(levelname)s|%(name)s|%(message)s"

_handlers: dict[str, logging.Handler] = {}
_log_file: str | None = None  # the --log-file path, for vlog/reopen


def setup(log_file: str | None, verbose: bool, console: bool = True) -> None:
    """Root ``ovsbpfd`` logger at info (dbg with -v), to the file and/or stderr."""
    root = logging.getLogger("ovsbpfd")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
    _handlers.clear()
    global _log_file
    _log_file = log_file
    formatter = logging.Formatter(FORMAT)
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        _open_log_file(logging.NOTSET)
    if console:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
        root.addHandler(handler)
        _handlers["console"] = handler


def _open_log_file(level: int) -> None:
    """Start writing ``_log_file`` (at ``level``) with a fresh handler."""
    assert _log_file is not None
    handler = logging.handlers.WatchedFileHandler(_log_file)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    logging.getLogger("ovsbpfd").addHandler(handler)
    _handlers["file"] = handler


def _close_log_file() -> None:
    """Stop writing the log file; its level stays known (vlog/list, vlog/set)."""
    handler = _handlers.get("file")
    root = logging.getLogger("ovsbpfd")
    if handler is not None and handler in root.handlers:
        root.removeHandler(handler)
        handler.close()


def vlog_reopen(_args: list[str]) -> str:
    """``vlog/reopen``: open the log file again, by name (after logrotate moved
    it, or after ``vlog/close``); errors worded as ovs-vswitchd's.  This
    process's file only: the embedded OVSDB child writes to the stderr it
    was started with until it is restarted."""
    if _log_file is None:
        raise UnixctlError("Logging to file not configured")
    old = _handlers.get("file")
    level = old.level if old is not None else logging.NOTSET
    try:
        with open(_log_file, "a"):
            pass  # fails here, before the old handler is given up
    except OSError as exc:
        raise UnixctlError(exc.strerror or str(exc)) from exc
    _close_log_file()
    _open_log_file(level)
    return ""


def vlog_close(_args: list[str]) -> str:
    """``vlog/close``: stop writing the log file until ``vlog/reopen`` (so that
    it can be moved away or its file system unmounted)."""
    _close_log_file()
    return ""


def _logger(module: str) -> logging.Logger:
    return logging.getLogger("ovsbpfd" if module == "any" else f"ovsbpfd.{module}")


def vlog_set(args: list[str]) -> str:
    """``vlog/set [MODULE[:DEST[:LEVEL]]]...``; words may come in any order."""
    if not args:
        raise UnixctlError("vlog/set: at least one argument is required")
    for spec in args:
        module, dest, level = "any", "any", None
        for word in spec.replace(":", " ").split():
            w = word.lower()
            if w in LEVELS:
                level = w
            elif w in DESTINATIONS or w == "any" and module != "any":
                dest = w
            elif w in MODULES or w == "any":
                module = w
            elif w in ("pattern", "facility"):
                raise UnixctlError(f"{w}: not supported by ovsbpfd")
            else:
                raise UnixctlError(f'unknown module, destination, or level "{word}"')
        if level is None:
            level = "dbg"
        value = LEVELS[level]
        if dest == "any":
            _logger(module).setLevel(value)
            for handler in _handlers.values():
                if module == "any":
                    handler.setLevel(value)
        else:
            handler = _handlers.get(dest)
            if handler is not None:
                handler.setLevel(value)
            _logger(module).setLevel(min(_logger(module).getEffectiveLevel(), value))
    return ""


def _name(level: int) -> str:
    return LEVEL_NAMES.get(level, logging.getLevelName(level).lower()).upper()


def vlog_list(_args: list[str]) -> str:
    lines = [f"{'':<17}{'console':<10}{'syslog':<10}{'file':<10}".rstrip(),
             f"{'':<17}{'-------':<10}{'------':<10}{'------':<10}".rstrip()]
    for module in MODULES:
        level = _logger(module).getEffectiveLevel()
        cols = []
        for dest in DESTINATIONS:
            handler = _handlers.get(dest)
            cols.append("OFF" if handler is None else _name(max(level, handler.level)))
        lines.append(f"{module:<17}{cols[0]:<10}{cols[1]:<10}{cols[2]:<10}".rstrip())
    return "\n".join(lines) + "\n"
