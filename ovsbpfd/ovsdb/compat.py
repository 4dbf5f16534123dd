"""One wording fix to python-ovs, installed by the server process only.

python-ovs quotes every string atom containing a digit, dot or dash when it
prints values into error messages ("OpenFlow99" becomes "\\"OpenFlow99\\""),
while ovsdb-server, whose messages clients and tests compare against, quotes a
string only when it is not an identifier-like word: first character a letter
or "_", then letters, digits, "-", "_" or "." (and "true"/"false" always).
Nothing but message text depends on this.
"""

from __future__ import annotations

import re

import ovs.db.data

_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


def string_needs_quotes(s: str) -> bool:
    return s in ("true", "false") or not _BARE_WORD.match(s)


def install() -> None:
    ovs.db.data.Atom._Atom__string_needs_quotes = staticmethod(string_needs_quotes)
