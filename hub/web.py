"""The HTTP application: app factory, authentication, errors as JSON, health and metrics.

Every endpoint but ``/healthz`` needs ``Authorization: Bearer <key>``; the middleware puts the
:class:`hub.auth.Caller` on the request (``request[CALLER]``). Plugins add their routes with
the ``hub_http_routes`` hook and read the context from ``request.app[CONTEXT]``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from hub.auth import Caller, KeyThrottled, KeyVerifier, RateLimiter
from hub.config import MAX_BODY_BYTES
from hub.context import HubContext
from hub.core.ports import OUTBOX_STATUSES
from hub.tls import certificate_mapping

log = logging.getLogger("hub.http")

DEFAULT_MAX_BODY = MAX_BODY_BYTES
"""The largest request body read when ``[http] max_body_bytes`` is not set."""

CONTEXT = web.AppKey("hub_context", HubContext)
VERIFIER = web.AppKey("hub_key_verifier", KeyVerifier)
CALLER = web.RequestKey("hub_caller", Caller)
PUBLIC_PATHS = frozenset({"/healthz", "/.well-known/smart-configuration", "/auth/token"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: object, status: int = 200, content_type: str = "application/json"
) -> web.Response:
    """A JSON response serialised with orjson."""
    return web.Response(body=orjson.dumps(data), status=status, content_type=content_type)


def json_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    """An error body that names the problem and never echoes client data."""
    resp = json_response({"error": code, "message": message}, status)
    resp.headers.update(headers)
    return resp


ErrorRenderer = Callable[[int, str, str, dict[str, str]], web.Response]
"""How an API mounted by a plugin words an error the core answers for it (status, code,
message, headers): a FHIR API answers an OperationOutcome, not the core's JSON."""
ERROR_RENDERERS = web.AppKey("hub_error_renderers", dict[str, ErrorRenderer])


def add_error_renderer(app: web.Application, prefix: str, render: ErrorRenderer) -> None:
    """Word the core's errors (authentication, rate limits, failures) on paths under
    ``prefix`` (``/fhir/``; the bare ``/fhir`` too) with ``render``."""
    app[ERROR_RENDERERS][prefix] = render


def error_for(
    request: web.Request, status: int, code: str, message: str, **headers: str
) -> web.Response:
    """:func:`json_error`, or the error as the API the path belongs to words it."""
    path = request.path
    for prefix, render in request.app[ERROR_RENDERERS].items():
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            return render(status, code, message, headers)
    return json_error(status, code, message, **headers)


def caller_of(request: web.Request) -> Caller:
    """The authenticated caller of a request (set by the auth middleware)."""
    caller: Caller = request[CALLER]
    return caller


def require_admin(request: web.Request) -> Caller:
    """The caller, or an HTTP 403 when it is not an admin."""
    caller = caller_of(request)
    if not caller.is_admin:
        raise web.HTTPForbidden(
            text=orjson.dumps({"error": "forbidden", "message": "admin role required"}).decode(),
            content_type="application/json",
        )
    return caller


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error; never a stack trace to a partner."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type in ("application/json", "application/fhir+json"):
            raise
        if exc.status < 400:
            raise
        # Keep what the exception says besides its body (``Allow`` of a 405 …).
        kept = {
            name: value
            for name, value in exc.headers.items()
            if name.lower() not in ("content-type", "content-length")
        }
        return error_for(
            request, exc.status, exc.reason.lower().replace(" ", "_"), exc.reason, **kept
        )
    except Exception as exc:
        log.error(
            "unhandled error in HTTP handler",
            extra={"path": request.path, "error_type": type(exc).__name__},
        )
        ctx = request.app[CONTEXT]
        ctx.metrics.errors.labels("http", type(exc).__name__).inc()
        return error_for(request, 500, "internal_error", "the hub could not complete the request")


LIMITER = web.AppKey("hub_rate_limiter", RateLimiter)


def certificate_caller(request: web.Request) -> Caller | None:
    """The partner a verified client certificate (mutual TLS) is mapped to, if any."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    mapping = certificate_mapping(ssl_object, request.app[CONTEXT].config.auth.certificates)
    if mapping is None:
        return None
    label = mapping.subject_cn or mapping.sha256[:16]
    return Caller(mapping.agency, mapping.role, f"cert:{label}")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the caller (bearer API key, SMART access token or client certificate),
    then apply the caller's rate limit."""
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    ctx = request.app[CONTEXT]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="cie-hub"'}
    caller: Caller | None = None
    if scheme.lower() == "bearer" and token:
        try:
            caller = await request.app[VERIFIER].verify(token.strip())
        except KeyThrottled as exc:
            ctx.metrics.auth_failures.labels("throttled").inc()
            log.info("refused credentials: too many wrong secrets", extra={"path": request.path})
            return error_for(
                request,
                429,
                "too_many_requests",
                "too many failed authentication attempts",
                **{"Retry-After": str(max(1, int(exc.retry_after + 0.999)))},
            )
        if caller is None:
            for verify in ctx.extras.get("token_verifiers", []):
                caller = await verify(token.strip())
                if caller is not None:
                    break
        if caller is None:
            ctx.metrics.auth_failures.labels("invalid").inc()
            log.info("refused credentials", extra={"path": request.path})
            challenge["WWW-Authenticate"] += ', error="invalid_token"'
            return error_for(
                request, 401, "unauthorized", "invalid or revoked credentials", **challenge
            )
    else:
        caller = certificate_caller(request)
    if caller is None:
        ctx.metrics.auth_failures.labels("missing").inc()
        return error_for(request, 401, "unauthorized", "bearer credentials required", **challenge)
    wait = request.app[LIMITER].take(caller.key_id)
    if wait > 0:
        ctx.metrics.auth_failures.labels("rate_limited").inc()
        return error_for(
            request,
            429,
            "too_many_requests",
            "request rate limit reached",
            **{"Retry-After": str(max(1, int(wait + 0.999)))},
        )
    request[CALLER] = caller
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    """Liveness and store reachability."""
    ctx = request.app[CONTEXT]
    started = time.perf_counter()
    try:
        version = await ctx.store.schema_version()
    except Exception:
        return json_response({"status": "unavailable", "store": "unreachable"}, 503)
    return json_response(
        {
            "status": "ok",
            "store": ctx.store.dialect,
            "schema_version": version,
            "store_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition (admin callers)."""
    require_admin(request)
    ctx = request.app[CONTEXT]
    depth = await ctx.store.outbox_depth()
    # Every status, so one that has emptied reads 0 rather than its last count.
    for status in dict.fromkeys((*OUTBOX_STATUSES, *depth)):
        ctx.metrics.queue_depth.labels(status).set(depth.get(status, 0))
    return web.Response(body=ctx.metrics.render(), content_type="text/plain", charset="utf-8")


def make_app(ctx: HubContext) -> web.Application:
    """The aiohttp application with core routes and every plugin's routes."""
    max_body = int(ctx.config.section("http").get("max_body_bytes", DEFAULT_MAX_BODY))
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=max_body)
    app[CONTEXT] = ctx
    app[ERROR_RENDERERS] = {}
    app[VERIFIER] = KeyVerifier(ctx.store)
    app[LIMITER] = RateLimiter(ctx.config.auth.requests_per_minute)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    from hub.consult import add_consult_routes
    from hub.smart import add_smart_routes

    add_consult_routes(app)
    add_smart_routes(app, ctx)
    from hub.admin import add_admin_routes

    add_admin_routes(app)
    ctx.plugins.hook.hub_http_routes(app=app, ctx=ctx)
    return app
