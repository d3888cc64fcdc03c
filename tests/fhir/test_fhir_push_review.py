"""Review of the ``fhir-push`` sink against a real local partner server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from plugins.fhir.push import FhirPushSink
from tests.fhir import test_fhir_push
from tests.fhir.test_fhir_push import Receiver, client_record, delivery

receiver = test_fhir_push.receiver
"""The partner FHIR server fixture of the push tests."""


async def test_fhir_push_review_a_redirect_is_not_a_delivery() -> None:
    """A partner that moved answers 301: following it re-sent the POST as a GET, whose 200
    marked the record delivered though nothing was stored."""
    app = web.Application()

    async def moved(_request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location="/elsewhere")

    async def elsewhere(_request: web.Request) -> web.Response:
        return web.json_response({"resourceType": "CapabilityStatement"})

    app.router.add_post("/fhir/", moved)
    app.router.add_route("*", "/elsewhere", elsewhere)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    sink = FhirPushSink()
    try:
        options = {"base_url": str(server.make_url("/fhir"))}
        (outcome,) = await sink.deliver([delivery(client_record("MRN-7801"), options)])
    finally:
        await sink.close()
        await server.close()
    assert (outcome.ok, outcome.retry) == (False, False)
    assert "301" in outcome.error


async def test_fhir_push_review_partner_diagnostics_never_reach_the_error(
    receiver: Receiver,
) -> None:
    """The partner's free text (its own records of other people, short names) is withheld;
    codes and plain element paths are kept."""

    def refuse(_bundle: dict[str, Any]) -> web.Response:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "duplicate",
                    "diagnostics": "matches patient Wu, Li born 1975-02-03 SSN 123-45-6789",
                    "expression": ["Patient.name.where(family='Wu')", "Patient.birthDate"],
                }
            ],
        }
        return web.json_response(outcome, status=409)

    receiver.responders = [refuse]
    sink = FhirPushSink()
    try:
        options = {"base_url": f"{receiver.url}/fhir"}
        (outcome,) = await sink.deliver([delivery(client_record("MRN-7802", "Wu"), options)])
    finally:
        await sink.close()
    assert (outcome.ok, outcome.retry) == (False, False)
    assert outcome.error.startswith("HTTP 409: duplicate")
    assert "Patient.birthDate" in outcome.error
    for text in ("Wu", "Li", "1975", "6789", "family"):
        assert text not in outcome.error, outcome.error


async def test_fhir_push_review_entry_status_text_is_not_copied(receiver: Receiver) -> None:
    def answer(_bundle: dict[str, Any]) -> web.Response:
        entry = {"response": {"status": "422 Patient Zed Quux born 1975-02-03 rejected"}}
        return web.json_response(
            {"resourceType": "Bundle", "type": "transaction-response", "entry": [entry]}
        )

    receiver.responders = [answer]
    sink = FhirPushSink()
    try:
        options = {"base_url": f"{receiver.url}/fhir"}
        (outcome,) = await sink.deliver([delivery(client_record("MRN-7803"), options)])
    finally:
        await sink.close()
    assert (outcome.ok, outcome.retry) == (False, False)
    assert outcome.error == "fhir-push: entry answered 422"


async def test_fhir_push_review_refused_credentials_do_not_split_the_batch(
    receiver: Receiver, monkeypatch: Any
) -> None:
    """A 401 is about the credentials, not a record: one request, not one per record."""
    monkeypatch.setenv("HUB_TEST_FHIR_REVIEW_TOKEN", "stale")
    options = {
        "base_url": f"{receiver.url}/fhir",
        "auth": {"type": "bearer", "token_env": "HUB_TEST_FHIR_REVIEW_TOKEN"},
    }
    receiver.responders = [lambda _b: web.json_response({}, status=401)] * 10
    sink = FhirPushSink()
    try:
        outcomes = await sink.deliver(
            [delivery(client_record(f"MRN-78{i}"), options, i) for i in range(5)]
        )
    finally:
        await sink.close()
    assert len(receiver.bundles) == 1
    assert all((o.ok, o.retry) == (False, False) and "401" in o.error for o in outcomes)


async def test_fhir_push_review_smart_token_url_must_be_https(tmp_path: Path) -> None:
    """The access token would come back in clear from an http token endpoint."""
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "k.pem").write_bytes(pem)
    options = {
        "base_url": "https://partner.invalid/fhir",
        "auth": {
            "type": "smart",
            "token_url": "http://auth.invalid/token",
            "client_id": "hub",
            "private_key_file": "k.pem",
            "kid": "k1",
        },
    }
    sink = FhirPushSink(resolve=lambda p: tmp_path / p)
    try:
        (outcome,) = await sink.deliver([delivery(client_record("MRN-7804"), options)])
    finally:
        await sink.close()
    assert (outcome.ok, outcome.retry) == (False, False)
    assert "options.auth.token_url must use https" in outcome.error
