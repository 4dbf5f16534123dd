"""ovsbpfd: an Open vSwitch compatible switch with an eBPF/TC datapath."""

__version__ = "0.1.0"

import warnings

# python-ovs imports eventlet when it is installed, which then warns about its
# own deprecation in every process that merely imports ovs.poller.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
