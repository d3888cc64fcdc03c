"""The ``ndjson-https`` sink: permitted records POSTed as signed NDJSON batches.

Feed options: ``url`` (https, or http to a loopback address), ``secret_envs`` (names of the
environment variables holding the signing secrets), ``timeout_seconds``. Each POST carries
at most ``max_lines`` lines; its body is signed like the hub's webhooks (``X-Hub-Signature``)
and its ``Idempotency-Key`` header is the delivery's key (or, for several lines, a hash of
theirs); every line also holds its own key, so a receiver de-duplicates line by line.

Outcomes: 2xx delivered; 408, 425, 429, 5xx, timeouts and connection errors retried
(``Retry-After`` honoured); any other status, a bad URL or a missing secret dead-lettered at
once, naming the option. Errors never carry the answer's body (it may echo data).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from cie_hub_ndjson_https.codec import NdjsonCodec
from hub.plugin_api import (
    Delivery,
    DeliveryOutcome,
    SigningError,
    check_url,
    post_signed,
    secrets_from_env,
)

CONTENT_TYPE = "application/x-ndjson"
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_LINES = 500


def batch_key(deliveries: Sequence[Delivery]) -> str:
    """The Idempotency-Key of a POST: the delivery's own key, or a hash of several."""
    if len(deliveries) == 1:
        return deliveries[0].idempotency_key
    joined = "\n".join(sorted(d.idempotency_key for d in deliveries))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def _seconds(value: Any, default: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return float(value) if ok else default


class NdjsonHttpsSink:
    """POSTs signed NDJSON batches (sink ``ndjson-https``)."""

    name = "ndjson-https"

    def __init__(
        self,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_lines: int = DEFAULT_MAX_LINES,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_lines = max(1, max_lines)
        self.codec = NdjsonCodec()
        self._environ = environ
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """One or more POSTs per feed; each delivery gets the outcome of its POST."""
        outcomes: list[DeliveryOutcome] = [DeliveryOutcome(ok=False)] * len(deliveries)
        groups: dict[int, list[int]] = {}
        for i, d in enumerate(deliveries):
            groups.setdefault(id(d.options), []).append(i)
        for indexes in groups.values():
            for start in range(0, len(indexes), self.max_lines):
                chunk = indexes[start : start + self.max_lines]
                outcome = await self._post([deliveries[i] for i in chunk])
                for i in chunk:
                    outcomes[i] = outcome
        return outcomes

    async def _post(self, group: list[Delivery]) -> DeliveryOutcome:
        options = group[0].options
        problem = check_url(options.get("url"), bool(options.get("allow_insecure_http")))
        if problem is not None:
            return DeliveryOutcome(ok=False, retry=False, error=problem)
        try:
            secrets = secrets_from_env(options.get("secret_envs"), self._environ)
        except SigningError as exc:
            return DeliveryOutcome(ok=False, retry=False, error=str(exc))
        body = b"".join(self.codec.line(d.record, idempotency_key=d.idempotency_key) for d in group)
        return await post_signed(
            self._client(),
            str(options["url"]),
            body,
            secrets=secrets,
            idempotency_key=batch_key(group),
            content_type=CONTENT_TYPE,
            timeout_seconds=_seconds(options.get("timeout_seconds"), self.timeout_seconds),
        )

    async def close(self) -> None:
        """Close the HTTP session (safe to call again)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
