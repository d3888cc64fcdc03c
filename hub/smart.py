"""SMART Backend Services: client-credentials with a ``private_key_jwt`` assertion.

A registered partner system (``[[auth.clients]]``: client id, agency, public key) posts a
JWT signed with its private key to ``/auth/token``; the hub checks signature, issuer,
subject, audience, expiry (at most five minutes ahead) and that the ``jti`` was never used,
then answers a short-lived opaque access token. The token is stored only as a hash, with the
scopes it was granted: the ones requested (SMART v1 ``system/<Type|*>.<read|write|*>``; an
unsupported one is refused with ``invalid_scope``), or ``system/*.read system/*.write`` when
none is. The FHIR API holds a token to its scopes. JWT handling is PyJWT's, not ours.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from aiohttp import web

from hub.auth import Caller, ScopeError, parse_scopes
from hub.config import SmartClient
from hub.context import HubContext
from hub.web import CONTEXT, json_response

log = logging.getLogger("hub.auth")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ["RS384", "ES384", "RS256", "ES256"]
MAX_ASSERTION_LIFETIME = 300


class TokenError(ValueError):
    """A refused token request; ``code`` is the OAuth error code."""

    def __init__(self, code: str, description: str, reason: str) -> None:
        super().__init__(description)
        self.code = code
        self.reason = reason


def token_hash(token: str) -> str:
    """How an access token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_url(request: web.Request, ctx: HubContext) -> str:
    """The token endpoint's URL: the audience an assertion must name.

    ``[auth] token_url`` when set; otherwise the scheme and the local address of the
    connection the request came in on. Never the request's ``Host`` header: a caller chooses
    that, and an assertion signed for another server would pass as signed for this one.
    """
    if ctx.config.auth.token_url:
        return ctx.config.auth.token_url
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        host, port = ctx.config.http_host, ctx.config.http_port
    else:
        host, port = str(sockname[0]), int(sockname[1])
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if request.secure else "http"
    return f"{scheme}://{host}:{port}/auth/token"


async def check_assertion(
    ctx: HubContext, assertion: str, audience: str, now: float | None = None
) -> SmartClient:
    """The registered client that signed a valid, fresh, never-used assertion."""
    now = time.time() if now is None else now
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenError("invalid_client", "client_assertion is not a JWT", "malformed") from None
    issuer = unverified.get("iss")
    client = next((c for c in ctx.config.auth.clients if c.client_id == issuer), None)
    if client is None:
        raise TokenError("invalid_client", "unknown client", "unknown_client")
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key=client.public_key_pem,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=client.client_id,
            options={"require": ["exp", "jti", "iss", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("invalid_client", "assertion expired", "expired") from None
    except jwt.InvalidAudienceError:
        raise TokenError(
            "invalid_client", "assertion audience is not this hub", "audience"
        ) from None
    except jwt.InvalidSignatureError:
        raise TokenError("invalid_client", "assertion signature invalid", "signature") from None
    except jwt.PyJWTError as exc:
        raise TokenError("invalid_client", f"assertion refused: {exc}", "invalid") from None
    if claims.get("sub") != client.client_id:
        raise TokenError("invalid_client", "assertion sub must equal iss", "subject")
    if float(claims["exp"]) > now + MAX_ASSERTION_LIFETIME:
        raise TokenError("invalid_client", "assertion exp more than 5 minutes ahead", "lifetime")
    expires = datetime.fromtimestamp(float(claims["exp"]), UTC).isoformat(timespec="microseconds")
    if not await ctx.store.use_assertion(str(claims["jti"]), client.client_id, expires):
        raise TokenError("invalid_client", "assertion jti already used", "replay")
    return client


async def token_endpoint(request: web.Request) -> web.Response:
    """``POST /auth/token``: client-credentials grant with a JWT client assertion."""
    ctx = request.app[CONTEXT]
    form = await request.post()
    try:
        if form.get("grant_type") != "client_credentials":
            raise TokenError("unsupported_grant_type", "use client_credentials", "grant")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenError("invalid_request", "client_assertion_type must be jwt-bearer", "type")
        assertion = form.get("client_assertion")
        if not isinstance(assertion, str) or not assertion:
            raise TokenError("invalid_request", "client_assertion is required", "missing")
        requested = form.get("scope")
        try:
            granted = parse_scopes(requested if isinstance(requested, str) else "")
        except ScopeError as exc:
            raise TokenError("invalid_scope", str(exc), "scope") from None
        client = await check_assertion(ctx, assertion, token_url(request, ctx))
    except TokenError as exc:
        ctx.metrics.auth_failures.labels(f"token_{exc.reason}").inc()
        log.info("token request refused", extra={"reason": exc.reason})
        status = 400 if exc.code != "invalid_client" else 401
        resp = json_response({"error": exc.code, "error_description": str(exc)}, status)
        if status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="cie-hub"'
        return resp
    lifetime = ctx.config.auth.token_lifetime_seconds
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=lifetime)
    scope = " ".join(sorted(granted))
    await ctx.store.add_access_token(
        token_hash(token),
        client.agency,
        client.role,
        client.client_id,
        expires.isoformat(timespec="microseconds"),
        scope,
    )
    resp = json_response(
        {"access_token": token, "token_type": "bearer", "expires_in": lifetime, "scope": scope}
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def smart_configuration(request: web.Request) -> web.Response:
    """``/.well-known/smart-configuration`` for backend services."""
    return json_response(
        {
            "token_endpoint": token_url(request, request.app[CONTEXT]),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ALGORITHMS,
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": ["system/*.read", "system/*.write", "system/*.*"],
            "capabilities": ["client-confidential-asymmetric"],
        }
    )


def token_verifier(ctx: HubContext) -> Any:
    """A bearer verifier for issued access tokens (plugged into the auth middleware)."""

    async def verify(token: str) -> Caller | None:
        found = await ctx.store.find_access_token(token_hash(token))
        if found is None:
            return None
        agency, role, client_id, scope = found
        return Caller(agency, role, f"smart:{client_id}", frozenset(scope.split()))

    return verify


def add_smart_routes(app: web.Application, ctx: HubContext) -> None:
    """Register the token endpoint and the discovery document."""
    app.router.add_post("/auth/token", token_endpoint)
    app.router.add_get("/.well-known/smart-configuration", smart_configuration)
    if "smart_verifier" not in ctx.extras:
        ctx.extras["smart_verifier"] = token_verifier(ctx)
        ctx.extras.setdefault("token_verifiers", []).append(ctx.extras["smart_verifier"])
