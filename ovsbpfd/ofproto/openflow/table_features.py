"""OFPMP_TABLE_FEATURES reply bodies: what each table can match and do.

ovs-ofctl asks for these for dump-table-features.  What is advertised is
exactly what a FLOW_MOD may use: the match and wildcard lists are the OXM
fields the datapath key holds (``flow_fields.SUPPORTED_FIELDS``, masked where
the field is maskable), Set-Field lists the fields the datapath can rewrite
(``SETTABLE_FIELDS``), and the actions are the ones validation lets through.
Everything else the codec decodes (MPLS, PBB, copy_ttl, set_queue, ...) is
refused at FLOW_MOD time, so it is not advertised either.  ovs-vswitchd
lists more (its NXM fields, masks on transport ports, MPLS actions): the
difference is the datapath's, and tests/system/test_sys_ofctl_compare.py
names it.
"""

from __future__ import annotations

import functools
import struct

from ovsbpfd.ofproto.flow_fields import SETTABLE_FIELDS, SUPPORTED_FIELDS
from ovsbpfd.ofproto.match import FIELDS
from ovsbpfd.ofproto.openflow import constants as c
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
# The actions a FLOW_MOD may carry (validation.check_actions refuses the rest
# of ACTION_TYPES, which group features still name as ovs-vswitchd does).
TABLE_ACTION_TYPES = (c.OFPAT_OUTPUT, c.OFPAT_PUSH_VLAN, c.OFPAT_POP_VLAN, c.OFPAT_GROUP,
                      c.OFPAT_SET_NW_TTL, c.OFPAT_DEC_NW_TTL, c.OFPAT_SET_FIELD)


def _prop(prop_type: int, payload: bytes) -> bytes:
    length = PROP_HEADER.size + len(payload)
    return PROP_HEADER.pack(prop_type, length) + payload + bytes(pad8(length))


def _tlv_headers(types: tuple[int, ...]) -> bytes:
    return b"".join(PROP_HEADER.pack(t, PROP_HEADER.size) for t in types)


def _oxm_headers(names: frozenset[str], with_masks: bool) -> bytes:
    """OXM headers of ``names`` in OXM code order."""
    return b"".join(struct.pack("!I", oxm_header(f.name, with_masks and f.maskable))
                    for f in FIELDS if f.name in names)


@functools.lru_cache(maxsize=4)
def table_features_items(n_tables: int) -> tuple[bytes, ...]:
    """One encoded ofp_table_features per table."""
    actions = _tlv_headers(TABLE_ACTION_TYPES)
    setfields = _oxm_headers(SETTABLE_FIELDS, False)
    common = b"".join((
        _prop(OFPTFPT_WRITE_ACTIONS, actions), _prop(OFPTFPT_WRITE_ACTIONS_MISS, actions),
        _prop(OFPTFPT_APPLY_ACTIONS, actions), _prop(OFPTFPT_APPLY_ACTIONS_MISS, actions),
        _prop(OFPTFPT_MATCH, _oxm_headers(SUPPORTED_FIELDS, True)),
        _prop(OFPTFPT_WILDCARDS, _oxm_headers(SUPPORTED_FIELDS, False)),
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
