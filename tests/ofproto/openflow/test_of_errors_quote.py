"""ERROR replies quote the whole request and HELLO_FAILED reads as in OVS;
the error numbers have one home."""

from __future__ import annotations

import asyncio
import functools
import struct

from ovsbpfd.ofproto import error_codes, ofp_errors, types
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import errors as front_errors
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow.connection import describe_versions
from tests.ofproto.openflow.of_client import raw_client, running_manager
from tests.ofproto.openflow.of_stub_core import StubCore


def async_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))
    return wrapper


def test_every_error_number_is_the_same_object_everywhere() -> None:
    numbers = {k: v for k, v in vars(ofp_errors).items() if k.startswith("OFP")}
    assert len(numbers) > 120
    for module in (error_codes, front_errors):
        for name, value in numbers.items():
            assert getattr(module, name) == value, (module.__name__, name)
    for name in (n for n in vars(types) if n.startswith("OFPET_")):
        assert getattr(types, name) == numbers[name]
    assert ofp_errors.error_name(1, 9) == "OFPET_BAD_REQUEST/OFPBRC_BAD_TABLE_ID"
    assert ofp_errors.error_name(77, 3) == "77/3"


def test_version_bitmaps_are_described_as_ovs_does() -> None:
    assert describe_versions(0) == "no versions"
    assert describe_versions(1 << 4) == "version 0x04"
    assert describe_versions(0b11110) == "version 0x04 and earlier"
    assert describe_versions(1 << 1 | 1 << 5) == "versions 0x01, 0x05"


@async_test
async def test_error_quotes_a_large_request_whole() -> None:
    """A 60 kB unknown-type message comes back whole inside the ERROR."""
    sent = struct.pack("!BBHI", c.OFP_VERSION, 99, 60000, 0x77) + bytes(range(256)) * 234 \
        + bytes(60000 - 8 - 256 * 234)
    async with running_manager(StubCore()) as mgr, raw_client(mgr.mgmt_path) as client:
        await client.send(sent)
        reply = await client.recv()
        assert isinstance(reply, m.Error) and reply.xid == 0x77
        assert reply.data == sent


@async_test
async def test_error_quote_is_cut_where_the_length_field_ends() -> None:
    """Garbage longer than any message: the ERROR is exactly 65535 bytes."""
    garbage = b"x" * 70000
    async with running_manager(StubCore()) as mgr, raw_client(mgr.mgmt_path) as client:
        await client.send(garbage)
        raw = await client.recv_raw()
        assert struct.unpack_from("!H", raw, 2)[0] == len(raw) == 0xFFFF
        assert struct.unpack_from("!HH", raw, 8) == (ofp_errors.OFPET_BAD_REQUEST,
                                                     ofp_errors.OFPBRC_BAD_VERSION)
        assert raw[12:] == garbage[:0xFFFF - 12]
        await client.send(m.EchoRequest(b"ok", xid=5))
        while not isinstance(reply := await client.recv(), m.EchoReply):
            assert isinstance(reply, m.Error)  # the rest of the garbage, answered too
        assert reply.data == b"ok"


@async_test
async def test_hello_failed_names_both_sides_versions_with_xid_zero() -> None:
    async with running_manager(StubCore()) as mgr, \
            raw_client(mgr.mgmt_path, hello=False) as client:
        assert isinstance(await client.recv(), m.Hello)
        await client.send(struct.pack("!BBHI", 1, c.OFPT_HELLO, 8, 9))  # plain OF1.0
        raw = await client.recv_raw()
        version, msg_type, _, xid = struct.unpack_from("!BBHI", raw)
        assert (version, msg_type, xid) == (1, c.OFPT_ERROR, 0)
        assert raw[12:] == (b"We support version 0x04, you support version 0x01, "
                            b"no common versions.")
        assert await client.closed()
