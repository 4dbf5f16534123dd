"""OpenFlow 1.3 actions and instructions as value types.

The wire codec produces and consumes these; xlate interprets them.  Keeping
them plain frozen dataclasses lets rules be compared and printed without the
codec.
"""

from __future__ import annotations

from dataclasses import dataclass

# Reserved port numbers (OF 1.3 ofp_port_no).
OFPP_MAX = 0xFFFFFF00
OFPP_IN_PORT = 0xFFFFFFF8
OFPP_TABLE = 0xFFFFFFF9
OFPP_NORMAL = 0xFFFFFFFA
OFPP_FLOOD = 0xFFFFFFFB
OFPP_ALL = 0xFFFFFFFC
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_LOCAL = 0xFFFFFFFE
OFPP_ANY = 0xFFFFFFFF

OFPG_ANY = 0xFFFFFFFF
OFPG_ALL = 0xFFFFFFFC
OFPCML_NO_BUFFER = 0xFFFF

PORT_NAMES = {
    OFPP_IN_PORT: "IN_PORT",
    OFPP_TABLE: "TABLE",
    OFPP_NORMAL: "NORMAL",
    OFPP_FLOOD: "FLOOD",
    OFPP_ALL: "ALL",
    OFPP_CONTROLLER: "CONTROLLER",
    OFPP_LOCAL: "LOCAL",
    OFPP_ANY: "ANY",
}


# ---------------------------------------------------------------- actions
@dataclass(frozen=True)
class ActOutput:
    port: int
    max_len: int = OFPCML_NO_BUFFER


@dataclass(frozen=True)
class ActGroup:
    group_id: int


@dataclass(frozen=True)
class ActSetQueue:
    queue_id: int


@dataclass(frozen=True)
class ActSetField:
    field: str  # OXM name, see ofproto.match.FIELDS
    value: int


@dataclass(frozen=True)
class ActPushVlan:
    ethertype: int = 0x8100


@dataclass(frozen=True)
class ActPopVlan:
    pass


@dataclass(frozen=True)
class ActSetNwTtl:
    ttl: int


@dataclass(frozen=True)
class ActDecNwTtl:
    pass


@dataclass(frozen=True)
class ActCopyTtlOut:
    pass


@dataclass(frozen=True)
class ActCopyTtlIn:
    pass


@dataclass(frozen=True)
class ActPushMpls:
    ethertype: int


@dataclass(frozen=True)
class ActPopMpls:
    ethertype: int


@dataclass(frozen=True)
class ActSetMplsTtl:
    ttl: int


@dataclass(frozen=True)
class ActDecMplsTtl:
    pass


@dataclass(frozen=True)
class ActPushPbb:
    ethertype: int


@dataclass(frozen=True)
class ActPopPbb:
    pass


Action = (
    ActOutput | ActGroup | ActSetQueue | ActSetField | ActPushVlan | ActPopVlan
    | ActSetNwTtl | ActDecNwTtl | ActCopyTtlOut | ActCopyTtlIn | ActPushMpls
    | ActPopMpls | ActSetMplsTtl | ActDecMplsTtl | ActPushPbb | ActPopPbb
)


# ---------------------------------------------------------------- instructions
@dataclass(frozen=True)
class InstGotoTable:
    table_id: int


@dataclass(frozen=True)
class InstWriteMetadata:
    metadata: int
    mask: int


@dataclass(frozen=True)
class InstWriteActions:
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class InstApplyActions:
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class InstClearActions:
    pass


@dataclass(frozen=True)
class InstMeter:
    meter_id: int


Instruction = (
    InstGotoTable | InstWriteMetadata | InstWriteActions | InstApplyActions
    | InstClearActions | InstMeter
)

#: the order OpenFlow 1.3 executes a rule's instructions in (and OVS prints them in)
INSTRUCTION_ORDER: dict[type, int] = {InstMeter: 0, InstApplyActions: 1, InstClearActions: 2,
                                      InstWriteActions: 3, InstWriteMetadata: 4,
                                      InstGotoTable: 5}
