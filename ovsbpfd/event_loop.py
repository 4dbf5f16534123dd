"""Which event loop the daemon and its OVSDB child run on.

uvloop (libuv) wakes up, reads sockets and writes replies for a fraction of
the cost of asyncio's pure-Python selector loop, and an OpenFlow round trip
or an ovs-vsctl connection is mostly that.  ``asyncio`` (or a missing
uvloop) falls back to the stdlib loop, should uvloop misbehave on some
system.  The choice is an environment variable so that the OVSDB child,
which inherits the daemon's environment, follows the daemon's.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

#: environment variable choosing the event loop: "uvloop" (default) or "asyncio"
EVENT_LOOP_ENV = "OVSBPFD_EVENT_LOOP"
EVENT_LOOPS = ("uvloop", "asyncio")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def event_loop_factory(choice: str | None = None) -> tuple[str, LoopFactory]:
    """(name, factory) of the loop to run: uvloop's unless asked for the stdlib one."""
    if choice is None:
        choice = os.environ.get(EVENT_LOOP_ENV) or "uvloop"
    if choice not in EVENT_LOOPS:
        raise ValueError(f"{EVENT_LOOP_ENV}={choice}: expected one of {', '.join(EVENT_LOOPS)}")
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed: using asyncio's event loop")
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop
