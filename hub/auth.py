"""Partner API keys: created once, stored only as a slow hash, looked up by an id prefix.

A key reads ``hub_<key id>_<secret>``. The key id finds the stored row; the secret is checked
against its scrypt hash. Verified keys are cached briefly (by a fast hash of the whole key)
so that a busy partner does not pay scrypt on every request; revocation clears the cache.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

ROLES = ("partner", "admin")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}

FULL_SCOPE = "system/*.read system/*.write"
"""What a SMART access token is granted when its request names no scope."""
_SCOPE = re.compile(r"system/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*)")


class ScopeError(ValueError):
    """A requested scope this hub does not grant (the message names it)."""


def parse_scopes(text: str) -> frozenset[str]:
    """The SMART v1 system scopes of a space-separated request (``FULL_SCOPE`` when empty).

    Each must read ``system/<Type or *>.<read, write or *>``; anything else raises
    :class:`ScopeError` naming it, so a client never believes it holds what it does not.
    """
    items = text.split() or FULL_SCOPE.split()
    for item in items:
        if not _SCOPE.fullmatch(item):
            raise ScopeError(
                f"scope {item[:80]!r} is not supported (system/<Type|*>.<read|write|*>)"
            )
    return frozenset(items)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the agency it acts as, its role and the key id used; for a SMART access
    token, the scopes it was granted (None: not limited by scopes, as API keys are not)."""

    agency: str
    role: str
    key_id: str
    scopes: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the caller may use admin endpoints."""
        return self.role == "admin"

    def allows(self, resource_type: str, write: bool) -> bool:
        """Whether the caller's scopes cover reading (or writing) resources of a FHIR type."""
        if self.scopes is None:
            return True
        wanted = "write" if write else "read"
        return any(
            f"system/{kind}.{access}" in self.scopes
            for kind in (resource_type, "*")
            for access in (wanted, "*")
        )


def new_key() -> tuple[str, str, bytes, bytes]:
    """A new key: (full key to show once, key id, salt, scrypt hash of the secret)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)
    return f"hub_{key_id}_{secret}", key_id, salt, digest


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "hub" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class KeyVerifier:
    """Checks bearer keys against the store.

    The key row is read on every call (an indexed look-up), so a revocation takes effect at
    once; only the scrypt check is cached, keyed by a fast hash of the whole key together
    with the stored digest it was checked against.
    """

    def __init__(self, store: Any, ttl_seconds: float = 300.0, max_entries: int = 10_000) -> None:
        self.store = store
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._checked: dict[tuple[str, bytes], float] = {}

    async def verify(self, key: str) -> Caller | None:
        """The caller a key belongs to, or None (malformed, unknown, revoked or wrong)."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        row = await self.store.find_partner_key(key_id)
        if row is None:
            return None
        agency, role, salt, digest = row
        memo = (hashlib.sha256(key.encode()).hexdigest(), digest)
        now = time.monotonic()
        if self._checked.get(memo, 0.0) <= now:
            got = hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)
            if not hmac.compare_digest(got, digest):
                return None
            if len(self._checked) >= self.max_entries:
                self._checked.clear()
            self._checked[memo] = now + self.ttl
        return Caller(agency, role, key_id)
