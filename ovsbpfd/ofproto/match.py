"""OpenFlow 1.3 matches: the OXM field table and the ``Match`` value type.

Shared by the wire codec (which turns OXM TLVs into ``Match``) and the
classifier/xlate (which test packets against it).  Values are integers of the
field's width (MAC addresses as 48-bit ints, IPv6 as 128-bit ints); a mask of
``None`` means exact match.  Field names are the OXM names ovs-ofctl prints
(``eth_src``, ``ipv4_dst``, ``tcp_dst`` ...).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

OFPXMC_OPENFLOW_BASIC = 0x8000
OFPVID_PRESENT = 0x1000


@dataclass(frozen=True)
class OxmField:
    name: str
    code: int  # oxm_field number within OFPXMC_OPENFLOW_BASIC
    nbytes: int
    maskable: bool
    # ((field, allowed values), ...): all must hold (eth_type in {..} etc.)
    prereqs: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Derived once here: matches and lookups read them for every field they touch.
    nbits: int = field(init=False, compare=False)
    full_mask: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        nbits = 13 if self.name == "vlan_vid" else self.nbytes * 8
        object.__setattr__(self, "nbits", nbits)
        object.__setattr__(self, "full_mask", (1 << nbits) - 1)


_IP = ("eth_type", (0x0800, 0x86DD))
_IPV4 = ("eth_type", (0x0800,))
_IPV6 = ("eth_type", (0x86DD,))
_ARP = ("eth_type", (0x0806,))

FIELDS: tuple[OxmField, ...] = (
    OxmField("in_port", 0, 4, False),
    OxmField("in_phy_port", 1, 4, False, (("in_port", ()),)),
    OxmField("metadata", 2, 8, True),
    OxmField("eth_dst", 3, 6, True),
    OxmField("eth_src", 4, 6, True),
    OxmField("eth_type", 5, 2, False),
    OxmField("vlan_vid", 6, 2, True),
    OxmField("vlan_pcp", 7, 1, False, (("vlan_vid", ()),)),
    OxmField("ip_dscp", 8, 1, False, (_IP,)),
    OxmField("ip_ecn", 9, 1, False, (_IP,)),
    OxmField("ip_proto", 10, 1, False, (_IP,)),
    OxmField("ipv4_src", 11, 4, True, (_IPV4,)),
    OxmField("ipv4_dst", 12, 4, True, (_IPV4,)),
    OxmField("tcp_src", 13, 2, False, (_IP, ("ip_proto", (6,)))),
    OxmField("tcp_dst", 14, 2, False, (_IP, ("ip_proto", (6,)))),
    OxmField("udp_src", 15, 2, False, (_IP, ("ip_proto", (17,)))),
    OxmField("udp_dst", 16, 2, False, (_IP, ("ip_proto", (17,)))),
    OxmField("sctp_src", 17, 2, False, (_IP, ("ip_proto", (132,)))),
    OxmField("sctp_dst", 18, 2, False, (_IP, ("ip_proto", (132,)))),
    OxmField("icmpv4_type", 19, 1, False, (_IPV4, ("ip_proto", (1,)))),
    OxmField("icmpv4_code", 20, 1, False, (_IPV4, ("ip_proto", (1,)))),
    OxmField("arp_op", 21, 2, False, (_ARP,)),
    OxmField("arp_spa", 22, 4, True, (_ARP,)),
    OxmField("arp_tpa", 23, 4, True, (_ARP,)),
    OxmField("arp_sha", 24, 6, True, (_ARP,)),
    OxmField("arp_tha", 25, 6, True, (_ARP,)),
    OxmField("ipv6_src", 26, 16, True, (_IPV6,)),
    OxmField("ipv6_dst", 27, 16, True, (_IPV6,)),
    OxmField("ipv6_flabel", 28, 4, True, (_IPV6,)),
    OxmField("icmpv6_type", 29, 1, False, (_IPV6, ("ip_proto", (58,)))),
    OxmField("icmpv6_code", 30, 1, False, (_IPV6, ("ip_proto", (58,)))),
    OxmField("ipv6_nd_target", 31, 16, False, (_IPV6, ("icmpv6_type", (135, 136)))),
    OxmField("ipv6_nd_sll", 32, 6, False, (_IPV6, ("icmpv6_type", (135,)))),
    OxmField("ipv6_nd_tll", 33, 6, False, (_IPV6, ("icmpv6_type", (136,)))),
    OxmField("mpls_label", 34, 4, False, (("eth_type", (0x8847, 0x8848)),)),
    OxmField("mpls_tc", 35, 1, False, (("eth_type", (0x8847, 0x8848)),)),
    OxmField("mpls_bos", 36, 1, False, (("eth_type", (0x8847, 0x8848)),)),
    OxmField("pbb_isid", 37, 3, True, (("eth_type", (0x88E7,)),)),
    OxmField("tunnel_id", 38, 8, True),
    OxmField("ipv6_exthdr", 39, 2, True, (_IPV6,)),
)
FIELDS_BY_NAME: dict[str, OxmField] = {f.name: f for f in FIELDS}
FIELDS_BY_CODE: dict[int, OxmField] = {f.code: f for f in FIELDS}
_FIELD_ORDER: dict[str, int] = {f.name: f.code for f in FIELDS}


class Match(Mapping[str, tuple[int, int | None]]):
    """An immutable set of ``field -> (value, mask or None)`` constraints.

    Values are stored pre-masked so that two equal matches compare equal.
    An empty match matches every packet.
    """

    __slots__ = ("_fields", "_hash", "_signature", "_values", "_prereqs_met")

    def __init__(self, fields: Mapping[str, tuple[int, int | None]] | None = None,
                 **kw: int | tuple[int, int | None]) -> None:
        items: dict[str, tuple[int, int | None]] = {}
        for name, spec in list((fields or {}).items()) + list(kw.items()):
            value, mask = spec if isinstance(spec, tuple) else (spec, None)
            full = FIELDS_BY_NAME[name].full_mask
            if mask is not None:
                mask &= full
                if mask == full:
                    mask = None
                else:
                    value &= mask
            items[name] = (value & full, mask)
        self._fields = dict(sorted(items.items(), key=lambda kv: _FIELD_ORDER[kv[0]]))
        self._hash: int | None = None
        self._signature: tuple[tuple[str, int], ...] | None = None
        self._values: tuple[int, ...] | None = None
        self._prereqs_met = False

    @classmethod
    def from_canonical(cls, fields: dict[str, tuple[int, int | None]],
                       prereqs_met: bool = False,
                       signature: tuple[tuple[str, int], ...] | None = None,
                       values: tuple[int, ...] | None = None) -> Match:
        """A Match of ``fields`` already in the form ``__init__`` gives them:
        in field-code order, values within the field and pre-masked, masks
        neither full (None instead) nor wider than the field.  For decoders
        that checked all of that while reading (FLOW_MOD floods), so the
        normalising is skipped; ``prereqs_met`` says they checked those too.
        The dict is kept, not copied; ``signature`` and ``values``, if given,
        must be what ``signature()`` and ``masked_values()`` would compute."""
        match = object.__new__(cls)
        match._fields = fields
        match._hash = None
        match._signature = signature
        match._values = values
        match._prereqs_met = prereqs_met
        return match

    def __getitem__(self, name: str) -> tuple[int, int | None]:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    # Mapping's generic get/__contains__ go through __getitem__ and KeyError;
    # validation and the classifier call these for every FLOW_MOD.
    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def get(self, name: str, default: object = None):  # type: ignore[override]
        return self._fields.get(name, default)

    def items(self):  # type: ignore[override]
        return self._fields.items()

    def signature(self) -> tuple[tuple[str, int], ...]:
        """``((field, effective mask), ...)``: which classifier subtable holds it."""
        sig = self._signature
        if sig is None:
            sig = self._signature = tuple(
                (name, FIELDS_BY_NAME[name].full_mask if mask is None else mask)
                for name, (_value, mask) in self._fields.items())
        return sig

    def masked_values(self) -> tuple[int, ...]:
        """The (pre-masked) values in field order: the key within its subtable."""
        vals = self._values
        if vals is None:
            vals = self._values = tuple(value for value, _mask in self._fields.values())
        return vals

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._fields.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Match) and self._fields == other._fields

    def __repr__(self) -> str:
        return f"Match({self._fields!r})"

    def mask_of(self, name: str) -> int:
        """The effective mask of ``name`` (0 when not matched)."""
        spec = self._fields.get(name)
        if spec is None:
            return 0
        mask = spec[1]
        return FIELDS_BY_NAME[name].full_mask if mask is None else mask

    def missing_prereqs(self) -> list[str]:
        """Field names whose OpenFlow prerequisites this match does not meet."""
        if self._prereqs_met:
            return []
        bad = []
        for name in self._fields:
            for pre_name, allowed in FIELDS_BY_NAME[name].prereqs:
                pre = self._fields.get(pre_name)
                if pre is None or (allowed and (pre[1] is not None
                                                or pre[0] not in allowed)):
                    bad.append(name)
                    break
        self._prereqs_met = not bad
        return bad
