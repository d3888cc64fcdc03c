"""The ``fhir-push`` sink against a real local FHIR endpoint that records what it gets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhir.resources.R4B.bundle import Bundle

from hub.core.ports import Delivery
from hub.core.records import (
    Client,
    Enrollment,
    HumanName,
    Identifier,
    Provenance,
    Record,
    RecordMeta,
    Referral,
    SourceKey,
)
from hub.core.serialize import record_payload
from hub.delivery import DeliveryWorker, collect_sinks
from plugins.fhir.push import FhirPushSink, parse_retry_after
from tests.fhir.conftest import MRN_SYSTEM, FhirHubFactory

TOKEN_ENV = "HUB_TEST_FHIR_PUSH_TOKEN"

Responder = Callable[[dict[str, Any]], web.Response]


@dataclass
class Receiver:
    """A partner's FHIR server: answers with the queued responders, records every call."""

    url: str = ""
    bundles: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    responders: list[Responder] = field(default_factory=list)
    tokens: list[dict[str, str]] = field(default_factory=list)
    public_key: Any = None
    issued: str = "tok-1"

    async def transaction(self, request: web.Request) -> web.Response:
        bundle = await request.json()
        self.bundles.append(bundle)
        self.auth.append(request.headers.get("Authorization", ""))
        if self.responders:
            return self.responders.pop(0)(bundle)
        return created(bundle)

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.tokens.append({k: str(v) for k, v in form.items()})
        claims = jwt.decode(
            form["client_assertion"],
            self.public_key,
            algorithms=["RS384", "ES384"],
            audience=f"{self.url}/token",
        )
        assert claims["iss"] == claims["sub"] == "hub-client"
        return web.json_response(
            {"access_token": self.issued, "expires_in": 300, "token_type": "bearer"}
        )


def created(bundle: dict[str, Any]) -> web.Response:
    entries = [{"response": {"status": "201 Created"}} for _ in bundle["entry"]]
    return web.json_response(
        {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    )


def status(code: int, headers: dict[str, str] | None = None, body: Any = None) -> Responder:
    def respond(_bundle: dict[str, Any]) -> web.Response:
        return web.json_response(body or {}, status=code, headers=headers)

    return respond


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/fhir/", rec.transaction)
    app.router.add_post("/token", rec.token)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    rec.url = str(server.make_url("")).rstrip("/")
    try:
        yield rec
    finally:
        await server.close()


def meta(kind: str, sid: str, source: str = "fhir:hospital-x") -> RecordMeta:
    return RecordMeta(
        kind, SourceKey(source, sid), "hospital-x", Provenance("t", datetime.now(UTC), "h"), "1"
    )


def client_record(sid: str, family: str = "Testperson") -> Client:
    return Client(
        meta=meta("client", sid),
        identifiers=(Identifier(MRN_SYSTEM, sid, "MR"),),
        names=(HumanName(family, ("Ada",)),),
    )


def delivery(record: Record, options: dict[str, Any], n: int = 1) -> Delivery:
    return Delivery(n, "feed", "cie-211", f"key-{n}", record, record_payload(record), options)


async def test_fhir_push_delivers_conditional_updates(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "partner-secret")
    options = {
        "base_url": f"{receiver.url}/fhir",
        "auth": {"type": "bearer", "token_env": TOKEN_ENV},
    }
    referral = Referral(
        meta=meta("referral", "t-1", "fhir"),
        client=SourceKey("fhir:hospital-x", "MRN-1"),
        status="requested",
        requester="hospital-x",
        performer="cie-211",
    )
    sink = FhirPushSink()
    try:
        outcomes = await sink.deliver(
            [delivery(client_record("MRN-1"), options, 1), delivery(referral, options, 2)]
        )
    finally:
        await sink.close()
    assert [o.ok for o in outcomes] == [True, True]
    assert receiver.auth == ["Bearer partner-secret"]
    bundle = receiver.bundles[0]
    Bundle.model_validate(bundle)
    assert bundle["type"] == "transaction"
    methods = [(e["request"]["method"], e["request"]["url"].split("?")[0]) for e in bundle["entry"]]
    assert methods == [("PUT", "Patient"), ("PUT", "ServiceRequest"), ("PUT", "Task")]
    patient = bundle["entry"][0]["resource"]
    token = bundle["entry"][0]["request"]["url"].split("|")[1]
    assert {"system": "urn:cie-hub:record", "value": token} in patient["identifier"]
    task = bundle["entry"][2]["resource"]
    assert task["focus"] == {"reference": bundle["entry"][1]["fullUrl"]}
    assert task["for"]["identifier"]["system"] == "urn:cie-hub:record"
    assert task["owner"] == {"identifier": {"system": "urn:cie-hub:agency", "value": "cie-211"}}


async def test_fhir_push_retries_on_429_and_500(receiver: Receiver) -> None:
    options = {"base_url": f"{receiver.url}/fhir"}
    receiver.responders = [status(429, {"Retry-After": "7"}), status(503)]
    sink = FhirPushSink()
    try:
        (throttled,) = await sink.deliver([delivery(client_record("MRN-2"), options)])
        (failed,) = await sink.deliver([delivery(client_record("MRN-2"), options)])
        (ok,) = await sink.deliver([delivery(client_record("MRN-2"), options)])
    finally:
        await sink.close()
    assert (throttled.ok, throttled.retry, throttled.retry_after) == (False, True, 7.0)
    assert (failed.ok, failed.retry) == (False, True)
    assert ok.ok
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert parse_retry_after("²") is None


async def test_fhir_push_4xx_isolates_the_bad_record(receiver: Receiver) -> None:
    options = {"base_url": f"{receiver.url}/fhir"}

    def refuse_zebulon(bundle: dict[str, Any]) -> web.Response:
        if "Zebulon" in json.dumps(bundle):
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "invariant",
                        "diagnostics": "Patient name Zebulon is not allowed",
                        "expression": ["Patient.name[0]"],
                    }
                ],
            }
            return web.json_response(outcome, status=422)
        return created(bundle)

    receiver.responders = [refuse_zebulon] * 3
    good, bad = client_record("MRN-3"), client_record("MRN-4", family="Zebulon")
    sink = FhirPushSink()
    try:
        outcomes = await sink.deliver([delivery(good, options, 1), delivery(bad, options, 2)])
    finally:
        await sink.close()
    assert len(receiver.bundles) == 3  # the batch, then each record on its own
    assert outcomes[0].ok
    assert (outcomes[1].ok, outcomes[1].retry) == (False, False)
    assert "invariant Patient.name[0]" in outcomes[1].error
    assert "Zebulon" not in outcomes[1].error and "***" in outcomes[1].error


async def test_fhir_push_per_entry_outcomes(receiver: Receiver) -> None:
    options = {"base_url": f"{receiver.url}/fhir"}

    def second_fails(bundle: dict[str, Any]) -> web.Response:
        statuses = ["200 OK", "500 Internal Server Error"]
        entries = [{"response": {"status": s}} for s in statuses]
        return web.json_response(
            {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        )

    receiver.responders = [second_fails]
    sink = FhirPushSink()
    try:
        first, second = await sink.deliver(
            [
                delivery(client_record("MRN-5"), options, 1),
                delivery(client_record("MRN-6"), options, 2),
            ]
        )
    finally:
        await sink.close()
    assert first.ok
    assert (second.ok, second.retry) == (False, True)


async def test_fhir_push_refuses_what_it_cannot_send(receiver: Receiver) -> None:
    enrollment = Enrollment(
        meta=meta("enrollment", "E-1"), client=SourceKey("fhir:hospital-x", "MRN-7")
    )
    sink = FhirPushSink(environ={})
    try:
        (kind,) = await sink.deliver([delivery(enrollment, {"base_url": f"{receiver.url}/fhir"})])
        (plain,) = await sink.deliver(
            [delivery(client_record("MRN-7"), {"base_url": "http://192.0.2.1/fhir"})]
        )
        (secret,) = await sink.deliver(
            [
                delivery(
                    client_record("MRN-7"),
                    {
                        "base_url": f"{receiver.url}/fhir",
                        "auth": {"type": "bearer", "token_env": "NOPE"},
                    },
                )
            ]
        )
    finally:
        await sink.close()
    assert (kind.ok, kind.retry) == (False, False) and "enrollment" in kind.error
    assert (plain.ok, plain.retry) == (False, False) and "https" in plain.error
    assert (secret.ok, secret.retry) == (False, False) and "NOPE" in secret.error
    assert receiver.bundles == []


@pytest.mark.parametrize("curve", ["rsa", "ec"])
async def test_fhir_push_smart_backend_services(
    receiver: Receiver, tmp_path: Path, curve: str
) -> None:
    key = (
        rsa.generate_private_key(65537, 2048)
        if curve == "rsa"
        else ec.generate_private_key(ec.SECP384R1())
    )
    receiver.public_key = key.public_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "partner.pem").write_bytes(pem)
    options = {
        "base_url": f"{receiver.url}/fhir",
        "auth": {
            "type": "smart",
            "token_url": f"{receiver.url}/token",
            "client_id": "hub-client",
            "private_key_file": "partner.pem",
            "kid": "key-2025",
        },
    }
    receiver.responders = [created, status(401), created]
    sink = FhirPushSink(resolve=lambda p: tmp_path / p)
    try:
        (first,) = await sink.deliver([delivery(client_record("MRN-8"), options)])
        receiver.issued = "tok-2"
        (second,) = await sink.deliver([delivery(client_record("MRN-8"), options)])
    finally:
        await sink.close()
    assert first.ok and second.ok
    assert receiver.auth == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert len(receiver.tokens) == 2  # cached once, fetched again after the 401
    form = receiver.tokens[0]
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    header = jwt.get_unverified_header(form["client_assertion"])
    assert header["kid"] == "key-2025" and header["alg"] == ("RS384" if curve == "rsa" else "ES384")


async def test_fhir_push_through_the_delivery_worker(
    fhir_hub: FhirHubFactory, receiver: Receiver
) -> None:
    feed = f"""
[[feeds]]
name = "cie-fhir"
recipient = "cie-211"
kinds = ["client", "referral"]
purpose = "coordination"
connector = "fhir-push"
options = {{ base_url = "{receiver.url}/fhir" }}
"""
    async with fhir_hub(feed) as hub:
        await hub.consent("MRN-9")
        pid = await hub.post_patient("hospital-x", "MRN-9", family="Testperson")
        sr = {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{pid}"},
        }
        _, sr, _ = await hub.call("hospital-x", "POST", "ServiceRequest", sr)
        task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "focus": {"reference": f"ServiceRequest/{sr['id']}"},
            "for": {"reference": f"Patient/{pid}"},
            "owner": {"reference": "Organization/cie-211"},
        }
        assert (await hub.call("hospital-x", "POST", "Task", task))[0] == 201
        worker = DeliveryWorker(hub.ctx, collect_sinks(hub.ctx), "w-test")
        try:
            claimed = 0
            for _ in range(5):
                claimed += await worker.run_once()
        finally:
            for sink in worker.sinks.values():
                await sink.close()
        assert claimed == 2
        kinds = [e["request"]["url"].split("?")[0] for b in receiver.bundles for e in b["entry"]]
        assert kinds == ["Patient", "ServiceRequest", "Task"]
        pushed = receiver.bundles[0]["entry"][0]["resource"]
        assert pushed["name"] == [{"family": "Testperson", "given": ["Ada"]}]
        delivered = await hub.ctx.store.list_outbox(status="delivered")
        assert len(delivered) == 2
