"""The ``webhook`` sink: one signed JSON POST per permitted record.

Body: ``{"idempotency_key", "feed", "recipient", "kind", "record": <released payload>}``.
Headers: ``X-Hub-Signature: t=<unix ts>,v1=<hex>[,v1=…]`` (one ``v1`` per active secret,
HMAC-SHA256 over ``f"{t}.".encode() + body``) and ``Idempotency-Key``. 2xx is delivered;
408, 425, 429 and 5xx, timeouts and connection errors are retried (``Retry-After``
honoured); any other status is dead-lettered at once.

Feed options: ``url`` (https, or http to loopback), ``secret_envs`` (names of environment
variables holding the secrets), ``timeout_seconds`` (per request, default 10),
``max_in_flight`` (parallel requests per batch, default 16), ``allow_insecure_http``.

:func:`verify_signature` is what a receiver runs; it uses the standard library only, so a
partner can copy it as it is (see ``docs/webhooks.md``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from hub.core.ports import Delivery, DeliveryOutcome
from hub.sinks.signing import SigningError, check_url, post_signed, secrets_from_env

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_IN_FLIGHT = 16


def verify_signature(
    header: str,
    body: bytes,
    secrets: Iterable[bytes | str],
    tolerance: int = 300,
    now: float | None = None,
) -> bool:
    """Whether an ``X-Hub-Signature`` header is valid for ``body`` under any known secret.

    ``header`` is ``t=<unix seconds>,v1=<hex>[,v1=<hex>…]``. The request is accepted when
    ``t`` is within ``tolerance`` seconds of ``now`` (a replay of an old request fails) and
    one ``v1`` equals HMAC-SHA256(secret, ``f"{t}.".encode() + body``) for one of
    ``secrets`` (during a rotation, list the old and the new secret). Constant-time compare.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if not value.isascii():
            continue  # int() and compare_digest() would raise on other characters
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    signed = f"{timestamp}.".encode() + body
    for secret in secrets:
        key_bytes = secret.encode("utf-8") if isinstance(secret, str) else secret
        expected = hmac.new(key_bytes, signed, hashlib.sha256).hexdigest()
        for got in candidates:
            if hmac.compare_digest(expected, got):
                return True
    return False


def webhook_body(delivery: Delivery) -> bytes:
    """The JSON body of one delivery (from its payload: the record is not needed)."""
    return orjson.dumps(
        {
            "idempotency_key": delivery.idempotency_key,
            "feed": delivery.feed,
            "recipient": delivery.recipient,
            "kind": delivery.kind,
            "record": delivery.payload,
        }
    )


@dataclass(frozen=True, slots=True)
class _Target:
    """A feed's endpoint, secrets and timeout, resolved once per batch."""

    url: URL
    secrets: list[bytes]
    timeout: float


def _number(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return default
    return float(value)


class WebhookSink:
    """Posts each delivery as signed JSON; one aiohttp session shared by every feed."""

    name = "webhook"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=256, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """Post a batch concurrently (``max_in_flight`` at a time); one outcome each, in order."""
        if not deliveries:
            return []
        width = max(1, int(_number(deliveries[0].options, "max_in_flight", DEFAULT_MAX_IN_FLIGHT)))
        targets: dict[int, _Target | DeliveryOutcome] = {}
        outcomes: list[DeliveryOutcome | None] = [None] * len(deliveries)
        queue = iter(enumerate(deliveries))
        session = self._client()

        async def sender() -> None:
            # A few senders take the deliveries in turn: no task or semaphore per request.
            for i, d in queue:
                target = targets.get(id(d.options))
                if target is None:
                    target = targets[id(d.options)] = self._target(d.options)
                if isinstance(target, DeliveryOutcome):
                    outcomes[i] = target
                    continue
                outcomes[i] = await post_signed(
                    session,
                    target.url,
                    webhook_body(d),
                    secrets=target.secrets,
                    idempotency_key=d.idempotency_key,
                    content_type="application/json",
                    timeout_seconds=target.timeout,
                )

        senders = [asyncio.ensure_future(sender()) for _ in range(min(width, len(deliveries)))]
        try:
            await asyncio.gather(*senders)
        finally:
            for task in senders:
                task.cancel()
        done = [o for o in outcomes if o is not None]
        if len(done) != len(deliveries):
            # Every sender runs until the deliveries are used up, so this is a bug: fail the
            # batch (it is retried) rather than settle entries against the wrong outcomes.
            raise RuntimeError("the webhook sink lost the outcome of a delivery")
        return done

    def _target(self, options: Mapping[str, Any]) -> _Target | DeliveryOutcome:
        """Where and how a feed's deliveries go, or the dead outcome of a bad setting."""
        problem = check_url(options.get("url"), bool(options.get("allow_insecure_http")))
        if problem is not None:
            return DeliveryOutcome(ok=False, retry=False, error=problem)
        try:
            secrets = secrets_from_env(options.get("secret_envs"), self._environ)
        except SigningError as exc:
            return DeliveryOutcome(ok=False, retry=False, error=str(exc))
        return _Target(
            URL(str(options["url"])),
            secrets,
            _number(options, "timeout_seconds", DEFAULT_TIMEOUT_SECONDS),
        )

    async def close(self) -> None:
        """Close the shared session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
