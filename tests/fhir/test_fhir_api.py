"""The FHIR REST API over a real server: metadata, Organizations, Patients, versions, paging."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.patient import Patient

from tests.fhir.conftest import MRN_SYSTEM, FhirHub, FhirHubFactory, patient_json


def service_request(patient_id: str, **extra: Any) -> dict[str, Any]:
    """A minimal referral request of hospital-x to cie-211."""
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "performer": [{"reference": "Organization/cie-211"}],
        **extra,
    }


def task(patient_id: str, sr_id: str, **extra: Any) -> dict[str, Any]:
    """A referral management Task of hospital-x for cie-211."""
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "focus": {"reference": f"ServiceRequest/{sr_id}"},
        "for": {"reference": f"Patient/{patient_id}"},
        "owner": {"reference": "Organization/cie-211"},
        **extra,
    }


async def new_referral(hub: FhirHub, patient_id: str, **task_extra: Any) -> tuple[str, str]:
    """(ServiceRequest id, Task id) of a fresh referral."""
    status, sr, _ = await hub.call(
        "hospital-x", "POST", "ServiceRequest", service_request(patient_id)
    )
    assert status == 201, sr
    status, t, _ = await hub.call(
        "hospital-x", "POST", "Task", task(patient_id, sr["id"], **task_extra)
    )
    assert status == 201, t
    return sr["id"], t["id"]


async def test_fhir_metadata_is_a_capability_statement(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        status, body, headers = await hub.call("cie-211", "GET", "metadata")
        assert status == 200
        assert headers["Content-Type"].startswith("application/fhir+json")
        statement = CapabilityStatement.model_validate(body)
        assert statement.fhirVersion == "4.0.1"
        types = {r["type"]: r for r in body["rest"][0]["resource"]}
        assert set(types) == {
            "Patient",
            "Organization",
            "ServiceRequest",
            "Task",
            "Procedure",
            "Consent",
        }
        task_params = {p["name"] for p in types["Task"]["searchParam"]}
        assert {"owner", "status", "_lastUpdated", "patient", "focus", "requester"} <= task_params
        assert body["rest"][0]["interaction"] == [{"code": "transaction"}, {"code": "batch"}]
        async with hub.session.get(f"{hub.fhir}/metadata") as resp:
            assert resp.status == 401  # the API needs a key


async def test_fhir_organizations_are_the_agencies(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        status, org, _ = await hub.call("cie-211", "GET", "Organization/hospital-x")
        assert status == 200 and org["name"] == "Hospital X"
        assert {"system": "urn:cie-hub:agency", "value": "hospital-x"} in org["identifier"]
        status, found, _ = await hub.call("cie-211", "GET", "Organization", params={"name": "shel"})
        assert [e["resource"]["id"] for e in found["entry"]] == ["shelter-a"]
        status, body, _ = await hub.call("cie-211", "GET", "Organization/nope")
        assert status == 404 and body["resourceType"] == "OperationOutcome"


async def test_fhir_patient_create_read_and_search(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        status, created, headers = await hub.call(
            "hospital-x", "POST", "Patient", patient_json("MRN-2001", family="Östlund")
        )
        assert status == 201
        Patient.model_validate(created)
        pid = created["id"]
        assert headers["Location"].endswith(f"/Patient/{pid}")
        again, _, _ = await hub.call(
            "hospital-x", "POST", "Patient", patient_json("MRN-2001", family="Östlund")
        )
        assert again == 200  # the same record of the same partner: updated, not duplicated
        status, same, _ = await hub.call(
            "hospital-x",
            "POST",
            "Patient",
            patient_json("MRN-2001", family="Other"),
            headers={"If-None-Exist": f"identifier={MRN_SYSTEM}|MRN-2001"},
        )
        assert status == 200 and same["id"] == pid

        for params in (
            {"identifier": f"{MRN_SYSTEM}|MRN-2001"},
            {"identifier": "MRN-2001"},
            {"name": "ostlund"},
            {"name": "Ada Östlund"},
            {"family": "Öst", "birthdate": "1980-04-05"},
            {"birthdate": "ge1980-01-01"},
        ):
            status, bundle, _ = await hub.call("hospital-x", "GET", "Patient", params=params)
            assert status == 200, (params, bundle)
            Bundle.model_validate(bundle)
            assert [e["resource"]["id"] for e in bundle["entry"]] == [pid], params
        status, none, _ = await hub.call(
            "hospital-x", "GET", "Patient", params={"birthdate": "1999"}
        )
        assert none["total"] == 0
        # without a consent another partner finds nothing (not even by identifier)
        status, other, _ = await hub.call(
            "cie-211", "GET", "Patient", params={"identifier": f"{MRN_SYSTEM}|MRN-2001"}
        )
        assert (other["total"] == 0 and "entry" not in other) or other["entry"] == []


async def test_fhir_if_match_and_etags(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-3001")
        await hub.consent("MRN-3001")
        sr_id, _ = await new_referral(hub, pid)
        status, sr, headers = await hub.call("hospital-x", "GET", f"ServiceRequest/{sr_id}")
        assert headers["ETag"] == 'W/"1"'
        sr["priority"] = "urgent"
        status, updated, headers = await hub.call(
            "hospital-x", "PUT", f"ServiceRequest/{sr_id}", sr, headers={"If-Match": 'W/"1"'}
        )
        assert status == 200 and headers["ETag"] == 'W/"2"'
        assert updated["meta"]["versionId"] == "2"
        status, body, headers = await hub.call(
            "hospital-x", "PUT", f"ServiceRequest/{sr_id}", sr, headers={"If-Match": 'W/"1"'}
        )
        assert status == 412
        assert body["resourceType"] == "OperationOutcome" and headers["ETag"] == 'W/"2"'
        status, body, _ = await hub.call("cie-211", "PUT", f"ServiceRequest/{sr_id}", sr)
        assert status == 403  # a party may read the request, only its requester may change it


async def test_fhir_paging_with_next_links(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-4001")
        await hub.consent("MRN-4001")
        made = [(await new_referral(hub, pid))[1] for _ in range(5)]
        seen: list[str] = []
        status, page, _ = await hub.call(
            "cie-211", "GET", "Task", params={"owner": "Organization/cie-211", "_count": "2"}
        )
        pages = 1
        while True:
            assert status == 200 and page["total"] == 5
            seen += [e["resource"]["id"] for e in page["entry"]]
            following = [link["url"] for link in page["link"] if link["relation"] == "next"]
            if not following:
                break
            async with hub.session.get(following[0], headers=hub.headers("cie-211")) as resp:
                status, page = resp.status, await resp.json(content_type=None)
            pages += 1
        assert pages == 3 and seen == made
        status, newest, _ = await hub.call(
            "cie-211", "GET", "Task", params={"_sort": "-_lastUpdated", "_count": "1"}
        )
        assert newest["entry"][0]["resource"]["id"] == made[-1]
        status, recent, _ = await hub.call(
            "cie-211",
            "GET",
            "Task",
            params={"_lastUpdated": "gt2000-01-01", "status": "requested,accepted", "patient": pid},
        )
        assert recent["total"] == 5


async def test_fhir_conditional_create_of_a_task(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-5001")
        _status, sr, _ = await hub.call(
            "hospital-x", "POST", "ServiceRequest", service_request(pid)
        )
        ident = {"identifier": [{"system": "urn:oid:1.2.3", "value": "REF-1"}]}
        first, created, _ = await hub.call(
            "hospital-x",
            "POST",
            "Task",
            task(pid, sr["id"], **ident),
            headers={"If-None-Exist": "identifier=urn:oid:1.2.3|REF-1"},
        )
        second, existing, _ = await hub.call(
            "hospital-x",
            "POST",
            "Task",
            task(pid, sr["id"], **ident),
            params={"identifier": "urn:oid:1.2.3|REF-1"},  # fhirpy's way: criteria in the URL
        )
        assert (first, second) == (201, 200)
        assert existing["id"] == created["id"]


async def test_fhir_read_rules_for_referrals(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-6001")
        sr_id, task_id = await new_referral(hub, pid)
        # no consent yet: the owner partner cannot see the referral at all
        status, _, _ = await hub.call("cie-211", "GET", f"Task/{task_id}")
        assert status == 404
        await hub.consent("MRN-6001")
        assert (await hub.call("cie-211", "GET", f"Task/{task_id}"))[0] == 200
        assert (await hub.call("cie-211", "GET", f"ServiceRequest/{sr_id}"))[0] == 200
        # a consented partner that is not a party still gets 404
        status, body, _ = await hub.call("shelter-a", "GET", f"Task/{task_id}")
        _, missing, _ = await hub.call("shelter-a", "GET", "Task/does-not-exist")
        assert status == 404 and body == missing


async def test_fhir_vread_of_the_current_version(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-3002")
        status, created, headers = await hub.call(
            "hospital-x", "POST", "ServiceRequest", service_request(pid)
        )
        location = headers["Location"]
        assert location.endswith(f"/ServiceRequest/{created['id']}/_history/1")
        async with hub.session.get(location, headers=hub.headers("hospital-x")) as resp:
            assert resp.status == 200
        status, _, _ = await hub.call(
            "hospital-x", "GET", f"ServiceRequest/{created['id']}/_history/9"
        )
        assert status == 404


async def test_fhir_a_partial_birth_date_reads_back_as_sent(fhir_hub: FhirHubFactory) -> None:
    """A Patient born "1980-05" (FHIR date, month precision) is read and searched as that
    month, never as 1 May; one born "1980" in a Bundle likewise as the year."""
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-4001", birthDate="1980-05")
        status, patient, _ = await hub.call("hospital-x", "GET", f"Patient/{pid}")
        assert status == 200 and patient["birthDate"] == "1980-05"
        Patient.model_validate(patient)
        for search, found in (("1980-05", True), ("1980", True), ("1980-05-01", False)):
            status, bundle, _ = await hub.call(
                "hospital-x", "GET", "Patient", params={"birthdate": search}
            )
            assert status == 200
            assert [e["resource"]["id"] for e in bundle.get("entry", ())] == (
                [pid] if found else []
            ), search
        async with hub.ctx.store.transaction() as tx:
            facts = await tx.persons_facts([pid])
        assert facts[pid][0] == "1980-05"  # the consent gate's facts: the month, not 1 May

        year = patient_json("MRN-4002", family="Yearonly", birthDate="1980")
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"resource": year, "request": {"method": "POST", "url": "Patient"}}],
        }
        status, answer, _ = await hub.call("hospital-x", "POST", "", bundle)
        assert status == 200, answer
        status, found, _ = await hub.call(
            "hospital-x", "GET", "Patient", params={"family": "Yearonly"}
        )
        assert [e["resource"]["birthDate"] for e in found["entry"]] == ["1980"]


async def test_a_name_of_partial_quality_is_found_by_a_name_search(
    fhir_hub: FhirHubFactory,
) -> None:
    """HUD NameDataQuality 2 keeps a name out of identity matching, not out of search."""
    import dataclasses

    from hub.synthetic import client

    async with fhir_hub() as hub:
        for pid, quality in (("70", "1"), ("71", "2")):
            record = client(pid, given=f"Quinta{pid}", family="Zorbek", owner="hospital-x")
            await hub.ctx.engine.ingest([dataclasses.replace(record, name_quality=quality)])
        for given in ("Quinta70", "Quinta71"):
            _, by_name, _ = await hub.call(
                "hospital-x", "GET", "Patient", params={"name": f"{given} Zorbek"}
            )
            assert by_name["total"] == 1, given
