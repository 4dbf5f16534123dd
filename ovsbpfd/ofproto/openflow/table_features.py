"""OFPMP_TABLE_FEATURES reply bodies: what each table can match and do.

ovs-ofctl asks for these before add-flow and for dump-table-features.  The
lists come from the codec's own tables (every OXM field, every action and
instruction it decodes), so they cannot drift from what FLOW_MOD accepts.
"""

from __future__ import annotations

import functools
import struct

from ovsbpfd.ofproto.match import FIELDS
from ovsbpfd.ofproto.openflow import constants as c
from ovsbpfd.ofproto.openflow.actions_codec import UNSETTABLE_FIELDS
from ovsbpfd.ofproto.openflow.header import pad8
from ovsbpfd.ofproto.openflow.oxm import oxm_header

TABLE_FEATURES = struct.Struct("!HB5x32sQQII")
PROP_HEADER = struct.Struct("!HH")
MAX_ENTRIES = 1_000_000

OFPTFPT_INSTRUCTIONS = 0
OFPTFPT_INSTRUCTIONS_MISS = 1
OFPTFPT_NEXT_TABLES = 2
OFPTFPT_NEXT_TABLES_MISS = 3
OFPTFPT_WRITE_ACTIONS = 4
OFPTFPT_WRITE_ACTIONS_MISS = 5
OFPTFPT_APPLY_ACTIONS = 6
OFPTFPT_APPLY_ACTIONS_MISS = 7
OFPTFPT_MATCH = 8
OFPTFPT_WILDCARDS = 10
OFPTFPT_WRITE_SETFIELD = 12
OFPTFPT_WRITE_SETFIELD_MISS = 13
OFPTFPT_APPLY_SETFIELD = 14
OFPTFPT_APPLY_SETFIELD_MISS = 15

INSTRUCTION_TYPES = (c.OFPIT_GOTO_TABLE, c.OFPIT_WRITE_METADATA, c.OFPIT_WRITE_ACTIONS,
                     c.OFPIT_APPLY_ACTIONS, c.OFPIT_CLEAR_ACTIONS, c.OFPIT_METER)
ACTION_TYPES = (c.OFPAT_OUTPUT, c.OFPAT_COPY_TTL_OUT, c.OFPAT_COPY_TTL_IN,
                c.OFPAT_SET_MPLS_TTL, c.OFPAT_DEC_MPLS_TTL, c.OFPAT_PUSH_VLAN,
                c.OFPAT_POP_VLAN, c.OFPAT_PUSH_MPLS, c.OFPAT_POP_MPLS, c.OFPAT_SET_QUEUE,
                c.OFPAT_GROUP, c.OFPAT_SET_NW_TTL, c.OFPAT_DEC_NW_TTL, c.OFPAT_SET_FIELD,
                c.OFPAT_PUSH_PBB, c.OFPAT_POP_PBB)


def _prop(prop_type: int, payload: bytes) -> bytes:
    length = PROP_HEADER.size + len(payload)
    return PROP_HEADER.pack(prop_type, length) + payload + bytes(pad8(length))


def _tlv_headers(types: tuple[int, ...]) -> bytes:
    return b"".join(PROP_HEADER.pack(t, PROP_HEADER.size) for t in types)


def _oxm_headers(names: list[str], with_masks: bool) -> bytes:
    return b"".join(struct.pack("!I", oxm_header(n, with_masks and f.maskable))
                    for n, f in ((f.name, f) for f in FIELDS) if n in names)


@functools.lru_cache(maxsize=4)
def table_features_items(n_tables: int) -> tuple[bytes, ...]:
    """One encoded ofp_table_features per table."""
    names = [f.name for f in FIELDS]
    settable = [n for n in names if n not in UNSETTABLE_FIELDS]
    actions = _tlv_headers(ACTION_TYPES)
    setfields = _oxm_headers(settable, False)
    common = b"".join((
        _prop(OFPTFPT_WRITE_ACTIONS, actions), _prop(OFPTFPT_WRITE_ACTIONS_MISS, actions),
        _prop(OFPTFPT_APPLY_ACTIONS, actions), _prop(OFPTFPT_APPLY_ACTIONS_MISS, actions),
        _prop(OFPTFPT_MATCH, _oxm_headers(names, True)),
        _prop(OFPTFPT_WILDCARDS, _oxm_headers(names, False)),
        _prop(OFPTFPT_WRITE_SETFIELD, setfields), _prop(OFPTFPT_WRITE_SETFIELD_MISS, setfields),
        _prop(OFPTFPT_APPLY_SETFIELD, setfields), _prop(OFPTFPT_APPLY_SETFIELD_MISS, setfields),
    ))
    items = []
    for table_id in range(n_tables):
        last = table_id == n_tables - 1
        insts = _tlv_headers(tuple(t for t in INSTRUCTION_TYPES
                                   if not (last and t == c.OFPIT_GOTO_TABLE)))
        next_tables = bytes(range(table_id + 1, n_tables))
        props = b"".join((
            _prop(OFPTFPT_INSTRUCTIONS, insts), _prop(OFPTFPT_INSTRUCTIONS_MISS, insts),
            _prop(OFPTFPT_NEXT_TABLES, next_tables),
            _prop(OFPTFPT_NEXT_TABLES_MISS, next_tables),
        )) + common
        # No name, as ovs-vswitchd reports a table not named in Flow_Table
        # (ovs-ofctl then prints one stanza and "ditto" for identical tables).
        head = TABLE_FEATURES.pack(TABLE_FEATURES.size + len(props), table_id,
                                   b"", 2**64 - 1, 2**64 - 1, 0, MAX_ENTRIES)
        items.append(head + props)
    return tuple(items)
