"""Consents posted to /fhir/Consent: enforced by the gate when the MPA can express them,
and offered to the LEAP-compatible consult either way."""

from __future__ import annotations

from typing import Any

from plugins.fhir.consents import fhir_consents_for
from tests.fhir.conftest import MRN_SYSTEM, FhirHub, FhirHubFactory

SCOPE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
    ]
}
ROLE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
    ]
}
CATEGORY = [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]


def consent(patient: dict[str, Any], **provision: Any) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": SCOPE,
        "category": CATEGORY,
        "patient": patient,
        "dateTime": "2025-01-10",
        "provision": {"type": "permit", **provision},
    }


async def consult(hub: FhirHub, agency: str, mrn: str, actor: str) -> str:
    body = {
        "hook": "patient-consent-consult",
        "hookInstance": "t-1",
        "context": {
            "patientId": [{"system": MRN_SYSTEM, "value": mrn}],
            "scope": "patient-privacy",
            "purposeOfUse": "TREAT",
            "actor": [{"system": "urn:cie-hub:agency", "value": actor}],
        },
    }
    async with hub.session.post(
        f"{hub.url}/cds-services/patient-consent-consult", json=body, headers=hub.headers(agency)
    ) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["cards"][0]["summary"])


async def test_fhir_posted_consent_is_enforced_by_the_gate(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9001")
        assert (await hub.call("cie-211", "GET", f"Patient/{pid}"))[0] == 404
        status, stored, headers = await hub.call(
            "hospital-x", "POST", "Consent", consent({"reference": f"Patient/{pid}"})
        )
        assert status == 201, stored
        assert headers["X-Consent-Gate"] == "applied"
        assert stored["patient"]["identifier"] == {"system": MRN_SYSTEM, "value": "MRN-9001"}
        assert stored["organization"] == [{"reference": "Organization/hospital-x"}]
        assert (await hub.call("cie-211", "GET", f"Patient/{pid}"))[0] == 200
        assert (await hub.call("hospital-x", "GET", f"Consent/{stored['id']}"))[0] == 200
        assert (await hub.call("cie-211", "GET", f"Consent/{stored['id']}"))[0] == 404

        stored["status"] = "inactive"  # the client withdraws
        status, _revoked, headers = await hub.call(
            "hospital-x", "PUT", f"Consent/{stored['id']}", stored, headers={"If-Match": 'W/"1"'}
        )
        assert status == 200 and headers["X-Consent-Gate"] == "applied"
        assert (await hub.call("cie-211", "GET", f"Patient/{pid}"))[0] == 404


async def test_fhir_consents_for_the_consult(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        assert hub.ctx.extras["fhir_consents_for"] is fhir_consents_for
        await hub.post_patient("hospital-x", "MRN-9002")  # the hospital serves this client
        leap = consent(
            {"identifier": {"system": MRN_SYSTEM, "value": "MRN-9002"}},
            provision=[
                {
                    "type": "deny",
                    "actor": [{"role": ROLE, "reference": {"reference": "Organization/cie-211"}}],
                }
            ],
        )
        status, stored, headers = await hub.call("hospital-x", "POST", "Consent", leap)
        assert status == 201 and headers["X-Consent-Gate"] == "applied"
        found = await fhir_consents_for(hub.ctx, [(MRN_SYSTEM, "MRN-9002")])
        assert [c["id"] for c in found] == [stored["id"]]
        assert found[0]["patient"]["identifier"] == {"system": MRN_SYSTEM, "value": "MRN-9002"}
        assert await fhir_consents_for(hub.ctx, [(MRN_SYSTEM, "MRN-other")]) == []
        assert await consult(hub, "hospital-x", "MRN-9002", "cie-211") == "CONSENT_DENY"
        assert await consult(hub, "hospital-x", "MRN-9002", "hospital-x") == "CONSENT_PERMIT"
        assert await consult(hub, "hospital-x", "MRN-none", "hospital-x") == "NO_CONSENT"


async def test_fhir_consent_only_for_a_client_the_agency_serves(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        await hub.post_patient("hospital-x", "MRN-9010")
        for mrn in ("MRN-9010", "MRN-never-seen"):
            body = consent({"identifier": {"system": MRN_SYSTEM, "value": mrn}})
            status, outcome, _ = await hub.call("cie-211", "POST", "Consent", body)
            assert status == 403, mrn
            assert outcome["resourceType"] == "OperationOutcome"
            assert "serves" in outcome["issue"][0]["diagnostics"]
        assert await fhir_consents_for(hub.ctx, [(MRN_SYSTEM, "MRN-9010")]) == []


async def test_fhir_consent_the_gate_cannot_enforce(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9003")
        partial = consent(
            {"reference": f"Patient/{pid}"},
            provision=[{"type": "deny", "class": [{"code": "Observation"}]}],
        )
        status, stored, headers = await hub.call("hospital-x", "POST", "Consent", partial)
        assert status == 201
        assert headers["X-Consent-Gate"].startswith("not-applied; provision.provision[0].class")
        assert (await hub.call("cie-211", "GET", f"Patient/{pid}"))[0] == 404
        found = await fhir_consents_for(hub.ctx, [(MRN_SYSTEM, "MRN-9003")])
        assert [c["id"] for c in found] == [stored["id"]]


async def test_fhir_request_carries_its_consent(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9004")
        _, stored, _ = await hub.call(
            "hospital-x", "POST", "Consent", consent({"reference": f"Patient/{pid}"})
        )
        request = {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{pid}"},
            "supportingInfo": [{"reference": f"Consent/{stored['id']}"}],
        }
        status, sr, _ = await hub.call("hospital-x", "POST", "ServiceRequest", request)
        assert status == 201
        task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "focus": {"reference": f"ServiceRequest/{sr['id']}"},
            "for": {"reference": f"Patient/{pid}"},
            "owner": {"reference": "Organization/cie-211"},
        }
        status, made, _ = await hub.call("hospital-x", "POST", "Task", task)
        assert status == 201
        async with hub.ctx.store.transaction() as tx:
            row = await tx.get_record("referral", "fhir", made["id"])
        assert row is not None
        assert f'"consent_ref":"Consent/{stored["id"]}"'.encode() in row.payload
        # the performing partner may follow the request to its consent
        assert (await hub.call("cie-211", "GET", f"Consent/{stored['id']}"))[0] == 200
        assert (await hub.call("shelter-a", "GET", f"Consent/{stored['id']}"))[0] == 404
        bad = {**request, "supportingInfo": [{"reference": "Consent/unknown"}]}
        status, body, _ = await hub.call("hospital-x", "POST", "ServiceRequest", bad)
        assert status == 422
        assert body["issue"][0]["expression"] == ["ServiceRequest.supportingInfo[0]"]
