"""TypeIDs (`prefix_` + 26 Crockford base32 chars of a UUIDv7): ascending id = creation order."""

from __future__ import annotations

import random

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


class TypeIds:
    """Makes TypeIDs that sort by creation time, and by creation order within a millisecond."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._last_ms = -1
        self._seq = 0

    def new(self, prefix: str, at_ms: int) -> str:
        if at_ms == self._last_ms:
            self._seq += 1
        else:
            self._last_ms, self._seq = at_ms, self.rng.getrandbits(8)
        # 48-bit ms | version 7 | 12-bit sequence | variant | 62 random bits
        value = (at_ms << 80) | (0x7 << 76) | ((self._seq & 0xFFF) << 64) | (0b10 << 62) | (
            self.rng.getrandbits(62))
        chars = []
        for _ in range(26):
            chars.append(_ALPHABET[value & 31])
            value >>= 5
        return f"{prefix}_{''.join(reversed(chars))}"
