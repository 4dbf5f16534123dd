"""Arguments of the ``dpctl/*`` unixctl commands, read the way ovs-vswitchd's
dpctl reads them: leading options first (an unknown one is refused in OVS's
words), then the rest, where an optional first word may name the datapath.

A datapath is named ``type@name`` (``bpf@ovs-system``); the bare name is
accepted too, as OVS accepts it for its default (system) type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovsbpfd.unixctl import UnixctlError

_LONG_OPTIONS = ("--statistics", "--clear", "--may-create", "--more", "--names", "--no-names")
_SHORT_OPTIONS = "ms"


@dataclass
class DpctlArgs:
    verbosity: int = 0
    names: bool = False
    statistics: bool = False
    rest: list[str] = field(default_factory=list)


def parse_dpctl_args(args: list[str]) -> DpctlArgs:
    """Split off the leading options; UnixctlError for an unknown one.

    Ports print by name when ``-m`` is given, unless ``--no-names`` says otherwise."""
    parsed = DpctlArgs()
    set_names = False
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        arg = args[i]
        if arg.startswith("--"):
            if arg not in _LONG_OPTIONS:
                raise UnixctlError(f"Unrecognized option {arg}")
            if arg == "--more":
                parsed.verbosity += 1
            elif arg in ("--names", "--no-names"):
                parsed.names, set_names = arg == "--names", True
            elif arg == "--statistics":
                parsed.statistics = True
        else:
            for opt in arg[1:]:
                if opt not in _SHORT_OPTIONS:
                    raise UnixctlError(f"Unrecognized option -{opt}")
                if opt == "m":
                    parsed.verbosity += 1
                else:
                    parsed.statistics = True
        i += 1
    if not set_names:
        parsed.names = parsed.verbosity > 0
    parsed.rest = args[i:]
    return parsed


def names_datapath(word: str, full_name: str) -> bool:
    """True if ``word`` names the datapath ``full_name`` (``type@name``)."""
    return word in (full_name, full_name.split("@", 1)[1])


def dpctl_error(program: str, message: str, strerror: str | None = None) -> UnixctlError:
    """An error worded as OVS's dpctl words them: ``PROGRAM: MESSAGE (STRERROR)``."""
    text = f"{program}: {message}"
    return UnixctlError(f"{text} ({strerror})" if strerror else text)
