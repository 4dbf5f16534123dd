"""Mutated and truncated messages only ever produce OfpError, never a crash."""

from __future__ import annotations

import random

from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto.match import Match
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import messages as m
from ovsbpfd.ofproto.openflow import multipart as mp
from ovsbpfd.ofproto.types import OFPFC_ADD, FlowMod, FlowStatsRequest, OfpError
from tests.ofproto.openflow.test_of_codec import ALL_ACTIONS, ALL_INSTRUCTIONS, TCP_MATCH
from tests.ofproto.openflow.test_of_groups_meters import METER, SELECT

SEEDS = [
    m.encode_message(m.FlowModMessage(FlowMod(OFPFC_ADD, TCP_MATCH, ALL_INSTRUCTIONS))),
    m.encode_message(m.FlowModMessage(FlowMod(OFPFC_ADD, Match(), (
        a.InstApplyActions(ALL_ACTIONS[:6]),)))),
    m.encode_message(m.PacketOut(actions=ALL_ACTIONS[:3], data=b"x" * 20)),
    m.encode_message(m.Hello()),
    m.encode_message(m.MultipartRequest(c.OFPMP_FLOW,
                                        body=mp.encode_flow_stats_request(FlowStatsRequest()))),
    m.encode_message(m.SetAsync((1, 2), (3, 4), (5, 6))),
    m.encode_message(m.RoleRequest(2, 3)),
    m.encode_message(m.GroupModMessage(SELECT)),
    m.encode_message(m.MeterModMessage(METER)),
]


def _decode_only_ofp_errors(data: bytes) -> None:
    try:
        m.decode_message(data)
    except OfpError:
        pass


def _fix_length(data: bytes) -> bytes:
    return data[:2] + len(data).to_bytes(2, "big") + data[4:] if len(data) >= 4 else data


def test_random_mutations_raise_only_ofp_errors() -> None:
    rng = random.Random(1234)
    for _ in range(20000):
        data = bytearray(rng.choice(SEEDS))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(8 if len(data) > 8 else 0, len(data))
            data[pos] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(8, len(data) + 1)]
        _decode_only_ofp_errors(_fix_length(bytes(data)))


def test_every_truncation_raises_only_ofp_errors() -> None:
    for seed in SEEDS:
        for cut in range(len(seed)):
            _decode_only_ofp_errors(seed[:cut])
            _decode_only_ofp_errors(_fix_length(seed[:cut]))


def test_random_bytes_with_valid_header_raise_only_ofp_errors() -> None:
    rng = random.Random(99)
    for msg_type in range(32):
        for _ in range(300):
            body = rng.randbytes(rng.randrange(0, 120))
            data = bytes([4, msg_type]) + (8 + len(body)).to_bytes(2, "big") + bytes(4) + body
            _decode_only_ofp_errors(data)
