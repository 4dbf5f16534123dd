"""TABLE_FEATURES advertise exactly what a FLOW_MOD may use.

Each OXM field the codec knows is listed for matching iff validation accepts
a match on it, for Set-Field iff validation accepts setting it, and each
action type iff validation lets an action of that type through.  A field or
action the datapath learns (or loses) thus shows up in dump-table-features
without anyone editing a list.
"""

from __future__ import annotations

import struct

import pytest

from ovsbpfd.ofproto import actions as a
from ovsbpfd.ofproto.match import FIELDS, FIELDS_BY_NAME, OFPVID_PRESENT, Match
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow import table_features as tf
from ovsbpfd.ofproto.openflow.actions_codec import encode_action
from ovsbpfd.ofproto.openflow.oxm import oxm_header
from ovsbpfd.ofproto.types import OfpError
from ovsbpfd.ofproto.validation import check_actions, check_match

# One action of every type the codec decodes.
SAMPLE_ACTIONS = (
    a.ActOutput(1), a.ActCopyTtlOut(), a.ActCopyTtlIn(), a.ActSetMplsTtl(5),
    a.ActDecMplsTtl(), a.ActPushVlan(0x8100), a.ActPopVlan(), a.ActPushMpls(0x8847),
    a.ActPopMpls(0x0800), a.ActSetQueue(1), a.ActGroup(1), a.ActSetNwTtl(5), a.ActDecNwTtl(),
    a.ActSetField("eth_dst", 1), a.ActPushPbb(0x88E7), a.ActPopPbb(),
)


def _properties(item: bytes) -> dict[int, bytes]:
    props: dict[int, bytes] = {}
    offset = tf.TABLE_FEATURES.size
    while offset < len(item):
        prop_type, length = tf.PROP_HEADER.unpack_from(item, offset)
        props[prop_type] = item[offset + tf.PROP_HEADER.size:offset + length]
        offset += length + (-length % 8)
    return props


def _oxm_headers(payload: bytes) -> set[int]:
    return {h for (h,) in struct.iter_unpack("!I", payload)}


def _tlv_types(payload: bytes) -> set[int]:
    return {t for t, _ in struct.iter_unpack("!HH", payload)}


TABLE0 = _properties(tf.table_features_items(254)[0])


def _with_prereqs(name: str, value: int, fields: dict | None = None) -> dict:
    """``name`` = ``value`` plus whatever its prerequisites ask for."""
    fields = {} if fields is None else fields
    for pre, allowed in FIELDS_BY_NAME[name].prereqs:
        if pre not in fields:
            _with_prereqs(pre, allowed[0] if allowed else _sample_value(pre), fields)
    fields[name] = value
    return fields


def _sample_value(name: str) -> int:
    return OFPVID_PRESENT | 10 if name == "vlan_vid" else 1


def _accepted(check, *args) -> bool:
    try:
        check(*args)
    except OfpError:
        return False
    return True


@pytest.mark.parametrize("field", [f.name for f in FIELDS])
def test_match_lists_exactly_what_a_flow_mod_may_match(field: str) -> None:
    match = Match(_with_prereqs(field, _sample_value(field)))
    accepted = _accepted(check_match, match)
    maskable = FIELDS_BY_NAME[field].maskable
    assert (oxm_header(field, maskable) in _oxm_headers(TABLE0[tf.OFPTFPT_MATCH])) == accepted
    assert (oxm_header(field, False) in _oxm_headers(TABLE0[tf.OFPTFPT_WILDCARDS])) == accepted


@pytest.mark.parametrize("field", [f.name for f in FIELDS])
def test_set_field_lists_exactly_what_a_flow_mod_may_set(field: str) -> None:
    # A match that gives every prerequisite, with a VLAN header to rewrite.
    fields = _with_prereqs(field, _sample_value(field))
    fields.setdefault("vlan_vid", OFPVID_PRESENT | 10)
    action = a.ActSetField(field, _sample_value(field))
    accepted = _accepted(check_actions, [action], Match(fields))
    header = oxm_header(field, False)
    for prop in (tf.OFPTFPT_WRITE_SETFIELD, tf.OFPTFPT_APPLY_SETFIELD,
                 tf.OFPTFPT_WRITE_SETFIELD_MISS, tf.OFPTFPT_APPLY_SETFIELD_MISS):
        assert (header in _oxm_headers(TABLE0[prop])) == accepted, (field, prop)


@pytest.mark.parametrize("action", SAMPLE_ACTIONS, ids=lambda act: type(act).__name__)
def test_actions_list_exactly_what_a_flow_mod_may_do(action: a.Action) -> None:
    match = Match({"eth_type": 0x0800, "vlan_vid": OFPVID_PRESENT | 10})
    accepted = _accepted(lambda: check_actions([action], match, group_exists=lambda _: True))
    (action_type,) = struct.unpack_from("!H", encode_action(action))
    for prop in (tf.OFPTFPT_WRITE_ACTIONS, tf.OFPTFPT_APPLY_ACTIONS,
                 tf.OFPTFPT_WRITE_ACTIONS_MISS, tf.OFPTFPT_APPLY_ACTIONS_MISS):
        assert (action_type in _tlv_types(TABLE0[prop])) == accepted, prop


def test_every_action_type_of_the_codec_is_sampled() -> None:
    sampled = {struct.unpack_from("!H", encode_action(act))[0] for act in SAMPLE_ACTIONS}
    assert sampled == set(tf.ACTION_TYPES)


def test_instructions_and_next_tables() -> None:
    items = tf.table_features_items(254)
    first, last = _properties(items[0]), _properties(items[-1])
    assert _tlv_types(first[tf.OFPTFPT_INSTRUCTIONS]) == {
        c.OFPIT_GOTO_TABLE, c.OFPIT_WRITE_METADATA, c.OFPIT_WRITE_ACTIONS,
        c.OFPIT_APPLY_ACTIONS, c.OFPIT_CLEAR_ACTIONS, c.OFPIT_METER}
    assert c.OFPIT_GOTO_TABLE not in _tlv_types(last[tf.OFPTFPT_INSTRUCTIONS])
    assert first[tf.OFPTFPT_NEXT_TABLES][:253] == bytes(range(1, 254))
    assert last[tf.OFPTFPT_NEXT_TABLES].strip(b"\0") == b""
