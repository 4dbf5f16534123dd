"""Which buckets of a group a packet takes: liveness and SELECT hashing.

SELECT hashes the packet's L2-L4 addresses symmetrically (both directions
of a connection take the same bucket, as OVS's default selection method
does) and picks among live buckets by weighted rendezvous hashing: each
bucket scores ``weight / -ln(u)`` for a uniform ``u`` drawn from the hash
and the bucket's position, and the best score wins.  Buckets are chosen in
proportion to their weights, and a bucket going down moves only the flows
that were on it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

from ovsbpfd.dpif.types import (
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    FlowKey,
)
from ovsbpfd.ofproto.actions import OFPG_ANY, OFPP_ANY
from ovsbpfd.ofproto.flow_fields import IPPROTO_SCTP, KeyMask
from ovsbpfd.ofproto.groups import Group
from ovsbpfd.ofproto.types import Bucket

MAX_LIVENESS_DEPTH = 32
_L4_PROTOS = (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP)


def hash_fields(key: FlowKey) -> tuple[bytes, KeyMask]:
    """The bytes a SELECT group hashes, and the FlowKey bits they come from."""
    consulted: KeyMask = {"eth_src": (1 << 48) - 1, "eth_dst": (1 << 48) - 1,
                          "eth_type": 0xFFFF, "vlan_tci": 0x1FFF}
    macs = sorted((key.eth_src, key.eth_dst))
    parts = [macs[0], macs[1], key.eth_type.to_bytes(2, "big"),
             (key.vlan_tci & 0x1FFF).to_bytes(2, "big")]
    if key.eth_type in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        consulted.update(ip_src=(1 << 128) - 1, ip_dst=(1 << 128) - 1, nw_proto=0xFF)
        addrs = sorted((key.ip_src, key.ip_dst))
        parts += [addrs[0], addrs[1], bytes([key.nw_proto])]
        if key.nw_proto in _L4_PROTOS:
            consulted.update(tp_src=0xFFFF, tp_dst=0xFFFF)
            ports = sorted((key.tp_src, key.tp_dst))
            parts += [ports[0].to_bytes(2, "big"), ports[1].to_bytes(2, "big")]
    return b"".join(parts), consulted


def pick_weighted(flow_hash: bytes, weights: list[tuple[int, int]]) -> int | None:
    """Rendezvous choice among ``(bucket index, weight)``; None if empty.

    Weight 0 buckets are used only when every candidate has weight 0."""
    if not weights:
        return None
    if not any(w for _i, w in weights):
        weights = [(i, 1) for i, _w in weights]
    best, best_score = None, -1.0
    for index, weight in weights:
        if weight <= 0:
            continue
        digest = hashlib.blake2b(flow_hash + index.to_bytes(4, "big"), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 1) / (2**64 + 2)  # in (0, 1)
        score = weight / -math.log(u)
        if score > best_score:
            best, best_score = index, score
    return best


class Liveness:
    """Answers "is this bucket live?" from port state and other groups."""

    def __init__(self, port_live: Callable[[int], bool],
                 group: Callable[[int], Group | None]) -> None:
        self.port_live = port_live
        self.group = group

    def bucket_live(self, bucket: Bucket, depth: int = 0) -> bool:
        if bucket.watch_port != OFPP_ANY and not self.port_live(bucket.watch_port):
            return False
        if bucket.watch_group != OFPG_ANY:
            return self.group_live(bucket.watch_group, depth + 1)
        return True

    def group_live(self, group_id: int, depth: int = 0) -> bool:
        """A group is live if one of its buckets is (a watch loop is not)."""
        group = self.group(group_id)
        if group is None or depth > MAX_LIVENESS_DEPTH:
            return False
        return any(self.bucket_live(b, depth) for b in group.buckets)

    def first_live(self, group: Group) -> int | None:
        return next((i for i, b in enumerate(group.buckets) if self.bucket_live(b)), None)

    def select(self, group: Group, flow_hash: bytes) -> int | None:
        live = [(i, b.weight) for i, b in enumerate(group.buckets) if self.bucket_live(b)]
        return pick_weighted(flow_hash, live)
