"""A waiting transaction times out, every time.

The retry timer of a pending wait may fire a fraction of a millisecond
before the timeout has passed (uvloop counts in whole milliseconds); the
retry then finds the wait not yet timed out.  It must arm itself again, or
the client never hears back.  Many short timeouts in a row make that early
firing all but certain to happen at least once."""

from __future__ import annotations

import time

from .helpers import RpcClient, ovsbpfd_server

DB = "Open_vSwitch"


def test_ovsdb_every_wait_timeout_is_answered(tmp_path):
    with ovsbpfd_server(str(tmp_path)) as (sock, _proc):
        client = RpcClient(sock, timeout=2.0)
        try:
            for i in range(250):
                timeout_ms = 1 + i % 5
                started = time.monotonic()
                client.send({"id": i, "method": "transact", "params": [
                    DB, {"op": "wait", "table": "Bridge", "where": [], "columns": ["name"],
                         "until": "==", "rows": [{"name": "never"}], "timeout": timeout_ms}]})
                reply = client.recv()  # raises TimeoutError if the retry was lost
                assert reply["id"] == i
                (result,) = reply["result"]
                assert result["error"] == "timed out", result
                assert time.monotonic() - started >= timeout_ms / 1000.0
        finally:
            client.close()
