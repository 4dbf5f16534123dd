"""ovsbpfd: an Open vSwitch compatible switch with an eBPF/TC datapath."""

__version__ = "0.1.0"
