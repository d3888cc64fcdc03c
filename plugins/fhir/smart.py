"""SMART Backend Services: client-credentials access tokens with a signed JWT assertion.

The hub authenticates to a partner's FHIR server as a backend service: it signs a short-lived
JWT (``iss`` = ``sub`` = client id, ``aud`` = token URL, ``jti`` unique, ``exp`` ≤ 5 minutes)
with its private key (RS384 for an RSA key, ES384 for an EC key; ``kid`` in the header) and
trades it at the token endpoint for an access token, cached until shortly before it expires.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_SCOPE = "system/*.write"
ASSERTION_LIFETIME = 300
EARLY_REFRESH = 30.0


class TokenError(RuntimeError):
    """No access token: ``retry`` tells whether trying again later may help."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def load_private_key(pem: bytes) -> tuple[Any, str]:
    """(private key, JWT algorithm) from PEM: RS384 for RSA, ES384 for EC P-384."""
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise TokenError(
            "SMART private key: not a PEM private key without password", False
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        return key, "RS384"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP384R1):
            raise TokenError("SMART private key: an EC key must be on curve P-384", False)
        return key, "ES384"
    raise TokenError("SMART private key: must be an RSA or EC key", False)


@dataclass
class SmartTokenSource:
    """Access tokens for one client at one token endpoint."""

    token_url: str
    client_id: str
    private_key: Any
    algorithm: str
    kid: str
    scope: str = DEFAULT_SCOPE
    clock: Callable[[], float] = time.time
    _token: str = ""
    _expires: float = 0.0

    def assertion(self) -> str:
        """A fresh signed client assertion."""
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims,
            self.private_key,
            algorithm=self.algorithm,
            headers={"kid": self.kid, "typ": "JWT"},
        )

    def forget(self) -> None:
        """Drop the cached token (after the resource server refused it)."""
        self._token, self._expires = "", 0.0

    async def token(self, session: aiohttp.ClientSession, timeout_seconds: float) -> str:
        """A valid access token (cached, or fetched now)."""
        if self._token and self.clock() < self._expires - EARLY_REFRESH:
            return self._token
        try:
            signed = self.assertion()
        except (jwt.PyJWTError, ValueError, TypeError, NotImplementedError):
            # e.g. an ``alg`` in the feed's options that the key cannot sign with
            raise TokenError(
                f"SMART client assertion: the key cannot sign with {self.algorithm}", False
            ) from None
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        }
        try:
            async with session.post(
                self.token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            ) as resp:
                status = resp.status
                body = await resp.json(content_type=None) if status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TokenError(
                f"SMART token endpoint unreachable ({type(exc).__name__})", True
            ) from None
        if status != 200:
            raise TokenError(
                f"SMART token endpoint answered HTTP {status}", status >= 500 or status == 429
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenError("SMART token endpoint gave no access_token", False)
        expires_in = body.get("expires_in", 300) if isinstance(body, dict) else 300
        self._token = token
        self._expires = self.clock() + float(
            expires_in if isinstance(expires_in, int | float) else 300
        )
        return token
