"""A raw OpenFlow client for tests: sends bytes, reads whole messages."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ovsbpfd.ofproto.openflow.connmgr import ConnectionManager
from ovsbpfd.ofproto.openflow.header import parse_header
from ovsbpfd.ofproto.openflow.messages import Hello, OfpMessage, decode_message, encode_message


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes | OfpMessage) -> None:
        self.writer.write(data if isinstance(data, bytes) else encode_message(data))
        await self.writer.drain()

    async def recv_raw(self, timeout: float = 3.0) -> bytes:
        header = await asyncio.wait_for(self.reader.readexactly(8), timeout)
        length = parse_header(header).length
        return header + await asyncio.wait_for(self.reader.readexactly(length - 8), timeout)

    async def recv(self, timeout: float = 3.0) -> OfpMessage:
        return decode_message(await self.recv_raw(timeout))

    async def closed(self, timeout: float = 3.0) -> bool:
        """True once the peer has closed (EOF), ignoring pending messages."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except (TimeoutError, ConnectionError):
            return False
        return True

    def close(self) -> None:
        self.writer.close()


@asynccontextmanager
async def raw_client(path: str, hello: bool = True) -> AsyncIterator[RawClient]:
    reader, writer = await asyncio.open_unix_connection(path)
    client = RawClient(reader, writer)
    try:
        if hello:
            assert isinstance(await client.recv(), Hello)
            await client.send(Hello())
        yield client
    finally:
        client.close()


@asynccontextmanager
async def running_manager(core) -> AsyncIterator[ConnectionManager]:
    with tempfile.TemporaryDirectory(prefix="ovsbpfd-of-") as rundir:
        manager = ConnectionManager(core, rundir)
        await manager.start()
        try:
            yield manager
        finally:
            await manager.stop()
        assert not os.path.exists(manager.mgmt_path)
