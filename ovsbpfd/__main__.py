"""``python -m ovsbpfd``: the daemon."""

import sys

from ovsbpfd.cli import main

sys.exit(main())
