"""The order in which ovsdb-server visits the members of a JSON object.

ovsdb-server keeps an object's members in a hash map (OVS's shash) and checks
them in its iteration order: which of two bad columns of a row it reports,
which unexpected member it names, which table of a monitor request fails
first.  Clients see that choice, so error paths here re-check in the same
order: OVS's string hash (lib/hash.c, murmur3 without SSE4.2, as Debian
builds it) and its hmap's bucket layout (lib/hmap.c: a node goes to the head
of bucket hash & mask, and the buckets double, re-inserting in bucket order,
whenever the count passes twice the mask).  Only error paths pay for it.
"""

from __future__ import annotations

from functools import lru_cache

_M32 = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _mhash_add(h: int, data: int) -> int:
    if data:
        data = _rot((data * 0xCC9E2D51) & _M32, 15)
        h ^= (data * 0x1B873593) & _M32
    return (_rot(h, 13) * 5 + 0xE6546B64) & _M32


def _mhash_finish(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def hash_string(text: str, basis: int = 0) -> int:
    """OVS's hash_string() of the text's UTF-8 bytes."""
    data = text.encode()
    h = basis
    n = len(data)
    whole = n - n % 4
    for i in range(0, whole, 4):
        h = _mhash_add(h, int.from_bytes(data[i:i + 4], "little"))
    if whole < n:
        h = _mhash_add(h, int.from_bytes(data[whole:], "little"))
    return _mhash_finish(h ^ n)


def _calc_mask(capacity: int) -> int:
    mask = capacity // 2
    for shift in (1, 2, 4, 8, 16, 32):
        mask |= mask >> shift
    return mask | (mask & 1) << 1


@lru_cache(maxsize=1024)
def _order(keys: tuple[str, ...]) -> tuple[str, ...]:
    mask = 0
    buckets: list[list[tuple[str, int]]] = [[]]
    for n, key in enumerate(keys, 1):
        h = hash_string(key)
        buckets[h & mask].insert(0, (key, h))
        if n // 2 > mask and _calc_mask(n) > mask:
            mask = _calc_mask(n)
            grown: list[list[tuple[str, int]]] = [[] for _ in range(mask + 1)]
            for bucket in buckets:
                for node in bucket:
                    grown[node[1] & mask].insert(0, node)
            buckets = grown
    return tuple(key for bucket in buckets for key, _h in bucket)


def ovs_order(keys: list[str] | tuple[str, ...]) -> list[str]:
    """keys (an object's members, in the order they were written) in the
    order ovsdb-server's shash of them iterates."""
    return list(_order(tuple(keys)))
