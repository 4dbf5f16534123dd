"""Imported first by the server process: keeps eventlet (and gevent) out.

python-ovs's poller imports eventlet when it is installed, only to ask whether
select is monkey-patched; ovs.db.data imports the poller.  Eventlet brings
dnspython and hundreds of modules with it: 0.6 s of start-up and about 20 MB
of memory that the server, which never uses the poller, paid for nothing.
With the modules marked missing, the poller's own fallback (no green
select) applies.
"""

import sys

for _name in ("eventlet", "gevent"):
    sys.modules.setdefault(_name, None)
