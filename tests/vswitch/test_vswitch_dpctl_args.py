"""dpctl/* argument reading: options as ovs-vswitchd's dpctl reads them."""

from __future__ import annotations

import pytest

from ovsbpfd.dpctl_args import dpctl_error, names_datapath, parse_dpctl_args
from ovsbpfd.unixctl import UnixctlError


def test_options_then_the_rest() -> None:
    args = parse_dpctl_args(["-m", "--names", "bpf@ovs-system", "-x"])
    assert (args.verbosity, args.names, args.rest) == (1, True, ["bpf@ovs-system", "-x"])
    args = parse_dpctl_args(["-ms", "--more"])
    assert (args.verbosity, args.statistics, args.names) == (2, True, True)
    assert parse_dpctl_args(["-m", "--no-names"]).names is False
    assert parse_dpctl_args([]).names is False
    assert parse_dpctl_args(["-", "x"]).rest == ["-", "x"]  # "-" is a file name (stdin)


@pytest.mark.parametrize("bad, text", [(["--bogus"], "Unrecognized option --bogus"),
                                       (["-mx"], "Unrecognized option -x")])
def test_unknown_options_worded_as_ovs(bad: list[str], text: str) -> None:
    with pytest.raises(UnixctlError) as err:
        parse_dpctl_args(bad)
    assert str(err.value) == text


def test_datapath_names() -> None:
    assert names_datapath("bpf@ovs-system", "bpf@ovs-system")
    assert names_datapath("ovs-system", "bpf@ovs-system")
    assert not names_datapath("system@ovs-system", "bpf@ovs-system")
    assert not names_datapath("br0", "bpf@ovs-system")
    assert str(dpctl_error("ovsbpfd", "datapath not found", "Invalid argument")) == (
        "ovsbpfd: datapath not found (Invalid argument)")
