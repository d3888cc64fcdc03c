"""Bad input gets an OperationOutcome naming the element: never a trace, never client data."""

from __future__ import annotations

import json
from typing import Any

from tests.fhir.conftest import FhirHub, FhirHubFactory, patient_json

SMALL_BODY = """
[http]
max_body_bytes = 4096
"""


def assert_outcome(body: Any, *expressions: str) -> None:
    """An OperationOutcome with these element expressions, free of traces and test data."""
    assert body["resourceType"] == "OperationOutcome"
    text = json.dumps(body)
    for needle in ("Traceback", "Zebulon", "Quixtanova", "1961-07-23", 'File "'):
        assert needle not in text
    got = [e for issue in body["issue"] for e in issue.get("expression", [])]
    for expression in expressions:
        assert expression in got, (expression, got)


async def patient_and_request(hub: FhirHub) -> tuple[str, str]:
    pid = await hub.post_patient("hospital-x", "MRN-8001")
    sr = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
    }
    status, body, _ = await hub.call("hospital-x", "POST", "ServiceRequest", sr)
    assert status == 201
    return pid, body["id"]


async def test_fhir_malformed_json_and_media_type(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        status, body, _ = await hub.call("hospital-x", "POST", "Patient", raw=b'{"resourceType": ')
        assert status == 400
        assert_outcome(body)
        assert "not valid JSON" in body["issue"][0]["diagnostics"]
        status, body, _ = await hub.call(
            "hospital-x",
            "POST",
            "Patient",
            raw=b"<Patient/>",
            headers={"Content-Type": "application/xml"},
        )
        assert status == 415
        assert_outcome(body)


async def test_fhir_wrong_resource_type_and_r5_elements(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        status, body, _ = await hub.call("hospital-x", "POST", "Task", patient_json("MRN-8002"))
        assert status == 400
        assert_outcome(body, "Task.resourceType")
        pid, sr_id = await patient_and_request(hub)
        r5_task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "focus": {"reference": f"ServiceRequest/{sr_id}"},
            "for": {"reference": f"Patient/{pid}"},
            "owner": {"reference": "Organization/cie-211"},
            "requestedPerformer": [{"concept": {"text": "social worker"}}],  # R5 only
        }
        status, body, _ = await hub.call("hospital-x", "POST", "Task", r5_task)
        assert status == 400
        assert_outcome(body, "Task.requestedPerformer")
        assert "not part of FHIR R4" in body["issue"][0]["diagnostics"]
        r5_consent = {"resourceType": "Consent", "status": "active", "decision": "permit"}
        status, body, _ = await hub.call("hospital-x", "POST", "Consent", r5_consent)
        assert status == 400
        assert_outcome(body, "Consent.decision")
        status, body, _ = await hub.call(
            "hospital-x",
            "POST",
            "",
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": {"resourceType": "ActorDefinition"},
                        "request": {"method": "POST", "url": "ActorDefinition"},
                    }
                ],
            },
        )
        assert status == 400
        assert_outcome(body, "Bundle.entry[0].resource.resourceType")


async def test_fhir_bad_codes_and_values(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid, sr_id = await patient_and_request(hub)
        bad_status = {
            "resourceType": "Task",
            "status": "bogus",
            "intent": "order",
            "focus": {"reference": f"ServiceRequest/{sr_id}"},
            "for": {"reference": f"Patient/{pid}"},
            "owner": {"reference": "Organization/cie-211"},
        }
        status, body, _ = await hub.call("hospital-x", "POST", "Task", bad_status)
        assert status == 400
        assert_outcome(body, "Task.status")
        private = patient_json(
            "MRN-8003", family="Zebulon", given="Quixtanova", birthDate="1961-07-23x"
        )
        status, body, _ = await hub.call("hospital-x", "POST", "Patient", private)
        assert status == 400
        assert_outcome(body, "Patient.birthDate")


async def test_fhir_unknown_references(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid, sr_id = await patient_and_request(hub)
        task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "focus": {"reference": f"ServiceRequest/{sr_id}"},
            "for": {"reference": f"Patient/{pid}"},
            "owner": {"reference": "Organization/not-an-agency"},
        }
        status, body, _ = await hub.call("hospital-x", "POST", "Task", task)
        assert status == 422
        assert_outcome(body, "Task.owner")
        task["owner"] = {"reference": "Organization/cie-211"}
        task["for"] = {"reference": "Patient/" + "f" * 32}
        status, body, _ = await hub.call("hospital-x", "POST", "Task", task)
        assert status == 422
        assert_outcome(body, "Task.for")
        # a Patient the caller may not see is as unknown as one that does not exist
        task["for"] = {"reference": f"Patient/{pid}"}
        status, body, _ = await hub.call("cie-211", "POST", "Task", task)
        assert status == 422
        assert_outcome(body, "Task.focus")
        task["focus"] = {"reference": "ServiceRequest/nope"}
        status, body, _ = await hub.call("hospital-x", "POST", "Task", task)
        assert status == 422
        assert_outcome(body, "Task.focus")
        assert (await hub.ctx.store.count_records()).get("fhir.Task", 0) == 0


async def test_fhir_oversized_body_is_an_operation_outcome(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub(SMALL_BODY) as hub:
        big = patient_json("MRN-8004")
        big["name"][0]["given"] = ["x" * 100] * 100
        status, body, headers = await hub.call("hospital-x", "POST", "Patient", big)
        assert status == 413
        assert headers["Content-Type"].startswith("application/fhir+json")
        assert_outcome(body)
        assert body["issue"][0]["code"] == "too-costly"


async def test_fhir_unknown_paths_and_methods(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        status, body, _ = await hub.call("hospital-x", "GET", "NotAThing/1")
        assert status == 404
        assert_outcome(body)
        status, body, _ = await hub.call("hospital-x", "DELETE", "Task/1")
        assert status == 405
        assert_outcome(body)
        status, body, _ = await hub.call(
            "hospital-x",
            "GET",
            "Task",
            params={"bogus": "1"},
            headers={"Prefer": "handling=strict"},
        )
        assert status == 400
        assert_outcome(body)
        status, body, _ = await hub.call("hospital-x", "GET", "Task", params={"bogus": "1"})
        assert status == 200 and body["total"] == 0
        status, body, _ = await hub.call(
            "hospital-x", "GET", "Patient/x", headers={"X-Purpose-Of-Use": "GOSSIP"}
        )
        assert status == 400
        assert_outcome(body)
