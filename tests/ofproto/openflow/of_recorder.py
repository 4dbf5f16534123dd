"""A minimal OpenFlow 1.3 listener that records what a client (ovs-ofctl) sends.

It answers just enough (HELLO, TABLE_FEATURES, FLOW/other multiparts with
empty replies, BARRIER, ECHO, FEATURES) for ovs-ofctl commands to finish, and
keeps every frame it received so tests can compare exact bytes.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow import multipart as mp
from ovsbpfd.ofproto.openflow.table_features import table_features_items
from tests.ofproto.openflow.of_client import RawClient


class Recorder:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = RawClient(reader, writer)
        await client.send(m.Hello())
        try:
            while True:
                raw = await client.recv_raw(timeout=10)
                self.frames.append(raw)
                msg = m.decode_message(raw)
                for reply in self._replies(msg):
                    await client.send(reply)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    def _replies(self, msg: m.OfpMessage) -> list[m.OfpMessage]:
        if isinstance(msg, m.BarrierRequest):
            return [m.BarrierReply(xid=msg.xid)]
        if isinstance(msg, m.EchoRequest):
            return [m.EchoReply(msg.data, xid=msg.xid)]
        if isinstance(msg, m.FeaturesRequest):
            return [m.FeaturesReply(1, 0, 254, 0, 0, xid=msg.xid)]
        if isinstance(msg, m.MultipartRequest):
            items = list(table_features_items(254)) \
                if msg.mp_type == c.OFPMP_TABLE_FEATURES else []
            return list(mp.split_reply(msg.mp_type, items, msg.xid))
        return []

    def of_type(self, msg_type: int) -> list[bytes]:
        return [f for f in self.frames if f[1] == msg_type]


@asynccontextmanager
async def recording_listener() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()
    with tempfile.TemporaryDirectory(prefix="ovsbpfd-rec-") as tmp:
        path = os.path.join(tmp, "rec.mgmt")
        server = await asyncio.start_unix_server(recorder.serve, path)
        try:
            yield recorder, path
        finally:
            server.close()


async def ofctl(*args: str, timeout: float = 20) -> tuple[int, str, str]:
    """Run ``ovs-ofctl -O OpenFlow13 ARGS``; returns (status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        "ovs-ofctl", "-O", "OpenFlow13", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()
