"""The fast OXM decoder (used for speed on FLOW_MOD floods) agrees with the
checked one on every input: same Match, or the checked one's error.

A unit test (no root needed) kept beside the benchmark work that made the
fast path; random and mutated TLV strings from a fixed seed.
"""

from __future__ import annotations

import random

import pytest

from ovsbpfd.ofproto.match import FIELDS, Match
from ovsbpfd.ofproto.openflow import oxm
from ovsbpfd.ofproto.openflow.errors import OfpError


def _checked(data: bytes) -> Match | tuple[int, int]:
    try:
        return Match(oxm._checked_fields(data))
    except OfpError as err:
        return (err.type, err.code)


def _fast(data: bytes) -> Match | None:
    fields = oxm._fast_fields(data)
    return Match(fields) if fields is not None else None


def _random_tlvs(rng: random.Random) -> bytes:
    out = b""
    for _ in range(rng.randint(0, 5)):
        field = rng.choice(FIELDS)
        masked = field.maskable and rng.random() < 0.4
        value = rng.getrandbits(field.nbytes * 8)
        if rng.random() < 0.7:
            value &= (1 << oxm.value_bits(field.name)) - 1
        mask = rng.getrandbits(field.nbytes * 8) if masked else None
        if mask is not None and rng.random() < 0.7:
            value &= mask
        out += oxm.encode_oxm(field.name, value, mask)
    return out


def _mutate(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 6)))
    choice = rng.random()
    if choice < 0.3:
        return data[:rng.randrange(len(data))]
    if choice < 0.6:
        i = rng.randrange(len(data))
        return data[:i] + bytes([rng.getrandbits(8)]) + data[i + 1:]
    return data + data[:rng.randint(4, 12)]  # repeats a field


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_agrees_with_checked_decoder(seed: int) -> None:
    rng = random.Random(seed)
    fast_hits = 0
    for _ in range(3000):
        data = _random_tlvs(rng)
        if rng.random() < 0.5:
            data = _mutate(data, rng)
        fast = _fast(data)
        checked = _checked(data)
        if fast is not None:
            fast_hits += 1
            assert fast == checked, data.hex()
        # When the fast path declines, the checked decoder decides (either
        # way the caller gets the checked answer), so nothing more to compare.
    assert fast_hits > 1000  # the fast path is really taken


def test_whole_decoder_unchanged_on_good_and_bad_matches() -> None:
    good = oxm.encode_oxm("eth_type", 0x0800) + oxm.encode_oxm("ipv4_dst", 0x0A000001)
    assert oxm.decode_oxm_fields(good) == Match(eth_type=0x0800, ipv4_dst=0x0A000001)
    with pytest.raises(OfpError) as bad_prereq:
        oxm.decode_oxm_fields(oxm.encode_oxm("ipv4_dst", 0x0A000001))
    assert bad_prereq.value.code == oxm.OFPBMC_BAD_PREREQ
    with pytest.raises(OfpError) as dup:
        oxm.decode_oxm_fields(good + oxm.encode_oxm("eth_type", 0x0800))
    assert dup.value.code == oxm.OFPBMC_DUP_FIELD
