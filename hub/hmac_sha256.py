"""HMAC-SHA256 under a key whose pads are hashed once (RFC 2104).

``hmac.new(key, msg, "sha256")`` hashes the key's inner and outer pads again for every
message. A :class:`Hmac256` hashes them when it is made and copies the two hash states per
message: the same digest at about half the cost, which counts where a key signs or blinds
thousands of values a second (webhook signatures, the blind index).
"""

from __future__ import annotations

import hashlib
from typing import Any

_BLOCK = hashlib.sha256().block_size


class Hmac256:
    """HMAC-SHA256 under one key (never shown: ``repr`` names no key)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner: Any = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer: Any = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __repr__(self) -> str:
        return "<Hmac256>"

    def __reduce__(self) -> Any:
        # Hash states cannot be pickled; a MAC that could be would carry its key.
        raise TypeError("an Hmac256 cannot be pickled")

    def digest(self, data: bytes, *more: bytes) -> bytes:
        """The MAC of ``data`` followed by ``more``."""
        inner = self._inner.copy()
        inner.update(data)
        for part in more:
            inner.update(part)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return bytes(outer.digest())

    def hexdigest(self, data: bytes, *more: bytes) -> str:
        """:meth:`digest` as lowercase hex."""
        return self.digest(data, *more).hex()
