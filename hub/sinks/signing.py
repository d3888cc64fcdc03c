"""Signing of outbound HTTP bodies (webhooks, partner CSV posts) with rotating secrets.

The header reads ``X-Hub-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]``: one ``v1`` per
active secret, each the HMAC-SHA256 of ``f"{t}.".encode() + body``. During a rotation the hub
signs with the old and the new secret, so a receiver that knows either accepts the request.

Secrets never live in the configuration: a feed names the environment variables that hold
them (``options.secret_envs``).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime

import aiohttp
from yarl import URL

from hub.core.numbers import whole_number
from hub.core.ports import DeliveryOutcome
from hub.hmac_sha256 import Hmac256

SIGNATURE_HEADER = "X-Hub-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"
USER_AGENT = "cie-hub"
_MAX_ANSWER = 64 * 1024


class SigningError(ValueError):
    """The signing secrets are not configured (names the variable, never a value)."""


@functools.lru_cache(maxsize=32)
def _mac(secret: bytes) -> Hmac256:
    """The MAC of one secret, its pads hashed once (a feed signs every body with it)."""
    return Hmac256(secret)


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` under one secret."""
    return _mac(secret).hexdigest(b"%d." % timestamp, body)


def signature_header(body: bytes, secrets: Sequence[bytes], timestamp: int | None = None) -> str:
    """The ``X-Hub-Signature`` value for a body: ``t=…`` and one ``v1=…`` per secret."""
    if not secrets:
        raise SigningError("no signing secret given")
    t = int(time.time()) if timestamp is None else int(timestamp)
    parts = [f"t={t}"] + [f"{SCHEME}={signature(s, t, body)}" for s in secrets]
    return ",".join(parts)


def secrets_from_env(names: object, environ: Mapping[str, str] | None = None) -> list[bytes]:
    """The secrets held by the environment variables a feed names in ``secret_envs``.

    Raises :class:`SigningError` naming the option or the variable (never its value) when
    the list is missing or malformed or when none of the variables is set; variables that
    are unset are skipped so an old secret can be retired by unsetting it.
    """
    env = os.environ if environ is None else environ
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list | tuple) or not names:
        raise SigningError("feed option 'secret_envs' is required: a list of env variable names")
    found: list[bytes] = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise SigningError("feed option 'secret_envs' must list env variable names")
        value = env.get(name, "")
        if value:
            found.append(value.encode("utf-8"))
    if not found:
        raise SigningError(
            "none of the signing secret variables is set: " + ", ".join(str(n) for n in names)
        )
    return found


# ---- signed POSTs --------------------------------------------------------------------------

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
RETRY_STATUSES = frozenset({408, 425, 429})


def check_url(url: object, allow_insecure_http: bool = False) -> str | None:
    """Why a delivery URL is unusable, or None: HTTPS, or plain HTTP to loopback only."""
    if not isinstance(url, str) or not url:
        return "feed option 'url' is required"
    try:
        parsed = URL(url)
    except ValueError:
        return "feed option 'url' is not a valid URL"
    host = parsed.host or ""
    if parsed.scheme == "https" and host:
        return None
    if parsed.scheme == "http" and host:
        if host in _LOOPBACK or host.startswith("127.") or allow_insecure_http:
            return None
        return "feed option 'url' must use https (plain http only to loopback)"
    return "feed option 'url' must be an https:// URL"


MAX_RETRY_AFTER = 86_400.0
"""The longest wait a partner's ``Retry-After`` can ask for (a day)."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), at most
    :data:`MAX_RETRY_AFTER`; None when the header is absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    seconds = whole_number(value)
    if seconds is not None:
        return min(float(seconds), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return min(max(0.0, when.timestamp() - current), MAX_RETRY_AFTER)


DELIVERED = DeliveryOutcome(ok=True)
"""The outcome of every 2xx answer (immutable, so one is shared)."""


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    """The (immutable) request timeout of ``seconds``, made once per value."""
    return aiohttp.ClientTimeout(total=seconds)


def outcome_for_status(status: int, retry_after: str | None = None) -> DeliveryOutcome:
    """The outcome an HTTP answer means: 2xx ok; 408/425/429/5xx retry; anything else dead."""
    if 200 <= status < 300:
        return DELIVERED
    if status in RETRY_STATUSES or status >= 500:
        return DeliveryOutcome(
            ok=False, retry=True, error=f"HTTP {status}", retry_after=parse_retry_after(retry_after)
        )
    return DeliveryOutcome(ok=False, retry=False, error=f"HTTP {status} (not retried)")


async def post_signed(
    session: aiohttp.ClientSession,
    url: str | URL,
    body: bytes,
    *,
    secrets: Sequence[bytes],
    idempotency_key: str,
    content_type: str,
    timeout_seconds: float,
    extra_headers: Mapping[str, str] | None = None,
) -> DeliveryOutcome:
    """POST a signed body and classify the answer; never raises for the partner's failure.

    Errors name the status or the kind of failure only, never a body (it may echo data).
    """
    headers = {
        "Content-Type": content_type,
        SIGNATURE_HEADER: signature_header(body, secrets),
        IDEMPOTENCY_HEADER: idempotency_key,
        "User-Agent": USER_AGENT,
    }
    if extra_headers:
        headers.update(extra_headers)
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=_timeout(timeout_seconds),
        ) as resp:
            await resp.content.read(_MAX_ANSWER)
            return outcome_for_status(resp.status, resp.headers.get("Retry-After"))
    except TimeoutError:
        return DeliveryOutcome(ok=False, retry=True, error=f"timeout after {timeout_seconds:g}s")
    except aiohttp.ClientError as exc:
        return DeliveryOutcome(
            ok=False, retry=True, error=f"connection error: {type(exc).__name__}"
        )
