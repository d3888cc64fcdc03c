"""The ``fhir-push`` sink: permitted records to a partner's FHIR server, as transactions.

Feed options::

    options = { base_url = "https://partner.example.org/fhir",
                auth = { type = "bearer", token_env = "PARTNER_TOKEN" },
                # or auth = { type = "smart", token_url = "...", client_id = "...",
                #             private_key_file = "keys/partner.pem", kid = "...",
                #             scope = "system/*.write" },
                timeout_seconds = 30, allow_insecure_http = false }

A batch of deliveries goes as one transaction Bundle of conditional updates (see
:mod:`plugins.fhir.outbound`). Outcomes: 2xx → each delivery by its entries'
``response.status``; 429, 408 and 5xx → retry (``Retry-After`` honoured); a timeout or a
connection error → retry; a redirect (not followed), 401 (after one SMART token refresh),
403, 404, 405, 406 or 415 → every delivery dead-lettered at once (about the endpoint or the
credentials, not a record); another 4xx → a batch of several is split and sent one by one
(so one bad record does not sink the others), a single delivery is dead-lettered with the
OperationOutcome's issue codes and plain element paths. The partner's ``diagnostics`` and
status texts are free text that may quote client data, so they are withheld (``***``) and
any value the delivery carried is blanked out: no client data reaches the outbox's error text.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from hub.plugin_api import Delivery, DeliveryOutcome, parse_retry_after
from plugins.fhir.outbound import Entry, NotRenderable, render_record
from plugins.fhir.smart import SmartTokenSource, TokenError, load_private_key

DEFAULT_TIMEOUT = 30.0
NOT_PER_RECORD = frozenset({401, 403, 404, 405, 406, 415})
"""Refusals of the whole request (credentials, endpoint, media type), whatever it holds."""
MAX_ERROR = 300
FHIR_JSON = "application/fhir+json"


def _leaves(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v)


def scrub(text: str, payloads: Iterable[Any]) -> str:
    """``text`` with every value of the delivered payloads (3+ characters) blanked."""
    for value in sorted(
        {v for p in payloads for v in _leaves(p) if len(v) >= 3}, key=len, reverse=True
    ):
        text = text.replace(value, "***")
    return text[:MAX_ERROR]


_ELEMENT_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\[\d+\])?(\.[A-Za-z][A-Za-z0-9_]*(\[\d+\])?)*")
_CODE = re.compile(r"[a-z][a-z-]{0,40}")
WITHHELD = "***"
"""What stands for the partner's free text (diagnostics, a FHIRPath with values in it)."""


def _element(expression: Any) -> str:
    """An issue's element path when it is a plain one (``Patient.name[0].family``), else
    :data:`WITHHELD`: a FHIRPath such as ``name.where(family='…')`` can quote client data."""
    text = str(expression)
    return text if _ELEMENT_PATH.fullmatch(text) else WITHHELD


def outcome_error(body: bytes, status: int, payloads: Iterable[Any]) -> str:
    """The error text of a refused transaction: its OperationOutcome's issue codes and plain
    element paths. ``diagnostics`` is the partner's free text — it may quote this record or
    the partner's own records of other people — so it is withheld (:data:`WITHHELD`), never
    copied into the outbox's error text or a log."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    parts: list[str] = []
    if isinstance(data, Mapping) and data.get("resourceType") == "OperationOutcome":
        for issue in data.get("issue") or ():
            if not isinstance(issue, Mapping):
                continue
            paths = issue.get("expression") or issue.get("location") or ()
            where = ",".join(_element(e) for e in paths) if isinstance(paths, list) else ""
            code = str(issue.get("code", ""))
            code = code if _CODE.fullmatch(code) else ""
            text = WITHHELD if issue.get("diagnostics") else ""
            parts.append(" ".join(p for p in (code, where, text) if p))
    detail = "; ".join(p for p in parts if p) or "no OperationOutcome"
    return scrub(f"HTTP {status}: {detail}", payloads)


def check_base_url(url: Any, allow_insecure: bool) -> str | None:
    """A problem with ``base_url``, or None: https, or http to a loopback address."""
    if not isinstance(url, str) or not url:
        return "options.base_url is required"
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname:
        if allow_insecure or parts.hostname == "localhost":
            return None
        try:
            if ipaddress.ip_address(parts.hostname).is_loopback:
                return None
        except ValueError:
            pass
        return "options.base_url must use https (http only to a loopback address)"
    return "options.base_url must be an http(s) URL"


class _Auth:
    """The Authorization header for a feed's options."""

    def __init__(
        self, options: Mapping[str, Any], environ: Mapping[str, str], resolve: Callable[[str], Path]
    ) -> None:
        auth = options.get("auth") or {}
        if not isinstance(auth, Mapping):
            raise TokenError("options.auth must be a table", False)
        self.kind = str(auth.get("type", "none"))
        self.static = ""
        self.smart: SmartTokenSource | None = None
        if self.kind == "bearer":
            env = str(auth.get("token_env", ""))
            token = environ.get(env, "") if env else ""
            if not token:
                raise TokenError(
                    f"options.auth.token_env: environment variable {env!r} is not set", False
                )
            self.static = token
        elif self.kind == "smart":
            missing = [
                k for k in ("token_url", "client_id", "private_key_file", "kid") if not auth.get(k)
            ]
            if missing:
                raise TokenError(f"options.auth.{missing[0]} is required for SMART", False)
            problem = check_base_url(auth["token_url"], bool(options.get("allow_insecure_http")))
            if problem is not None:
                # the access token comes back from there: never over plain http to a remote host
                raise TokenError(
                    problem.replace("options.base_url", "options.auth.token_url"), False
                )
            try:
                pem = resolve(str(auth["private_key_file"])).read_bytes()
            except OSError:
                raise TokenError("options.auth.private_key_file cannot be read", False) from None
            key, alg = load_private_key(pem)
            self.smart = SmartTokenSource(
                token_url=str(auth["token_url"]),
                client_id=str(auth["client_id"]),
                private_key=key,
                algorithm=str(auth.get("alg") or alg),
                kid=str(auth["kid"]),
                scope=str(auth.get("scope") or "system/*.write"),
            )
        elif self.kind != "none":
            raise TokenError("options.auth.type must be bearer or smart", False)

    async def header(
        self, session: aiohttp.ClientSession, timeout_seconds: float
    ) -> dict[str, str]:
        """The Authorization header (a SMART token is fetched or reused)."""
        if self.smart is not None:
            return {"Authorization": f"Bearer {await self.smart.token(session, timeout_seconds)}"}
        if self.static:
            return {"Authorization": f"Bearer {self.static}"}
        return {}


class FhirPushSink:
    """Delivers permitted records to partners' FHIR R4 servers (sink ``fhir-push``)."""

    name = "fhir-push"

    def __init__(
        self,
        resolve: Callable[[str], Path] = Path,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._resolve = resolve
        self._environ = environ if environ is not None else os.environ
        self._session: aiohttp.ClientSession | None = None
        self._auth: dict[str, _Auth] = {}

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _auth_for(self, options: Mapping[str, Any]) -> _Auth:
        key = orjson.dumps(options.get("auth") or {}, option=orjson.OPT_SORT_KEYS).decode()
        auth = self._auth.get(key)
        if auth is None:
            auth = self._auth[key] = _Auth(options, self._environ, self._resolve)
        return auth

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """Send a batch; one outcome per delivery, in order."""
        outcomes: list[DeliveryOutcome | None] = [None] * len(deliveries)
        groups: dict[str, list[int]] = {}
        for i, d in enumerate(deliveries):
            groups.setdefault(str(d.options.get("base_url", "")), []).append(i)
        for indexes in groups.values():
            sent = await self._deliver_group([deliveries[i] for i in indexes])
            for i, outcome in zip(indexes, sent, strict=True):
                outcomes[i] = outcome
        return [
            o if o is not None else DeliveryOutcome(ok=False, error="not sent") for o in outcomes
        ]

    async def _deliver_group(self, deliveries: list[Delivery]) -> list[DeliveryOutcome]:
        options = deliveries[0].options
        problem = check_base_url(options.get("base_url"), bool(options.get("allow_insecure_http")))
        if problem is not None:
            return [DeliveryOutcome(ok=False, retry=False, error=f"fhir-push: {problem}")] * len(
                deliveries
            )
        try:
            auth = self._auth_for(options)
        except TokenError as exc:
            return [DeliveryOutcome(ok=False, retry=exc.retry, error=f"fhir-push: {exc}")] * len(
                deliveries
            )
        outcomes: list[DeliveryOutcome | None] = [None] * len(deliveries)
        rendered: list[tuple[int, list[Entry]]] = []
        for i, d in enumerate(deliveries):
            try:
                rendered.append((i, render_record(d.record, d.payload)))
            except NotRenderable as exc:
                outcomes[i] = DeliveryOutcome(ok=False, retry=False, error=f"fhir-push: {exc}")
        if rendered:
            sent = await self._send(
                options, auth, [deliveries[i] for i, _ in rendered], [e for _, e in rendered]
            )
            for (i, _), outcome in zip(rendered, sent, strict=True):
                outcomes[i] = outcome
        return [
            o if o is not None else DeliveryOutcome(ok=False, error="not sent") for o in outcomes
        ]

    async def _send(
        self,
        options: Mapping[str, Any],
        auth: _Auth,
        deliveries: list[Delivery],
        entries: list[list[Entry]],
    ) -> list[DeliveryOutcome]:
        timeout = float(options.get("timeout_seconds", DEFAULT_TIMEOUT))
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [e for group in entries for e in group],
        }
        body = orjson.dumps(bundle)
        session = self._session_now()
        payloads = [d.payload for d in deliveries]
        for attempt in range(2):
            try:
                headers = {
                    "Content-Type": FHIR_JSON,
                    "Accept": FHIR_JSON,
                    "X-Request-Id": deliveries[0].idempotency_key,
                    **(await auth.header(session, timeout)),
                }
                async with session.post(
                    str(options["base_url"]).rstrip("/") + "/",
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    # A redirect is not followed: aiohttp would re-send a POST as a GET, whose
                    # 200 would pass for a delivery, and the token would go to another host.
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    text = await resp.read()
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            except TokenError as exc:
                return [
                    DeliveryOutcome(ok=False, retry=exc.retry, error=f"fhir-push: {exc}")
                ] * len(deliveries)
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"fhir-push: {type(exc).__name__} talking to the partner"
                return [DeliveryOutcome(ok=False, retry=True, error=error)] * len(deliveries)
            if status == 401 and auth.smart is not None and attempt == 0:
                auth.smart.forget()
                continue
            break
        if 200 <= status < 300:
            return self._per_entry(text, entries, payloads)
        if status in (408, 429) or status >= 500:
            error = f"fhir-push: partner answered HTTP {status}"
            return [
                DeliveryOutcome(ok=False, retry=True, error=error, retry_after=retry_after)
            ] * len(deliveries)
        if status < 400 or status in NOT_PER_RECORD:
            # about the endpoint or the credentials, not a record: sending each record on its
            # own would only repeat it (and fetch a SMART token per record)
            error = f"fhir-push: partner answered HTTP {status}"
            if status < 400:
                error += " (a redirect: check options.base_url)"
            return [DeliveryOutcome(ok=False, retry=False, error=error)] * len(deliveries)
        if len(deliveries) > 1:
            out: list[DeliveryOutcome] = []
            for d, e in zip(deliveries, entries, strict=True):
                out.extend(await self._send(options, auth, [d], [e]))
            return out
        return [DeliveryOutcome(ok=False, retry=False, error=outcome_error(text, status, payloads))]

    @staticmethod
    def _per_entry(
        body: bytes, entries: list[list[Entry]], payloads: list[Any]
    ) -> list[DeliveryOutcome]:
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            data = {}
        responses = data.get("entry") if isinstance(data, Mapping) else None
        statuses = [
            str((e.get("response") or {}).get("status", "")) if isinstance(e, Mapping) else ""
            for e in (responses if isinstance(responses, list) else [])
        ]
        out: list[DeliveryOutcome] = []
        position = 0
        for group, payload in zip(entries, payloads, strict=True):
            mine = statuses[position : position + len(group)]
            position += len(group)
            bad = [s.strip()[:3] for s in mine if s and not s.strip().startswith("2")]
            if bad:
                # only the status code: the rest of response.status is the partner's free text
                code = bad[0] if bad[0].isdigit() else "a non-2xx status"
                error = scrub(f"fhir-push: entry answered {code}", [payload])
                out.append(DeliveryOutcome(ok=False, retry=bad[0][:1] == "5", error=error))
            else:
                out.append(DeliveryOutcome(ok=True))
        return out

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
