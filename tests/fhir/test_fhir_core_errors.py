"""Errors the hub's core answers on a FHIR path (no credentials, a wrong key) are
OperationOutcomes, as every other FHIR error; other paths keep the core's JSON errors."""

from __future__ import annotations

from tests.fhir.conftest import FhirHubFactory


async def test_unauthenticated_fhir_requests_get_an_operation_outcome(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        for headers, path in (
            ({}, "/Patient/abc"),
            ({"Authorization": "Bearer hub_nosuchkey_secret"}, "/Patient?family=X"),
            ({}, ""),  # the transaction endpoint, /fhir itself
        ):
            async with hub.session.get(f"{hub.fhir}{path}", headers=headers) as r:
                body = await r.json(content_type=None)
                assert r.status == 401
                assert r.headers["Content-Type"].startswith("application/fhir+json")
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert body["resourceType"] == "OperationOutcome"
            [issue] = body["issue"]
            assert (issue["severity"], issue["code"]) == ("error", "login")
        base = hub.fhir.removesuffix("/fhir")
        async with hub.session.get(f"{base}/admin/outbox") as r:
            assert r.status == 401
            assert (await r.json())["error"] == "unauthorized"
