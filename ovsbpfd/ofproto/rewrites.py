"""Header rewrites (set_field, TTL) during one translation.

OpenFlow actions change the packet as the pipeline sees it at once; the
datapath packet changes only when a ``SetMasked`` action is emitted.  Like
OVS's ``commit_odp_actions`` this keeps both views: ``pending`` (what the
pipeline sees) and ``committed`` (what the datapath packet already has) as
``field -> (value bits, mask bits)`` over FlowKey fields, and ``commit``
emits the difference before each output.  Where a group bucket's clone left
bits changed that the next bucket does not want, the packet's original bits
are put back, and those original bits become part of the megaflow mask.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovsbpfd.dpif.types import FlowKey, SetMasked

# FlowKey fields the datapath can rewrite, with their width in bytes.
_INT_FIELDS = {"nw_tos": 1, "nw_ttl": 1, "tp_src": 2, "tp_dst": 2}
_BYTES_FIELDS = {"eth_src": 6, "eth_dst": 6, "ip_src": 16, "ip_dst": 16,
                 "arp_sha": 6, "arp_tha": 6}
_IPV4_SHIFT = 96  # an IPv4 address sits in the first 4 of the key's 16 bytes


@dataclass(frozen=True)
class SetTarget:
    """Where an OXM field lives in the FlowKey: field, bit shift, bit width."""

    key_field: str
    shift: int
    nbits: int

    @property
    def mask(self) -> int:
        return ((1 << self.nbits) - 1) << self.shift


#: OXM fields a set_field may change through SetMasked (VLAN fields are
#: push/pop work, handled by xlate itself).
SET_TARGETS: dict[str, SetTarget] = {
    "eth_src": SetTarget("eth_src", 0, 48),
    "eth_dst": SetTarget("eth_dst", 0, 48),
    "ipv4_src": SetTarget("ip_src", _IPV4_SHIFT, 32),
    "ipv4_dst": SetTarget("ip_dst", _IPV4_SHIFT, 32),
    "ipv6_src": SetTarget("ip_src", 0, 128),
    "ipv6_dst": SetTarget("ip_dst", 0, 128),
    "ip_dscp": SetTarget("nw_tos", 2, 6),
    "ip_ecn": SetTarget("nw_tos", 0, 2),
    "tcp_src": SetTarget("tp_src", 0, 16),
    "tcp_dst": SetTarget("tp_dst", 0, 16),
    "udp_src": SetTarget("tp_src", 0, 16),
    "udp_dst": SetTarget("tp_dst", 0, 16),
    "arp_spa": SetTarget("ip_src", _IPV4_SHIFT, 32),
    "arp_tpa": SetTarget("ip_dst", _IPV4_SHIFT, 32),
    "arp_sha": SetTarget("arp_sha", 0, 48),
    "arp_tha": SetTarget("arp_tha", 0, 48),
}
TTL_TARGET = SetTarget("nw_ttl", 0, 8)

Bits = tuple[int, int]  # (value, mask)


def key_bits(key: FlowKey, field: str) -> int:
    raw = getattr(key, field)
    return int.from_bytes(raw, "big") if isinstance(raw, bytes) else raw


def _to_key_value(field: str, bits: int) -> int | bytes:
    width = _BYTES_FIELDS.get(field)
    return bits if width is None else bits.to_bytes(width, "big")


def _overlay(orig: int, bits: Bits) -> int:
    value, mask = bits
    return (orig & ~mask) | (value & mask)


class Rewrites:
    def __init__(self) -> None:
        self.pending: dict[str, Bits] = {}
        self.committed: dict[str, Bits] = {}

    def write(self, target: SetTarget, value: int) -> None:
        """Set the target's bits to ``value`` (pipeline view only)."""
        mask = target.mask
        old_value, old_mask = self.pending.get(target.key_field, (0, 0))
        new_value = (old_value & ~mask) | ((value << target.shift) & mask)
        self.pending[target.key_field] = (new_value, old_mask | mask)

    def read(self, key: FlowKey, target: SetTarget) -> int:
        """The target's current value in the pipeline view."""
        bits = key_bits(key, target.key_field)
        if target.key_field in self.pending:
            bits = _overlay(bits, self.pending[target.key_field])
        return (bits & target.mask) >> target.shift

    def view(self, key: FlowKey) -> FlowKey:
        """``key`` as the pipeline sees it now."""
        if not self.pending:
            return key
        changes = {name: _to_key_value(name, _overlay(key_bits(key, name), bits))
                   for name, bits in self.pending.items()}
        return key.replace(**changes)

    def save(self) -> dict[str, Bits]:
        return dict(self.pending)

    def restore(self, saved: dict[str, Bits]) -> None:
        self.pending = dict(saved)

    def commit(self, key: FlowKey, consulted: dict[str, int]) -> list[SetMasked]:
        """SetMasked actions that bring the datapath packet to the pipeline view.

        Bits to put back to the packet's original value are added to
        ``consulted`` (the megaflow depends on them)."""
        out: list[SetMasked] = []
        if not self.pending and not self.committed:
            return out  # nothing rewritten (most translations)
        for name in sorted(set(self.pending) | set(self.committed)):
            want = self.pending.get(name, (0, 0))
            have = self.committed.get(name, (0, 0))
            if want == have:
                continue
            back = have[1] & ~want[1]
            value = want[0] & want[1]
            if back:
                value |= key_bits(key, name) & back
                consulted[name] = consulted.get(name, 0) | back
            mask = want[1] | back
            out.append(SetMasked(name, _to_key_value(name, value), _to_key_value(name, mask)))
        self.committed = dict(self.pending)
        return out
