"""Done-when: a Gravity closed-loop referral with fhirpy (unmodified) against the real hub.

The hospital refers a patient (ServiceRequest + Task) to the 211 agency; 211 polls for its
requested Tasks, accepts, starts and completes the Task with a Procedure; the hospital follows
everything. A partner the client's consent excludes gets 404 for the Patient, with the same
body as for a Patient that does not exist.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

from tests.fhir.conftest import FhirHub, FhirHubFactory


def client(hub: FhirHub, agency: str) -> AsyncFHIRClient:
    """fhirpy as a partner would use it: base URL and an Authorization header."""
    return AsyncFHIRClient(hub.fhir, authorization=f"Bearer {hub.keys[agency]}")


async def referral(hospital: AsyncFHIRClient, patient_id: str) -> tuple[Any, Any]:
    """The hospital posts a ServiceRequest, then the Task that manages it."""
    sr = hospital.resource(
        "ServiceRequest",
        status="active",
        intent="order",
        code={"coding": [{"system": "http://snomed.info/sct", "code": "464131000124100"}]},
        subject={"reference": f"Patient/{patient_id}"},
        requester={"reference": "Organization/hospital-x"},
        performer=[{"reference": "Organization/cie-211"}],
    )
    await sr.save()
    task = hospital.resource(
        "Task",
        status="requested",
        intent="order",
        code={
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        focus={"reference": f"ServiceRequest/{sr.id}"},
        **{"for": {"reference": f"Patient/{patient_id}"}},
        requester={"reference": "Organization/hospital-x"},
        owner={"reference": "Organization/cie-211"},
    )
    await task.save()
    return sr, task


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_fhir_closed_loop_referral(fhir_hub: FhirHubFactory, store: str) -> None:
    async with fhir_hub(store=store) as hub:
        patient_id = await hub.post_patient("hospital-x", "MRN-1001")
        await hub.consent("MRN-1001", exclude_agencies=["shelter-a"])
        hospital, cbo, other = (client(hub, a) for a in ("hospital-x", "cie-211", "shelter-a"))

        sr, task = await asyncio.wait_for(referral(hospital, patient_id), 10)
        assert task["meta"]["versionId"] == "1"

        polled = (
            await cbo.resources("Task")
            .search(owner="Organization/cie-211", status="requested")
            .fetch_all()
        )
        assert [t.id for t in polled] == [task.id]
        mine = polled[0]
        assert mine["for"]["reference"] == f"Patient/{patient_id}"
        request = await cbo.reference("ServiceRequest", sr.id).to_resource()
        assert request["code"]["coding"][0]["code"] == "464131000124100"
        seen = await cbo.resources("Patient").search(_id=patient_id).fetch()
        assert seen and seen[0]["name"][0]["family"] == "Testperson"

        for status in ("accepted", "in-progress"):
            mine["status"] = status
            await mine.save()
        procedure = cbo.resource(
            "Procedure",
            status="completed",
            code={"text": "food pantry enrollment"},
            subject={"reference": f"Patient/{patient_id}"},
            basedOn=[{"reference": f"ServiceRequest/{sr.id}"}],
        )
        await procedure.save()
        mine["status"] = "completed"
        mine["output"] = [
            {
                "type": {"text": "resulting activity"},
                "valueReference": {"reference": f"Procedure/{procedure.id}"},
            }
        ]
        await mine.save()
        assert mine["meta"]["versionId"] == "4"

        followed = await hospital.reference("Task", task.id).to_resource()
        assert followed["status"] == "completed"
        done = followed["output"][0]["valueReference"]["reference"]
        assert done == f"Procedure/{procedure.id}"
        result = await hospital.reference("Procedure", procedure.id).to_resource()
        assert result["status"] == "completed"
        assert (await hospital.reference("Patient", patient_id).to_resource())["id"] == patient_id

        # the canonical Referral follows the Task
        async with hub.ctx.store.transaction() as tx:
            row = await tx.get_record("referral", "fhir", task.id)
        assert row is not None and b'"completed"' in row.payload

        # a partner the consent excludes: 404, the same as a Patient that does not exist
        s1, hidden, _ = await hub.call("shelter-a", "GET", f"Patient/{patient_id}")
        s2, missing, _ = await hub.call("shelter-a", "GET", "Patient/" + "0" * 32)
        assert (s1, s2) == (404, 404)
        assert hidden == missing
        with pytest.raises(ResourceNotFound):
            await other.reference("Patient", patient_id).to_resource()
        with pytest.raises(ResourceNotFound):
            await other.reference("Task", task.id).to_resource()
        assert await other.resources("Task").search(owner="Organization/cie-211").fetch() == []
        assert json.dumps(hidden).find("Testperson") == -1


async def test_fhir_task_transition_rules(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        patient_id = await hub.post_patient("hospital-x", "MRN-1002")
        await hub.consent("MRN-1002")
        hospital, cbo = client(hub, "hospital-x"), client(hub, "cie-211")
        _sr, task = await referral(hospital, patient_id)
        mine = await cbo.reference("Task", task.id).to_resource()

        mine["status"] = "completed"  # requested → completed skips steps
        with pytest.raises(OperationOutcome) as skipped:
            await mine.save()
        assert "requested -> completed" in str(skipped.value)
        status, body, _ = await hub.call(
            "cie-211", "PUT", f"Task/{task.id}", {**dict(mine.serialize()), "status": "completed"}
        )
        assert status == 409
        assert body["issue"][0]["expression"] == ["Task.status"]

        theirs = await hospital.reference("Task", task.id).to_resource()
        theirs["status"] = "accepted"  # only the owner accepts
        status, body, _ = await hub.call("hospital-x", "PUT", f"Task/{task.id}", theirs.serialize())
        assert status == 403
        theirs["status"] = "cancelled"  # the requester may cancel
        await theirs.save()
        mine = await cbo.reference("Task", task.id).to_resource()
        assert mine["status"] == "cancelled"
        mine["status"] = "in-progress"  # nothing leaves cancelled
        status, _, _ = await hub.call("cie-211", "PUT", f"Task/{task.id}", mine.serialize())
        assert status == 409
