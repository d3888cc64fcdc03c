"""SMART Backend Services, rate limits and body limits against a real HTTP server."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def rsa_pair(tmp_path: Path, name: str) -> tuple[bytes, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / f"{name}.pub.pem"
    path.write_bytes(public)
    return private, path


def assertion(
    private: bytes,
    aud: str,
    *,
    client: str = "mercy-backend",
    exp_in: int = 120,
    jti: str | None = None,
) -> str:
    now = int(time.time())
    claims = {
        "iss": client,
        "sub": client,
        "aud": aud,
        "exp": now + exp_in,
        "jti": jti or uuid.uuid4().hex,
        "iat": now,
    }
    return jwt.encode(claims, private, algorithm="RS384", headers={"kid": "k1"})


def auth_toml(path: Path, per_minute: int = 1000) -> str:
    return f"""
[auth]
requests_per_minute = {per_minute}
[[auth.clients]]
client_id = "mercy-backend"
agency = "hospital-x"
public_key_file = "{path}"
"""


async def token_request(http, url: str, jwt_text: str):
    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.read",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": jwt_text,
    }
    return await http.post(f"{url}/auth/token", data=form)


async def test_backend_services_flow_and_refusals(web_hub, tmp_path: Path) -> None:
    private, public_path = rsa_pair(tmp_path, "mercy")
    other_private, _ = rsa_pair(tmp_path, "other")
    async with web_hub(auth_toml(public_path)) as (ctx, url, http):
        async with http.get(f"{url}/.well-known/smart-configuration") as r:
            conf = await r.json()
            assert conf["token_endpoint"].endswith("/auth/token")
            assert "private_key_jwt" in conf["token_endpoint_auth_methods_supported"]
        aud = f"{url}/auth/token"
        good = assertion(private, aud)
        async with await token_request(http, url, good) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
            assert body["token_type"] == "bearer" and body["expires_in"] == 300
            token = body["access_token"]
        async with http.get(
            f"{url}/cds-services", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 200
        # the same assertion again is a replay
        async with await token_request(http, url, good) as r:
            assert r.status == 401 and "already used" in (await r.json())["error_description"]
        cases = [
            (assertion(private, aud, exp_in=900), "5 minutes"),
            (assertion(private, aud, exp_in=-30), "expired"),
            (assertion(private, "https://elsewhere/token"), "audience"),
            (assertion(other_private, aud), "signature"),
            (assertion(private, aud, client="stranger"), "unknown client"),
        ]
        for bad, why in cases:
            async with await token_request(http, url, bad) as r:
                assert r.status == 401, why
                assert why in (await r.json())["error_description"]
        async with http.get(f"{url}/cds-services", headers={"Authorization": "Bearer forged"}) as r:
            assert r.status == 401
        metrics = ctx.metrics.render().decode()
        assert 'hub_auth_failures_total{reason="token_replay"} 1.0' in metrics


async def test_rate_limit_per_partner(web_hub, make_key, tmp_path: Path) -> None:
    _, public_path = rsa_pair(tmp_path, "mercy")
    async with web_hub(auth_toml(public_path, per_minute=3)) as (ctx, url, http):
        a = {"Authorization": f"Bearer {await make_key(ctx, 'hospital-x')}"}
        b = {"Authorization": f"Bearer {await make_key(ctx, 'cie-211')}"}
        statuses = []
        for _ in range(4):
            async with http.get(f"{url}/cds-services", headers=a) as r:
                statuses.append(r.status)
                if r.status == 429:
                    assert int(r.headers["Retry-After"]) >= 1
        assert statuses == [200, 200, 200, 429]
        async with http.get(f"{url}/cds-services", headers=b) as r:
            assert r.status == 200  # another partner is not slowed


async def test_oversized_body_is_refused_as_json(web_hub, make_key) -> None:
    async with web_hub("[http]\nmax_body_bytes = 2000\n") as (ctx, url, http):
        key = await make_key(ctx, "hospital-x")
        big = b"{" + b" " * 5000 + b"}"
        async with http.post(
            f"{url}/cds-services/patient-consent-consult",
            data=big,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        ) as r:
            assert r.status == 413
            assert (await r.json())["error"] == "request_entity_too_large"


async def test_the_audience_is_not_taken_from_the_host_header(web_hub, tmp_path: Path) -> None:
    # An assertion signed for another server's token endpoint must not buy a token here,
    # whatever Host header comes with it.
    private, public_path = rsa_pair(tmp_path, "mercy")
    async with web_hub(auth_toml(public_path)) as (_ctx, url, http):
        foreign = assertion(private, "http://other-hub.example/auth/token")
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": foreign,
        }
        headers = {"Host": "other-hub.example"}
        async with http.post(f"{url}/auth/token", data=form, headers=headers) as r:
            assert r.status == 401
            assert "audience" in (await r.json())["error_description"]
        async with http.get(f"{url}/.well-known/smart-configuration", headers=headers) as r:
            assert (await r.json())["token_endpoint"] == f"{url}/auth/token"


async def test_a_configured_token_url_is_the_audience(web_hub, tmp_path: Path) -> None:
    private, public_path = rsa_pair(tmp_path, "mercy")
    public = "https://hub.cie.example/auth/token"
    toml = auth_toml(public_path).replace("[auth]\n", f'[auth]\ntoken_url = "{public}"\n')
    async with web_hub(toml) as (_ctx, url, http):
        async with http.get(f"{url}/.well-known/smart-configuration") as r:
            assert (await r.json())["token_endpoint"] == public
        async with await token_request(http, url, assertion(private, f"{url}/auth/token")) as r:
            assert r.status == 401  # the address it arrived on is not the public name
        async with await token_request(http, url, assertion(private, public)) as r:
            assert r.status == 200, await r.text()


async def _token(http, url: str, private: bytes, scope: str | None) -> tuple[int, dict]:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(private, f"{url}/auth/token"),
    }
    if scope is not None:
        form["scope"] = scope
    async with http.post(f"{url}/auth/token", data=form) as r:
        return r.status, await r.json()


async def test_a_token_is_held_to_the_scopes_it_was_granted(web_hub, tmp_path: Path) -> None:
    import orjson

    from tests.fhir.conftest import patient_json

    private, public_path = rsa_pair(tmp_path, "mercy")
    async with web_hub(auth_toml(public_path)) as (_ctx, url, http):
        status, body = await _token(http, url, private, "patient/*.read")
        assert status == 400 and body["error"] == "invalid_scope"
        assert "patient/*.read" in body["error_description"]

        status, body = await _token(http, url, private, None)
        assert status == 200 and body["scope"] == "system/*.read system/*.write"

        status, body = await _token(http, url, private, "system/Patient.read")
        assert status == 200 and body["scope"] == "system/Patient.read"
        headers = {
            "Authorization": f"Bearer {body['access_token']}",
            "Content-Type": "application/fhir+json",
        }
        async with http.get(f"{url}/fhir/Patient", headers=headers) as r:
            assert r.status == 200
        async with http.get(f"{url}/fhir/Encounter", headers=headers) as r:
            assert r.status == 403
        patient = orjson.dumps(patient_json("MRN-SCOPE-1"))
        async with http.post(f"{url}/fhir/Patient", data=patient, headers=headers) as r:
            assert r.status == 403
            outcome = await r.json()
            assert outcome["resourceType"] == "OperationOutcome"
            assert "do not allow write of Patient" in outcome["issue"][0]["diagnostics"]
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": patient_json("MRN-SCOPE-2"),
                    "request": {"method": "POST", "url": "Patient"},
                }
            ],
        }
        async with http.post(f"{url}/fhir", data=orjson.dumps(bundle), headers=headers) as r:
            assert r.status == 403
            assert "entry 0" in (await r.json())["issue"][0]["diagnostics"]

        status, body = await _token(http, url, private, "system/Patient.*")
        headers["Authorization"] = f"Bearer {body['access_token']}"
        async with http.post(f"{url}/fhir", data=orjson.dumps(bundle), headers=headers) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{url}/fhir/Patient", data=patient, headers=headers) as r:
            assert r.status == 201, await r.text()
