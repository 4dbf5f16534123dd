"""The whole-buffer checksum gives exactly the word-by-word RFC 1071 result."""

from __future__ import annotations

import random
import struct

from ovsbpfd.dpif.packet import finish_checksums, internet_checksum


def word_by_word(data: bytes, initial: int = 0) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_dpif_fast_checksum_equals_word_by_word() -> None:
    rng = random.Random(7)
    cases = [b"", b"\x00", b"\x00\x00\x00\x00", b"\xff\xff", b"\xff\xff\xff\xff",
             b"\xff\xfe\x00\x01", b"\x12", b"\xff"]
    cases += [rng.randbytes(rng.randrange(0, 1600)) for _ in range(2000)]
    cases += [bytes([rng.choice((0, 0xFF))]) * rng.randrange(1, 64) for _ in range(200)]
    for data in cases:
        for initial in (0, 1, 0xFFFF, 0x1FFFE, rng.randrange(0, 1 << 20)):
            assert internet_checksum(data, initial) == word_by_word(data, initial), \
                (data.hex(), initial)


def test_dpif_fast_checksum_of_a_checksummed_buffer_is_zero() -> None:
    rng = random.Random(8)
    for _ in range(500):
        body = rng.randbytes(2 * rng.randrange(2, 700))
        zeroed = body[:2] + b"\x00\x00" + body[4:]
        filled = body[:2] + struct.pack("!H", internet_checksum(zeroed)) + body[4:]
        assert internet_checksum(filled) == 0


def test_dpif_fast_finish_checksums_equals_the_parsing_version() -> None:
    """finish_checksums on IPv4 (inlined checks) against the old parse-based
    code, kept here as the reference, over valid, truncated and odd frames."""
    rng = random.Random(9)
    for _ in range(3000):
        frame = _random_ipv4_frame(rng)
        assert finish_checksums(frame) == reference_finish_ipv4(frame), frame.hex()


def _random_ipv4_frame(rng: random.Random) -> bytes:
    proto = rng.choice((6, 17, 1, 47, 17, 6))
    payload = rng.randbytes(rng.randrange(0, 300))
    l4 = rng.randbytes(rng.choice((4, 8, 20, 20, 8))) + payload
    if proto == 17 and rng.random() < 0.2:
        l4 = l4[:6] + b"\x00\x00" + l4[8:]
    ihl = rng.choice((5, 5, 5, 6, 4, 15))
    options = rng.randbytes(max(0, ihl * 4 - 20))
    total = ihl * 4 + len(l4) + rng.choice((0, 0, 0, 3, -3))
    frag = rng.choice((0, 0, 0x4000, 0x2000, 0x0010, 0x4001))
    header = struct.pack("!BBHHHBBH4s4s", (rng.choice((4, 4, 4, 6)) << 4) | ihl,
                         rng.randrange(256), max(0, total) & 0xFFFF, 0, frag,
                         rng.randrange(256), proto, rng.randrange(1 << 16),
                         rng.randbytes(4), rng.randbytes(4))
    frame = bytes(12) + b"\x08\x00" + header + options + l4
    return frame[:rng.choice((len(frame), len(frame), 30, 20))]


def reference_finish_ipv4(frame: bytes) -> bytes:
    off = 14
    if len(frame) - off < 20:
        return frame
    ihl = (frame[off] & 0x0F) * 4
    if frame[off] >> 4 != 4 or ihl < 20 or len(frame) - off < ihl:
        return frame
    total_len = int.from_bytes(frame[off + 2:off + 4], "big")
    if total_len < ihl or off + total_len > len(frame):
        return frame
    out = bytearray(frame)
    header = frame[off:off + ihl]
    out[off + 10:off + 12] = word_by_word(header[:10] + b"\x00\x00" + header[12:]).to_bytes(
        2, "big")
    frag_field = int.from_bytes(frame[off + 6:off + 8], "big")
    proto = frame[off + 9]
    if frag_field & 0x3FFF or proto not in (6, 17):
        return bytes(out)
    l4, end = off + ihl, off + total_len
    if end - l4 < {6: 20, 17: 8}[proto]:
        return bytes(out)
    csum_at = l4 + {6: 16, 17: 6}[proto]
    if proto == 17 and frame[csum_at:csum_at + 2] == b"\x00\x00":
        return bytes(out)
    segment = frame[l4:end]
    rel = csum_at - l4
    zeroed = segment[:rel] + b"\x00\x00" + segment[rel + 2:]
    pseudo = sum(struct.unpack("!4H", frame[off + 12:off + 20])) + proto + len(segment)
    csum = word_by_word(zeroed, pseudo)
    if proto == 17 and csum == 0:
        csum = 0xFFFF
    out[csum_at:csum_at + 2] = csum.to_bytes(2, "big")
    return bytes(out)
