"""Partner API keys: created once, stored only as a slow hash, looked up by an id prefix.

A key reads ``hub_<key id>_<secret>``. The key id finds the stored row; the secret is checked
against its scrypt hash. Verified keys are cached briefly (by a fast hash of the whole key)
so that a busy partner does not pay scrypt on every request; revocation clears the cache.
scrypt runs in a worker thread (it must not stall the event loop), one check serves every
concurrent request with the same key, and the checks of one key id are limited
(:data:`CHECKS_PER_MINUTE`): past the limit that key id is refused without running scrypt
until its bucket refills, so guessing secrets costs the hub little.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

ROLES = ("partner", "admin")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
CHECKS_PER_MINUTE = 10
"""scrypt checks of one key id per minute (bursts up to the same number). A verified key is
cached, so a partner uses one now and then; only guesses at its secret use them up."""

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


class RateLimiter:
    """A token bucket per caller: ``per_minute`` requests, bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, who: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(who, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[who] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[who] = (tokens - 1.0, now)
        return 0.0


class KeyThrottled(Exception):
    """Too many checks of one key id: refused without checking (retry later)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"key checks paused for {retry_after:.0f} s")
        self.retry_after = retry_after


class KeyVerifier:
    """Checks bearer keys against the store.

    The key row is read on every call (an indexed look-up), so a revocation takes effect at
    once; only the scrypt check is cached, keyed by a fast hash of the whole key together
    with the stored digest it was checked against. scrypt checks are counted per key id
    (``checks_per_minute``); past that, :meth:`verify` raises :class:`KeyThrottled` for any
    key of that id not already verified, without running scrypt.
    """

    def __init__(
        self,
        store: Any,
        ttl_seconds: float = 300.0,
        max_entries: int = 10_000,
        checks_per_minute: int = CHECKS_PER_MINUTE,
    ) -> None:
        self.store = store
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._checked: dict[tuple[str, bytes], float] = {}
        self._checks = RateLimiter(checks_per_minute)
        self._running: dict[tuple[str, bytes], asyncio.Future[bool]] = {}

    async def verify(self, key: str) -> Caller | None:
        """The caller a key belongs to, or None (malformed, unknown, revoked or wrong).

        Raises :class:`KeyThrottled` when its key id was checked too often lately.
        """
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
            running = self._running.get(memo)
            if running is None:
                wait = self._checks.take(key_id, now)
                if wait > 0:
                    raise KeyThrottled(wait)
                running = asyncio.ensure_future(_secret_matches(secret, salt, digest))
                self._running[memo] = running
                running.add_done_callback(lambda _done: self._running.pop(memo, None))
            if not await asyncio.shield(running):
                return None
            now = time.monotonic()
            if len(self._checked) >= self.max_entries:
                self._checked.clear()
            self._checked[memo] = now + self.ttl
        return Caller(agency, role, key_id)


async def _secret_matches(secret: str, salt: bytes, digest: bytes) -> bool:
    """Whether the secret's scrypt hash is the stored one (computed in a worker thread)."""
    got = await asyncio.to_thread(hashlib.scrypt, secret.encode(), salt=salt, **_SCRYPT)
    return hmac.compare_digest(got, digest)
