"""The JSON-RPC splitter decodes every message exactly as the standard
library's parser does under OVSDB's rule for integers (beyond 64 bits they are
reals), whichever parser it uses inside, whole or split into pieces, and
refuses the same inputs."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from ovsbpfd.ovsdb.jsonrpc import MessageSplitter, ProtocolError, encode

INT64 = range(-(1 << 63), 1 << 63)


def reference(data: bytes) -> Any:
    """What the message means: the standard library's parse, with integers
    outside 64 bits read as reals (as ovsdb-server's parser does)."""
    return json.loads(data.decode(), parse_int=lambda t: int(t) if int(t) in INT64 else float(t))


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types (1, 1.0 and true differ; NaN equals NaN;
    the sign of 0.0 counts)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a)
                                                      == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def params(text: str) -> bytes:
    return b'{"id":1,"method":"echo","params":' + text.encode() + b"}"


GOOD = [params(t) for t in (
    "[NaN, Infinity, -Infinity]",
    "[1e400, -1e400, 5e-324, 1E2, 0.1, 1.0, -0, -0.0, 0]",
    "[9223372036854775807, -9223372036854775808]",
    "[9223372036854775808, -9223372036854775809, 18446744073709551615]",
    "[18446744073709551616, 123456789012345678901234567890]",
    '["1234567890123456789012", 12]',
    '[{"a": 1, "a": 2, "b": {"c": [], "c": [true]}}]',
    r'["\ud800", "\udfff x", "\ud83d\ude00", "\u0000", "\"\\\/\b\f\n\r\t"]',
    '["é", "日本", "\U0001f600", "a\\u00e9b"]',
    "[true, false, null, [], {}, [[[[[[[]]]]]]]]",
    " [ 1 , 2 ] ",
)] + [
    b'{"id":"x","result":[{"rows":[]}],"error":null}',
    b'{"method":"echo","params":[' + b"[" * 200 + b"]" * 200 + b"]}",
]


@pytest.mark.parametrize("data", GOOD, ids=range(len(GOOD)))
def test_ovsdb_splitter_values_match_the_standard_parser(data):
    want = reference(data)
    (whole,) = MessageSplitter().feed(data)
    assert same(whole, want)
    # Back to back with whitespace between, in one chunk.
    values = MessageSplitter().feed(data + b" \n\t" + data + data)
    assert len(values) == 3 and all(same(v, want) for v in values)
    # In pieces: the first split, a middle one, one byte short of the end.
    for cut in (1, len(data) // 2, len(data) - 1):
        splitter = MessageSplitter()
        assert splitter.feed(data[:cut]) == []
        (value,) = splitter.feed(data[cut:])
        assert same(value, want)


def test_ovsdb_splitter_every_cut_of_a_small_message():
    data = params('[1, "a\\"b", {"k": [2.5, "}"]}, 9223372036854775808]')
    want = reference(data)
    for cut in range(1, len(data)):
        splitter = MessageSplitter()
        out = splitter.feed(data[:cut]) + splitter.feed(data[cut:])
        assert len(out) == 1 and same(out[0], want), cut


BAD = [
    b'{"id":1,"method":"echo","params":[1,]}',
    b'{"id":1,"method":"echo","params":["\xff"]}',
    b'{"id":1,"method":"echo","params":["\xc3"]}',
    b'{"id":1,"method":"echo","params":[01]}',
    b'{"id":1,"method":"echo","params":["a\x01b"]}',
    b'{"id":1,"method":"echo","params":[nan]}',
    b'{"id":1,"method":"echo","params":[1.]}',
    b'{"id":1 "method":"echo"}',
]


@pytest.mark.parametrize("data", BAD, ids=range(len(BAD)))
def test_ovsdb_splitter_refuses_what_the_standard_parser_refuses(data):
    with pytest.raises(ValueError):
        reference(data)
    with pytest.raises(ProtocolError):
        MessageSplitter().feed(data)
    splitter = MessageSplitter()
    with pytest.raises(ProtocolError):
        splitter.feed(data[:5])
        splitter.feed(data[5:])


def test_ovsdb_splitter_returns_good_messages_before_a_bad_one():
    good = params("[1]")
    splitter = MessageSplitter()
    out = splitter.feed(good + b'{"id":2,"method":"echo","params":[tru]}')
    assert len(out) == 1 and same(out[0], reference(good))
    with pytest.raises(ProtocolError):
        splitter.feed(b"")


@pytest.mark.parametrize("data", [b'"just a string"', b"42", b"null"])
def test_ovsdb_splitter_refuses_values_that_are_not_objects(data):
    with pytest.raises(ProtocolError):
        MessageSplitter().feed(data)


ENCODABLE = [
    ["é", "日本", "\U0001f600", "\u0000\x1f\x7f", "\"\\/\b\f\n\r\t", ""],
    [0, -0.0, 0.1, 1.0, 1e300, 5e-324, -(1 << 63), (1 << 63) - 1, (1 << 64) - 1],
    [True, False, None, [], {}, [[[[]]]], {"a": {"b": [1, "x"]}}],
    {"id": None, "method": "update3", "params": [["monid", "db"], "0" * 36, {"T": {}}]},
]


@pytest.mark.parametrize("value", ENCODABLE, ids=range(len(ENCODABLE)))
def test_ovsdb_encode_is_compact_json_of_the_same_value(value):
    data = encode(value)
    assert b", " not in data and b": " not in data  # compact separators
    assert same(json.loads(data), value)


def test_ovsdb_encode_writes_what_orjson_refuses_as_the_standard_library_does():
    big = [1 << 64, -(1 << 63) - 1, 123456789012345678901234567890]
    assert encode(big) == json.dumps(big, separators=(",", ":")).encode()
    assert encode({1: "a", "b": 2}) == b'{"1":"a","b":2}'
