"""The ``ovs-appctl`` commands that look into the switch: datapath flows
(``dpctl/*``, ``dpif/dump-flows``, ``upcall/show``, ``revalidator/purge``),
MAC tables (``fdb/*``), bridges and their rules (``ofproto/list``,
``bridge/dump-flows``).

Usage lines, argument counts, replies and error texts follow ovs-vswitchd
(OVS 3.1), because scripts written for it match on them.  The data comes
from the bridges (vswitch) and their OpenFlow switches and datapath backer
(ofproto); this module only reads arguments and picks whom to ask.
"""

from __future__ import annotations

from typing import Any

from ovsbpfd.dpctl_args import dpctl_error, names_datapath, parse_dpctl_args
from ovsbpfd.unixctl import UnixctlError, UnixctlServer

#: ovs-vswitchd registers dpif/dump-flows with no upper bound (INT_MAX)
UNBOUNDED = 2**31 - 1
NO_SUCH_BRIDGE = "no such bridge"


class SwitchCommands:
    """Handlers over one daemon's ``BridgeSet`` and ``DatapathBacker``.

    ``program`` is the daemon's name, which dpctl errors start with."""

    def __init__(self, program: str, bridges: Any, backer: Any) -> None:
        self.program = program
        self.bridges = bridges
        self.backer = backer

    def register(self, server: UnixctlServer) -> None:
        reg = server.register
        reg("dpctl/dump-flows", "[-m] [--names] [dp]", 0, 6, self.dpctl_dump_flows)
        reg("dpctl/del-flows", "[dp] [file]", 0, 2, self.dpctl_del_flows)
        reg("dpctl/dump-dps", "", 0, 0, self.dpctl_dump_dps)
        reg("dpctl/show", "[-s] [dp...]", 0, UNBOUNDED, self.dpctl_show)
        reg("dpif/dump-flows", "[-m] [--names | --no-names] bridge", 1, UNBOUNDED,
            self.dpif_dump_flows)
        reg("fdb/show", "bridge", 1, 1, lambda args: self._bridge(args[0]).fdb_show())
        reg("fdb/flush", "[bridge]", 0, 1, self.fdb_flush)
        reg("fdb/stats-show", "bridge", 1, 1, self.fdb_stats_show)
        reg("fdb/stats-clear", "[bridge]", 0, 1, self.fdb_stats_clear)
        reg("ofproto/list", "", 0, 0, self.ofproto_list)
        reg("bridge/dump-flows", "[--offload-stats] bridge", 1, 2, self.bridge_dump_flows)
        reg("upcall/show", "", 0, 0, lambda _args: self.backer.upcall_show())
        reg("revalidator/purge", "", 0, 0, self.revalidator_purge)

    # ------------------------------------------------------------ lookups
    def _bridge(self, name: str) -> Any:
        core = self.bridges.bridge(name)
        if core is None:
            raise UnixctlError(NO_SUCH_BRIDGE)
        return core

    def _bridges(self, args: list[str]) -> list[Any]:
        """The bridge ``args`` names, or every bridge when it names none."""
        if args:
            return [self._bridge(args[0])]
        return [self.bridges.bridge(name) for name in self.bridges.names()]

    def _datapath_not_found(self) -> UnixctlError:
        return dpctl_error(self.program, "datapath not found", "Invalid argument")

    # ------------------------------------------------------------ dpctl/*
    def dpctl_dump_flows(self, args: list[str]) -> str:
        """Up to 6 arguments as in OVS; its filter=, type= and pmd= are refused."""
        opts = parse_dpctl_args(args)
        for word in opts.rest:
            if word.startswith(("filter=", "type=", "pmd=")):
                raise dpctl_error(self.program, f"{word.split('=', 1)[0]}= is not supported")
        if len(opts.rest) > 1 or (opts.rest and not names_datapath(
                opts.rest[0], self.backer.datapath_name())):
            raise self._datapath_not_found()
        return self.backer.dump_datapath_flows(opts.verbosity > 0, opts.names)

    def dpctl_del_flows(self, args: list[str]) -> str:
        """Without a file, every flow of the datapath goes; a word that does not
        name the datapath is a file of flows to delete, as in OVS."""
        rest = parse_dpctl_args(args).rest
        names_dp = bool(rest) and names_datapath(rest[0], self.backer.datapath_name())
        if len(rest) > 1 or (rest and not names_dp):
            return self._del_flows_from_file(rest[-1])
        self.backer.flush_datapath_flows()
        return ""

    def _del_flows_from_file(self, path: str) -> str:
        """OVS answers an unreadable file with a message and success; reading
        flows in datapath syntax from a file is not offered here."""
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            return str(dpctl_error(self.program, f'Opening file "{path}" failed',
                                   exc.strerror)) + "\n"
        raise dpctl_error(self.program, "deleting the flows listed in a file is not supported")

    def dpctl_show(self, args: list[str]) -> str:
        """OVS's options are read (``-s`` adds nothing here); a name that is not
        this datapath fails as opening an unknown datapath fails in OVS."""
        for name in parse_dpctl_args(args).rest:
            if not names_datapath(name, self.backer.datapath_name()):
                raise dpctl_error(self.program, f"opening datapath {name} failed",
                                  "No such file or directory")
        return self.backer.datapath_show()

    def dpctl_dump_dps(self, args: list[str]) -> str:
        return self.backer.datapath_name() + "\n"

    # ------------------------------------------------------------ dpif, upcall
    def dpif_dump_flows(self, args: list[str]) -> str:
        """The bridge is the last argument; ``-m`` also shows masked-out
        fields and port names; other words are ignored, as in OVS."""
        core = self._bridge(args[-1])
        options = args[:-1]
        verbose = "-m" in options
        names = verbose
        for option in options:
            if option in ("--names", "--no-names"):
                names = option == "--names"
        return core.dump_datapath_flows(verbose, names)

    def revalidator_purge(self, args: list[str]) -> str:
        self.backer.purge_flows()
        return ""

    # ------------------------------------------------------------ fdb, ofproto
    def fdb_flush(self, args: list[str]) -> str:
        for core in self._bridges(args):
            core.fdb_flush()
        return "table successfully flushed"

    def fdb_stats_show(self, args: list[str]) -> str:
        return self._bridge(args[0]).fdb_stats_show()

    def fdb_stats_clear(self, args: list[str]) -> str:
        for core in self._bridges(args):
            core.fdb_stats_clear()
        return "statistics successfully cleared"

    def ofproto_list(self, args: list[str]) -> str:
        return "".join(name + "\n" for name in self.bridges.names())

    def bridge_dump_flows(self, args: list[str]) -> str:
        """The bridge is the last argument; an option other than
        ``--offload-stats`` is ignored, as in OVS, whose error text differs here."""
        core = self.bridges.bridge(args[-1])
        if core is None:
            raise UnixctlError("Unknown bridge")
        return core.dump_flows("--offload-stats" in args[:-1])
