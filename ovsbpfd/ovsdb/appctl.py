"""The embedded OVSDB server's ``ovs-appctl -t ovsdb-server`` commands.

The ones people use on ovsdb-server, with its wording and its output, since
scripts and tutorials rely on them: add, remove and list remotes (e.g.
``ovsdb-server/add-remote ptcp:6640`` to reach the database from another
machine), list the databases, drop every client connection, compact, and
the memory counts.  Changes are made at run time only, as in ovsdb-server:
a restart goes back to the command line's remotes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..unixctl import UnixctlError, UnixctlServer
from .remotes import RemoteError
from .server import OvsdbServer


def register_commands(unixctl: UnixctlServer, server: OvsdbServer,
                      request_exit: Callable[[], None]) -> None:
    """Expose server's run-time controls on unixctl."""

    def _exit(_args: list[str]) -> str:
        request_exit()
        return ""

    async def _compact(args: list[str]) -> str:
        name = args[0] if args else None
        if name is not None:
            handle = server.dbs.get(name)
            if handle is None:
                raise UnixctlError("no database by that name")
            if handle.storage is None:
                raise UnixctlError("cannot compact built-in databases")
        await server.compact_async(name)
        return ""

    def _on_remote(change: Callable[[str], Awaitable[None]]
                   ) -> Callable[[list[str]], Awaitable[str]]:
        async def command(args: list[str]) -> str:
            try:
                await change(args[0])
            except RemoteError as e:
                raise UnixctlError(str(e)) from None
            return ""
        return command

    def _list_remotes(_args: list[str]) -> str:
        return "".join(f"{target}\n" for target in server.configured_remotes())

    def _list_dbs(_args: list[str]) -> str:
        return "".join(f"{name}\n" for name in sorted(server.dbs))

    def _reconnect(_args: list[str]) -> str:
        server.reconnect_all()
        return ""

    def _memory_show(_args: list[str]) -> str:
        usage = server.memory_usage()
        return " ".join(f"{key}:{value}" for key, value in sorted(usage.items())) + "\n"

    unixctl.register("exit", "", 0, 0, _exit)
    unixctl.register("ovsdb-server/compact", "", 0, 1, _compact)
    unixctl.register("ovsdb-server/add-remote", "REMOTE", 1, 1, _on_remote(server.add_remote))
    unixctl.register("ovsdb-server/remove-remote", "REMOTE", 1, 1,
                     _on_remote(server.remove_remote))
    unixctl.register("ovsdb-server/list-remotes", "", 0, 0, _list_remotes)
    unixctl.register("ovsdb-server/list-dbs", "", 0, 0, _list_dbs)
    unixctl.register("ovsdb-server/reconnect", "", 0, 0, _reconnect)
    unixctl.register("memory/show", "", 0, 0, _memory_show)
