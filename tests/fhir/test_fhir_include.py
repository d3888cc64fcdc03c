"""``_include`` on searches: referenced resources added once each as ``search.mode =
include``, each only as the gate releases it to the caller (a withheld Patient is simply
absent); unsupported values and ``_revinclude`` refused. Client data here is invented."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhirpy import AsyncFHIRClient

from hub.audit import entry_from_row
from tests.fhir.conftest import FhirHub, FhirHubFactory
from tests.fhir.test_fhir_api import new_referral
from tests.security.test_security_smart import assertion, auth_toml, rsa_pair

OWNED = {"owner": "Organization/cie-211"}


def by_mode(bundle: dict[str, Any], mode: str) -> list[str]:
    """``Type/id`` of the entries of a search mode, in order."""
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == mode
    ]


async def search(
    hub: FhirHub, agency: str, rtype: str, params: list[tuple[str, str]], **headers: str
) -> tuple[int, dict[str, Any]]:
    """A search; (status, body)."""
    status, body, _ = await hub.call(agency, "GET", rtype, params=params, headers=headers)
    return status, body


async def test_fhir_include_adds_each_referenced_resource_once(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9401", family="Oakhurst")
        sr1, t1 = await new_referral(hub, pid)
        sr2, t2 = await new_referral(hub, pid)
        params = [
            *OWNED.items(),
            ("_include", "Task:patient"),
            ("_include", "Task:focus"),
            ("_include", "Task:owner:Organization"),
        ]
        status, page = await search(hub, "hospital-x", "Task", params)
        assert status == 200, page
        Bundle.model_validate(page)
        assert page["total"] == 2
        assert by_mode(page, "match") == [f"Task/{t1}", f"Task/{t2}"]
        assert by_mode(page, "include") == [
            f"Patient/{pid}",
            f"ServiceRequest/{sr1}",
            "Organization/cie-211",
            f"ServiceRequest/{sr2}",
        ]
        included = {e["fullUrl"] for e in page["entry"] if e["search"]["mode"] == "include"}
        assert f"{hub.fhir}/Patient/{pid}" in included
        patient = next(e["resource"] for e in page["entry"] if e["resource"]["id"] == pid)
        assert patient["name"][0]["family"] == "Oakhurst"

        # paging keeps the includes; each page includes what its own matches reference
        status, first = await search(
            hub, "hospital-x", "Task", [*OWNED.items(), ("_count", "1"), ("_include", "Task:focus")]
        )
        assert by_mode(first, "include") == [f"ServiceRequest/{sr1}"]
        nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
        assert ("_include", "Task:focus") in parse_qsl(urlsplit(nxt).query)
        status, second, _ = await hub.call("hospital-x", "GET", "Task?" + urlsplit(nxt).query)
        assert by_mode(second, "include") == [f"ServiceRequest/{sr2}"]

        # the other searchable types: ServiceRequest and Procedure
        params = [("_id", sr1), ("_include", "ServiceRequest:subject")]
        params.append(("_include", "ServiceRequest:requester"))
        status, page = await search(hub, "hospital-x", "ServiceRequest", params)
        assert by_mode(page, "include") == [f"Patient/{pid}", "Organization/hospital-x"]
        procedure = {
            "resourceType": "Procedure",
            "status": "completed",
            "subject": {"reference": f"Patient/{pid}"},
            "basedOn": [{"reference": f"ServiceRequest/{sr1}"}],
        }
        status, made, _ = await hub.call("hospital-x", "POST", "Procedure", procedure)
        assert status == 201
        params = [("_id", made["id"]), ("_include", "Procedure:based-on")]
        status, page = await search(hub, "hospital-x", "Procedure", params)
        assert by_mode(page, "include") == [f"ServiceRequest/{sr1}"]

        # and through a batch's GET entry, and with fhirpy
        url = "Task?owner=Organization/cie-211&_include=Task:patient"
        bundle = {"resourceType": "Bundle", "type": "batch"}
        bundle["entry"] = [{"request": {"method": "GET", "url": url}}]
        status, answer, _ = await hub.call("hospital-x", "POST", "", bundle)
        assert by_mode(answer["entry"][0]["resource"], "include") == [f"Patient/{pid}"]
        client = AsyncFHIRClient(hub.fhir, authorization=f"Bearer {hub.keys['hospital-x']}")
        raw = await client.resources("Task").search(**OWNED).include("Task", "patient").fetch_raw()
        assert by_mode(raw, "include") == [f"Patient/{pid}"]
        tasks = await client.resources("Task").search(**OWNED).include("Task", "patient").fetch()
        assert sorted(t.id for t in tasks) == sorted([t1, t2])


async def test_fhir_include_leaves_out_a_patient_the_gate_withholds(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9501", family="Vellacott")
        # the client allows referrals, not care coordination
        await hub.consent("MRN-9501", purposes=["referral"])
        _sr, task_id = await new_referral(hub, pid)
        missing_status, _, _ = await hub.call("cie-211", "GET", f"Patient/{pid}")
        assert missing_status == 404  # a direct read of the Patient is refused
        audited = len([r async for b in hub.ctx.store.iter_audit() for r in b])

        params = [*OWNED.items(), ("_include", "Task:patient")]
        status, page = await search(hub, "cie-211", "Task", params)
        assert status == 200, page
        assert by_mode(page, "match") == [f"Task/{task_id}"]
        assert by_mode(page, "include") == []  # nothing says the Patient exists
        assert page["total"] == 1 and len(page["entry"]) == 1
        assert "Vellacott" not in json.dumps(page)
        new = [entry_from_row(r) async for b in hub.ctx.store.iter_audit() for r in b][audited:]
        asked = [e for e in new if e.client == pid and e.purpose == "coordination"]
        assert asked and {(e.recipient, e.decision) for e in asked} == {("cie-211", "deny")}

        # for the purpose the consent allows, the include releases it (and says so)
        status, page = await search(
            hub, "cie-211", "Task", params, **{"X-Purpose-Of-Use": "referral"}
        )
        assert by_mode(page, "include") == [f"Patient/{pid}"]
        assert page["entry"][1]["resource"]["name"][0]["family"] == "Vellacott"
        newest = [entry_from_row(r) async for b in hub.ctx.store.iter_audit() for r in b][-5:]
        assert any(
            e.client == pid and e.recipient == "cie-211" and e.decision == "permit" for e in newest
        )


async def test_fhir_include_refuses_what_it_does_not_support(
    fhir_hub: FhirHubFactory, tmp_path: Path
) -> None:
    private, public_path = rsa_pair(tmp_path, "mercy")
    async with fhir_hub(auth_toml(public_path)) as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9601")
        await new_referral(hub, pid)
        refused = [
            ("Task", [("_include", "*")], "_include"),
            ("Task", [("_include", "Encounter:subject")], "_include"),
            ("Task", [("_include", "Task:focus:Patient")], "_include"),
            ("Task", [("_include", "Task:code")], "_include"),
            ("Task", [("_include:iterate", "Task:focus")], "_include"),
            ("ServiceRequest", [("_revinclude", "Task:focus")], "_revinclude"),
            ("Patient", [("_id", pid), ("_include", "Patient:organization")], "_include"),
            ("Organization", [("_include", "Organization:partof")], "_include"),
        ]
        for rtype, params, named in refused:
            status, body = await search(hub, "hospital-x", rtype, params)
            assert status == 400, (rtype, params)
            assert body["resourceType"] == "OperationOutcome"
            assert body["issue"][0]["diagnostics"].startswith(named), body
        # a token that may read Tasks but not Patients cannot include them
        form = {
            "grant_type": "client_credentials",
            "scope": "system/Task.read",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(private, f"{hub.url}/auth/token"),
        }
        async with hub.session.post(f"{hub.url}/auth/token", data=form) as resp:
            token = (await resp.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for include, expected in (("Task:patient", 403), ("Task:focus", 403), (None, 200)):
            params = {**OWNED, **({"_include": include} if include else {})}
            async with hub.session.get(f"{hub.fhir}/Task", params=params, headers=headers) as r:
                assert r.status == expected, include


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_fhir_include_of_consent_patients_and_organizations(
    fhir_hub: FhirHubFactory, store: str
) -> None:
    async with fhir_hub(store=store) as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9701")
        consent = {
            "resourceType": "Consent",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{pid}"},
            "dateTime": "2025-01-15",
        }
        status, made, _ = await hub.call("hospital-x", "POST", "Consent", consent)
        assert status == 201, made
        params = [
            ("patient", f"Patient/{pid}"),
            ("_include", "Consent:patient"),
            ("_include", "Consent:organization"),
        ]
        status, page = await search(hub, "hospital-x", "Consent", params)
        assert status == 200, page
        assert by_mode(page, "match") == [f"Consent/{made['id']}"]
        assert by_mode(page, "include") == [f"Patient/{pid}", "Organization/hospital-x"]
