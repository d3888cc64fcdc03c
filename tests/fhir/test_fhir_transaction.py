"""Transaction Bundles: everything in one store transaction, or nothing at all."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from plugins.fhir import patients
from tests.fhir.conftest import MRN_SYSTEM, FhirHub, FhirHubFactory, patient_json


def referral_bundle(mrn: str, owner: str = "Organization/cie-211") -> dict[str, Any]:
    """Patient + ServiceRequest + Task, linked by urn:uuid full URLs."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
                "resource": patient_json(mrn),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "active",
                    "intent": "order",
                    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                },
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "fullUrl": "urn:uuid:33333333-3333-4333-8333-333333333333",
                "resource": {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "focus": {"reference": "urn:uuid:22222222-2222-4222-8222-222222222222"},
                    "for": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                    "owner": {"reference": owner},
                },
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }


async def counts(hub: FhirHub) -> dict[str, int]:
    """Live records by kind."""
    return await hub.ctx.store.count_records()


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_fhir_transaction_creates_linked_resources(
    fhir_hub: FhirHubFactory, store: str
) -> None:
    async with fhir_hub(store=store) as hub:
        status, response, _ = await hub.call("hospital-x", "POST", "", referral_bundle("MRN-7001"))
        assert status == 200, response
        Bundle.model_validate(response)
        assert response["type"] == "transaction-response"
        statuses = [e["response"]["status"] for e in response["entry"]]
        assert statuses == ["201 Created"] * 3
        patient_loc, sr_loc, task_loc = (e["response"]["location"] for e in response["entry"])
        person = patient_loc.split("/")[1]
        task_id = task_loc.split("/")[1]
        status, task, _ = await hub.call("hospital-x", "GET", f"Task/{task_id}")
        assert task["for"] == {"reference": f"Patient/{person}"}
        assert task["focus"]["reference"] == "/".join(sr_loc.split("/")[:2])
        assert task["requester"] == {"reference": "Organization/hospital-x"}
        kinds = await counts(hub)
        assert kinds["client"] == 1 and kinds["referral"] == 1
        assert kinds["fhir.Task"] == 1 and kinds["fhir.ServiceRequest"] == 1


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_fhir_transaction_is_all_or_nothing(fhir_hub: FhirHubFactory, store: str) -> None:
    async with fhir_hub(store=store) as hub:
        before = await counts(hub)
        bundle = referral_bundle("MRN-7002", owner="Organization/no-such-agency")
        status, outcome, _ = await hub.call("hospital-x", "POST", "", bundle)
        assert status == 422
        issue = outcome["issue"][0]
        assert issue["expression"] == ["Bundle.entry[2].resource.owner"]
        assert "Bundle.entry[2]" in issue["diagnostics"]
        assert await counts(hub) == before

        bad = referral_bundle("MRN-7003")
        bad["entry"][0]["resource"]["birthDate"] = "1961-07-23x"
        bad["entry"][0]["resource"]["name"] = [{"family": "Zebulon", "given": ["Quixtanova"]}]
        status, outcome, _ = await hub.call("hospital-x", "POST", "", bad)
        assert status == 400
        assert outcome["issue"][0]["expression"] == ["Bundle.entry[0].resource.birthDate"]
        text = str(outcome)
        assert "1961-07-23" not in text and "Zebulon" not in text
        assert await counts(hub) == before


async def test_fhir_transaction_completes_a_task_with_a_procedure(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        _, response, _ = await hub.call("hospital-x", "POST", "", referral_bundle("MRN-7004"))
        await hub.consent("MRN-7004")
        person = response["entry"][0]["response"]["location"].split("/")[1]
        task_id = response["entry"][2]["response"]["location"].split("/")[1]
        status, task, _ = await hub.call("cie-211", "GET", f"Task/{task_id}")
        for step in ("accepted", "in-progress"):
            task["status"] = step
            status, task, _ = await hub.call("cie-211", "PUT", f"Task/{task_id}", task)
            assert status == 200, task
        task["status"] = "completed"
        task["output"] = [
            {"type": {"text": "resulting activity"}, "valueReference": {"reference": "urn:uuid:p1"}}
        ]
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "request": {"method": "PUT", "url": f"Task/{task_id}", "ifMatch": 'W/"3"'},
                    "resource": task,
                },
                {
                    "fullUrl": "urn:uuid:p1",
                    "request": {"method": "POST", "url": "Procedure"},
                    "resource": {
                        "resourceType": "Procedure",
                        "status": "completed",
                        "subject": {"reference": f"Patient/{person}"},
                    },
                },
            ],
        }
        status, done, _ = await hub.call("cie-211", "POST", "", bundle)
        assert status == 200, done
        assert done["entry"][0]["response"]["etag"] == 'W/"4"'
        procedure = done["entry"][1]["response"]["location"].split("/")[1]
        status, followed, _ = await hub.call("hospital-x", "GET", f"Task/{task_id}")
        assert followed["output"][0]["valueReference"]["reference"] == f"Procedure/{procedure}"
        assert (await hub.call("hospital-x", "GET", f"Procedure/{procedure}"))[0] == 200
        # the same completion again: the version moved on, 412, nothing changes
        status, conflict, _ = await hub.call("cie-211", "POST", "", bundle)
        assert status == 412 and conflict["issue"][0]["diagnostics"].startswith("Bundle.entry[0]")


async def test_fhir_transaction_conditional_update_of_patients(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        entry = {
            "resource": patient_json("MRN-7005"),
            "request": {"method": "PUT", "url": f"Patient?identifier={MRN_SYSTEM}|MRN-7005"},
        }
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
        first, r1, _ = await hub.call("hospital-x", "POST", "", bundle)
        second, r2, _ = await hub.call("hospital-x", "POST", "", bundle)
        assert (first, second) == (200, 200)
        assert r1["entry"][0]["response"]["status"] == "201 Created"
        assert r2["entry"][0]["response"]["location"] == r1["entry"][0]["response"]["location"]
        assert (await counts(hub))["client"] == 1
        # the same entry in a batch is the same conditional update: matched, not created
        batch = {**bundle, "type": "batch"}
        status, answer, _ = await hub.call("hospital-x", "POST", "", batch)
        assert status == 200 and answer["type"] == "batch-response"
        assert answer["entry"][0]["response"]["location"] == r1["entry"][0]["response"]["location"]
        assert (await counts(hub))["client"] == 1


def conditional_patients(mrns: list[tuple[str, str, str]]) -> dict[str, Any]:
    """A transaction Bundle of Patients, each created only if its MRN is not known yet."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    **patient_json(mrn, family=family),
                    "identifier": [{"system": system, "value": mrn}],
                },
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={system}|{mrn}" if system else f"identifier={mrn}",
                },
            }
            for system, mrn, family in mrns
        ],
    }


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_fhir_transaction_conditional_creates_look_up_in_one_query(
    fhir_hub: FhirHubFactory, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identifier look-ups of a Bundle's conditional creates are one query, not one per
    entry; known Patients answer 200 with their person, new ones are created."""
    async with fhir_hub(store=store) as hub:
        known = [(MRN_SYSTEM, f"MRN-81{i:02d}", f"Known{'abc'[i] * 2}") for i in range(3)]
        status, first, _ = await hub.call("hospital-x", "POST", "", conditional_patients(known))
        assert status == 200, first
        assert [e["response"]["status"] for e in first["entry"]] == ["201 Created"] * 3
        lookups: list[list[str]] = []
        real = patients.persons_with

        async def counted(ctx: Any, keys: list[str]) -> set[str]:
            lookups.append(keys)
            return await real(ctx, keys)

        monkeypatch.setattr(patients, "persons_with", counted)
        fresh = [(MRN_SYSTEM, f"MRN-82{i:02d}", f"Fresh{'ab'[i] * 2}") for i in range(2)]
        bundle = conditional_patients([*known, *fresh])
        status, second, _ = await hub.call("hospital-x", "POST", "", bundle)
        assert status == 200, second
        statuses = [e["response"]["status"] for e in second["entry"]]
        assert statuses == ["200 OK"] * 3 + ["201 Created"] * 2
        locations = [e["response"]["location"] for e in second["entry"]]
        assert locations[:3] == [e["response"]["location"] for e in first["entry"]]
        assert len(set(locations)) == 5
        assert lookups == []  # read ahead for the whole Bundle
        assert (await counts(hub))["client"] == 5


async def test_fhir_transaction_conditional_create_matching_several_fails_whole(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        two = [("urn:oid:1.2.3", "SHARED-1", "Alpha"), ("urn:oid:4.5.6", "SHARED-1", "Beta")]
        status, first, _ = await hub.call("hospital-x", "POST", "", conditional_patients(two))
        assert status == 200, first
        assert len({e["response"]["location"] for e in first["entry"]}) == 2
        before = await counts(hub)
        bundle = conditional_patients([(MRN_SYSTEM, "MRN-8301", "New"), ("", "SHARED-1", "X")])
        status, outcome, _ = await hub.call("hospital-x", "POST", "", bundle)
        assert status == 412, outcome
        assert outcome["issue"][0]["diagnostics"].startswith("Bundle.entry[1]")
        assert await counts(hub) == before
