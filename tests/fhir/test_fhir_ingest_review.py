"""Review of the FHIR write side: transaction references, Consent → MPA mirror, mappings."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import orjson
import pytest

from plugins.fhir.ingest import ingest_bundle
from plugins.fhir.mapping import client_to_patient, patient_to_client, referral_from_fhir
from plugins.fhir.validation_pool import ValidationPool
from tests.fhir.conftest import MRN_SYSTEM, FhirHubFactory, patient_json
from tests.fhir.test_fhir_consents import ROLE, consent
from tests.fhir.test_fhir_transaction import counts, referral_bundle

SR_SYSTEM = "urn:example:referral-ids"


async def test_fhir_review_duplicate_full_urls_are_refused(fhir_hub: FhirHubFactory) -> None:
    """Two entries with one fullUrl: a Task's focus could name either, so nothing is stored."""
    async with fhir_hub() as hub:
        bundle = referral_bundle("MRN-7701")
        second = copy.deepcopy(bundle["entry"][1])
        second["resource"]["note"] = [{"text": "a second request"}]
        bundle["entry"].insert(2, second)
        status, outcome, _ = await hub.call("hospital-x", "POST", "", bundle)
        assert status == 400, outcome
        assert outcome["issue"][0]["expression"] == ["Bundle.entry[2].fullUrl"]
        assert (await counts(hub)).get("fhir.Task", 0) == 0


async def test_fhir_review_a_reference_to_a_matched_conditional_create_resolves(
    fhir_hub: FhirHubFactory,
) -> None:
    """A Patient and a ServiceRequest created conditionally that already exist: the Task
    that references their fullUrls points at the existing ones."""
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-7702")
        first = referral_bundle("MRN-7702")
        first["entry"][1]["resource"]["identifier"] = [{"system": SR_SYSTEM, "value": "R-1"}]
        first["entry"][0]["request"]["ifNoneExist"] = f"identifier={MRN_SYSTEM}|MRN-7702"
        status, body, _ = await hub.call("hospital-x", "POST", "", first)
        assert status == 200, body
        sr_location = body["entry"][1]["response"]["location"]
        again = copy.deepcopy(first)
        again["entry"][1]["request"]["ifNoneExist"] = f"identifier={SR_SYSTEM}|R-1"
        status, body, _ = await hub.call("hospital-x", "POST", "", again)
        assert status == 200, body
        patient, sr, task = (e["response"] for e in body["entry"])
        assert patient["status"] == "200 OK" and patient["location"] == f"Patient/{pid}"
        assert sr["status"] == "200 OK" and sr["location"] == sr_location
        status, stored, _ = await hub.call("hospital-x", "GET", task["location"].split("/_")[0])
        assert stored["focus"] == {"reference": "/".join(sr_location.split("/")[:2])}
        assert stored["for"] == {"reference": f"Patient/{pid}"}
        assert (await counts(hub))["fhir.ServiceRequest"] == 1


async def test_fhir_review_a_reference_to_a_conditionally_updated_patient_resolves(
    fhir_hub: FhirHubFactory,
) -> None:
    """``PUT Patient?identifier=…`` with a fullUrl that the request and Task reference."""
    async with fhir_hub() as hub:
        bundle = referral_bundle("MRN-7703")
        bundle["entry"][0]["request"] = {
            "method": "PUT",
            "url": f"Patient?identifier={MRN_SYSTEM}|MRN-7703",
        }
        status, body, _ = await hub.call("hospital-x", "POST", "", bundle)
        assert status == 200, body
        person = body["entry"][0]["response"]["location"].split("/")[1]
        task = body["entry"][2]["response"]["location"].split("/_")[0]
        status, stored, _ = await hub.call("hospital-x", "GET", task)
        assert stored["for"] == {"reference": f"Patient/{person}"}


@pytest.mark.parametrize("authored", ["2025", "2025-03"])
async def test_fhir_review_a_partial_authored_on_is_stored(
    fhir_hub: FhirHubFactory, authored: str
) -> None:
    """A valid partial dateTime in ServiceRequest.authoredOn made the referral a 500."""
    async with fhir_hub() as hub:
        bundle = referral_bundle("MRN-7704")
        bundle["entry"][1]["resource"]["authoredOn"] = authored
        status, body, _ = await hub.call("hospital-x", "POST", "", bundle)
        assert status == 200, body
        assert (await counts(hub))["referral"] == 1
    sr = {"resourceType": "ServiceRequest", "authoredOn": "2025-03"}
    assert referral_from_fhir(sr, {})["authored_on"] == "2025-03-01T00:00:00"


@pytest.mark.parametrize(
    "change",
    [
        {"status": "entered-in-error"},
        {"status": "rejected"},
        {
            "provision": {
                "type": "deny",
                "actor": [{"role": ROLE, "reference": {"reference": "Organization/cie-211"}}],
            }
        },
    ],
)
async def test_fhir_review_a_consent_updated_beyond_the_mpa_stops_sharing(
    fhir_hub: FhirHubFactory, change: dict[str, Any]
) -> None:
    """An enforced Consent updated to what the MPA cannot express (entered-in-error,
    rejected, a partial deny) must not leave the earlier permit in the gate."""
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-7705")
        body = consent({"reference": f"Patient/{pid}"})
        status, stored, headers = await hub.call("hospital-x", "POST", "Consent", body)
        assert status == 201 and headers["X-Consent-Gate"] == "applied"
        assert (await hub.call("cie-211", "GET", f"Patient/{pid}"))[0] == 200
        stored.update(change)
        status, _body, headers = await hub.call(
            "hospital-x", "PUT", f"Consent/{stored['id']}", stored
        )
        assert status == 200
        assert headers["X-Consent-Gate"].startswith("not-applied")
        assert headers["X-Consent-Gate"].endswith("the earlier version is withdrawn")
        assert (await hub.call("cie-211", "GET", f"Patient/{pid}"))[0] == 404


async def test_fhir_review_a_consent_is_not_in_force_before_its_provision_starts(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-7706")
        start = (date.today() + timedelta(days=30)).isoformat()
        body = consent({"reference": f"Patient/{pid}"}, period={"start": start})
        status, _stored, headers = await hub.call("hospital-x", "POST", "Consent", body)
        assert status == 201 and headers["X-Consent-Gate"] == "applied"
        assert (await hub.call("cie-211", "GET", f"Patient/{pid}"))[0] == 404


def test_fhir_review_us_core_ethnicity_keeps_its_omb_code() -> None:
    """A partner's US Core ethnicity (code + display text) maps to the CDC code the other
    connectors use; the hub's own source values still round-trip."""
    patient = patient_json("MRN-7707")
    patient["extension"] = [
        {
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
            "extension": [
                {
                    "url": "ombCategory",
                    "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2186-5"},
                },
                {"url": "text", "valueString": "Not Hispanic or Latino"},
            ],
        }
    ]
    assert patient_to_client(patient)["ethnicity"] == "2186-5"
    for value in ("1", "N", "2135-2", "99", "Hispanic or Latino"):
        assert patient_to_client(client_to_patient({"ethnicity": value}))["ethnicity"] == value


def _patients_bundle(n: int) -> dict[str, Any]:
    entries = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
            "resource": patient_json(f"MRN-P{i}", family=f"Bulk{i}"),
            "request": {"method": "POST", "url": "Patient"},
        }
        for i in range(n)
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def test_fhir_review_1000_patients_through_the_pool_with_references(
    hub_factory: Callable[..., Any],
) -> None:
    """1,000 Patients validated in a worker while stored; the last one a conditional create
    of a stored Patient that a ServiceRequest in the Bundle references by fullUrl."""
    async with hub_factory() as ctx:
        pool = ValidationPool(ctx, 1)
        await pool.start()
        try:
            await ingest_bundle(ctx, "hospital-x", orjson.dumps(_patients_bundle(1)))
            bundle = _patients_bundle(1000)
            last = bundle["entry"][-1]
            last["resource"] = patient_json("MRN-P0", family="Bulk0")
            last["request"]["ifNoneExist"] = f"identifier={MRN_SYSTEM}|MRN-P0"
            bundle["entry"].append(
                {
                    "fullUrl": "urn:uuid:99999999-0000-4000-8000-000000000000",
                    "resource": {
                        "resourceType": "ServiceRequest",
                        "status": "active",
                        "intent": "order",
                        "subject": {"reference": last["fullUrl"]},
                    },
                    "request": {"method": "POST", "url": "ServiceRequest"},
                }
            )
            response = await ingest_bundle(ctx, "hospital-x", orjson.dumps(bundle))
        finally:
            await pool.stop()
        statuses = [e["response"]["status"] for e in response["entry"]]
        assert statuses[0] == "200 OK" and statuses[999] == "200 OK"
        assert statuses[1:999] == ["201 Created"] * 998 and statuses[1000] == "201 Created"
        assert (await ctx.store.count_records())["client"] == 999
