"""Batch Bundles: each entry on its own, answered in a batch-response Bundle in order; GET
entries read through the gate as the plain GET does; the whole-Bundle checks of a
transaction; the store work batched as for a transaction. Client data here is invented."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhirpy import AsyncFHIRClient

from hub.audit import entry_from_row, verify_store
from plugins.fhir import transaction
from plugins.fhir.bench import patient_bundle
from plugins.fhir.outcome import FhirError
from tests.fhir.conftest import MRN_SYSTEM, FhirHub, FhirHubFactory, patient_json
from tests.fhir.test_fhir_api import new_referral, service_request
from tests.fhir.test_fhir_validation_pool import SIZE, conditional_creates, pooled
from tests.security.test_security_smart import assertion, auth_toml, rsa_pair


def batch(*entries: dict[str, Any]) -> dict[str, Any]:
    """A batch Bundle of these entries."""
    return {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}


def post(resource: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A create entry."""
    return {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
        **extra,
    }


def statuses(response: dict[str, Any]) -> list[str]:
    """The response status of every entry, in order."""
    return [e["response"]["status"] for e in response["entry"]]


async def audit_entries(hub: FhirHub) -> list[Any]:
    """Every entry of the audit log."""
    return [entry_from_row(r) async for b in hub.ctx.store.iter_audit() for r in b]


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_fhir_batch_entries_succeed_or_fail_alone(
    fhir_hub: FhirHubFactory, store: str
) -> None:
    async with fhir_hub(store=store) as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9001")
        sr_id, task_id = await new_referral(hub, pid)
        before = await hub.ctx.store.count_records()
        bad = patient_json("MRN-9099", family="Zebulon", birthDate="1961-07-23x")
        stale = {"resourceType": "Task", "status": "cancelled", "intent": "order"}
        request = batch(
            post(patient_json("MRN-9002", family="Brightwater"), fullUrl="urn:uuid:p-new"),
            post(bad),
            post(service_request("ignored") | {"subject": {"reference": "urn:uuid:p-new"}}),
            post(
                {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "focus": {"reference": f"ServiceRequest/{sr_id}"},
                    "for": {"reference": f"Patient/{pid}"},
                    "owner": {"reference": "Organization/no-such-agency"},
                }
            ),
            {
                "resource": stale,
                "request": {"method": "PUT", "url": f"Task/{task_id}", "ifMatch": 'W/"9"'},
            },
            {"resource": stale, "request": {"method": "PUT", "url": "Task/no-such-task"}},
            post(service_request(pid)),
            {"request": {"method": "DELETE", "url": f"Patient/{pid}"}},
            {
                "resource": patient_json("MRN-9003"),
                "request": {"method": "PUT", "url": f"Patient?identifier={MRN_SYSTEM}|MRN-9003"},
            },
            {"request": {"method": "GET", "url": f"ServiceRequest/{sr_id}"}},
        )
        status, response, _ = await hub.call("hospital-x", "POST", "", request)
        assert status == 200, response
        Bundle.model_validate(response)
        assert response["type"] == "batch-response"
        assert statuses(response) == [
            "201 Created",
            "400 Bad Request",
            "400 Bad Request",
            "422 Unprocessable Entity",
            "412 Precondition Failed",
            "404 Not Found",
            "201 Created",
            "400 Bad Request",
            "201 Created",
            "200 OK",
        ]
        answers = [e["response"] for e in response["entry"]]

        def expressions(i: int) -> list[str]:
            return [x for issue in answers[i]["outcome"]["issue"] for x in issue["expression"]]

        assert expressions(1) == ["Bundle.entry[1].resource.birthDate"]
        assert expressions(2) == ["Bundle.entry[2].resource.subject"]
        assert "Bundle.entry[0]" in answers[2]["outcome"]["issue"][0]["diagnostics"]
        assert expressions(3) == ["Bundle.entry[3].resource.owner"]
        assert answers[4]["etag"] == 'W/"1"'
        assert expressions(7) == ["Bundle.entry[7].request.method"]
        text = json.dumps(response)
        assert "Zebulon" not in text and "1961-07-23" not in text
        # what a transaction response gives: location, etag, lastModified
        assert answers[6]["location"].startswith("ServiceRequest/")
        assert answers[6]["location"].endswith("/_history/1")
        assert answers[6]["etag"] == 'W/"1"' and answers[6]["lastModified"]
        person = answers[0]["location"].split("/")[1]
        assert answers[0]["location"] == f"Patient/{person}"
        read = response["entry"][9]
        assert read["resource"]["id"] == sr_id and read["response"]["etag"] == 'W/"1"'
        # each success is stored, each failure stored nothing
        after = await hub.ctx.store.count_records()
        assert after["client"] == before["client"] + 2
        assert after["fhir.ServiceRequest"] == before["fhir.ServiceRequest"] + 1
        assert after["fhir.Task"] == before["fhir.Task"]
        status, seen, _ = await hub.call("hospital-x", "GET", f"Patient/{person}")
        assert status == 200 and seen["name"][0]["family"] == "Brightwater"
        status, task, _ = await hub.call("hospital-x", "GET", f"Task/{task_id}")
        assert task["status"] == "requested" and task["meta"]["versionId"] == "1"


async def test_fhir_batch_get_entry_purpose_yields_to_the_requests_header(
    fhir_hub: FhirHubFactory,
) -> None:
    """As in a plain GET, ``X-Purpose-Of-Use`` wins over ``_purpose``; without the header,
    an entry's ``_purpose`` is that entry's purpose."""
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9102", family="Ravel")
        await hub.consent("MRN-9102")
        reads = batch({"request": {"method": "GET", "url": f"Patient/{pid}?_purpose=payment"}})
        header = {"X-Purpose-Of-Use": "TREAT"}
        for headers, expected in ((header, "treatment"), (None, "payment")):
            before = len(await audit_entries(hub))
            status, answer, _ = await hub.call("cie-211", "POST", "", reads, headers=headers)
            assert status == 200, answer
            purposes = [e.purpose for e in (await audit_entries(hub))[before:] if e.client == pid]
            assert purposes == [expected], purposes


async def test_fhir_batch_get_entries_answer_what_the_plain_get_answers(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9101", family="Quenby")
        await hub.consent("MRN-9101", exclude_agencies=["shelter-a"])
        _, task_id = await new_referral(hub, pid)
        plain_status, plain, _ = await hub.call("shelter-a", "GET", f"Patient/{pid}")
        assert plain_status == 404
        before = len(await audit_entries(hub))
        reads = batch(
            {"request": {"method": "GET", "url": f"Patient/{pid}"}},
            {"request": {"method": "GET", "url": "Patient/" + "0" * 32}},
            {"request": {"method": "GET", "url": f"Patient?identifier={MRN_SYSTEM}|MRN-9101"}},
            {"request": {"method": "GET", "url": f"Task/{task_id}"}},
            {"request": {"method": "GET", "url": "Encounter/1"}},
        )
        status, hidden, _ = await hub.call("shelter-a", "POST", "", reads)
        assert status == 200, hidden
        assert statuses(hidden) == [
            "404 Not Found",
            "404 Not Found",
            "200 OK",
            "404 Not Found",
            "405 Method Not Allowed",
        ]
        assert hidden["entry"][0]["response"]["outcome"] == plain
        assert hidden["entry"][1]["response"]["outcome"] == plain
        assert hidden["entry"][2]["resource"]["total"] == 0
        assert "Quenby" not in json.dumps(hidden)
        # the gate decided, and the audit log says so, as for the plain GET
        new = (await audit_entries(hub))[before:]
        assert any(e.client == pid and e.recipient == "shelter-a" for e in new)
        assert {e.decision for e in new if e.recipient == "shelter-a"} == {"deny"}

        status, shown, _ = await hub.call("cie-211", "POST", "", reads)
        assert statuses(shown)[:4] == ["200 OK", "404 Not Found", "200 OK", "200 OK"]
        assert shown["entry"][0]["resource"]["name"][0]["family"] == "Quenby"
        assert shown["entry"][2]["resource"]["entry"][0]["resource"]["id"] == pid
        task = shown["entry"][3]
        assert task["resource"]["id"] == task_id
        assert task["response"]["location"] == f"Task/{task_id}/_history/1"
        newest = (await audit_entries(hub))[-10:]
        assert any(e.recipient == "cie-211" and e.decision == "permit" for e in newest)


async def test_fhir_batch_whole_bundle_checks(
    fhir_hub: FhirHubFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public_path = rsa_pair(tmp_path, "mercy")
    async with fhir_hub(auth_toml(public_path)) as hub:
        before = await hub.ctx.store.count_records()
        one = batch(post(patient_json("MRN-9201")))
        # XML is refused
        status, body, _ = await hub.call(
            "hospital-x",
            "POST",
            "",
            raw=b"<Bundle xmlns='http://hl7.org/fhir'/>",
            headers={"Content-Type": "application/fhir+xml"},
        )
        assert status == 415 and body["resourceType"] == "OperationOutcome"
        # no key, no batch
        async with hub.session.post(f"{hub.fhir}/", data=json.dumps(one)) as resp:
            assert resp.status == 401
        # too many entries
        monkeypatch.setattr(transaction, "MAX_ENTRIES", 2)
        three = batch(*(post(patient_json(f"MRN-921{i}")) for i in range(3)))
        status, body, _ = await hub.call("hospital-x", "POST", "", three)
        assert status == 413
        monkeypatch.undo()
        # a Bundle that is not one
        status, body, _ = await hub.call("hospital-x", "POST", "", {**one, "entry": "none"})
        assert status == 400 and body["issue"][0]["expression"] == ["Bundle.entry"]
        # a token that may read Patients only: no write entry at all
        form = {
            "grant_type": "client_credentials",
            "scope": "system/Patient.read",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(private, f"{hub.url}/auth/token"),
        }
        async with hub.session.post(f"{hub.url}/auth/token", data=form) as resp:
            token = (await resp.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        async with hub.session.post(f"{hub.fhir}/", data=json.dumps(one), headers=headers) as r:
            assert r.status == 403
            assert "entry 0" in (await r.json())["issue"][0]["diagnostics"]
        reading = batch({"request": {"method": "GET", "url": "Patient?family=Nobody"}})
        async with hub.session.post(f"{hub.fhir}/", data=json.dumps(reading), headers=headers) as r:
            assert r.status == 200
            assert (await r.json())["entry"][0]["response"]["status"] == "200 OK"
        assert await hub.ctx.store.count_records() == before


async def test_fhir_batch_stores_its_entries_in_one_batched_transaction(
    fhir_hub: FhirHubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of Patients is one ``ingest_many`` (one transaction, batched statements, a
    savepoint per entry only if one fails when stored); a bad entry costs only itself."""
    async with fhir_hub() as hub:
        engine = hub.ctx.engine
        calls: list[int] = []
        one_by_one: list[int] = []
        real_many, real_each = engine.ingest_many, engine._ingest_each

        async def ingest_many(requests: Any) -> Any:
            calls.append(len(requests))
            return await real_many(requests)

        async def ingest_each(tx: Any, requests: Any) -> Any:
            one_by_one.append(len(requests))
            return await real_each(tx, requests)

        monkeypatch.setattr(engine, "ingest_many", ingest_many)
        monkeypatch.setattr(engine, "_ingest_each", ingest_each)
        data = orjson.loads(patient_bundle(30))
        data["type"] = "batch"
        data["entry"][5]["resource"]["gender"] = "sometimes"  # invalid
        data["entry"][7]["resource"].pop("identifier")  # no id, no identifier: 422
        data["entry"][9]["request"]["ifNoneExist"] = "identifier=|BENCH-0000000"  # entry 0's
        status, response, _ = await hub.call("hospital-x", "POST", "", raw=orjson.dumps(data))
        assert status == 200, response
        got = statuses(response)
        assert got[5] == "400 Bad Request" and got[7] == "422 Unprocessable Entity"
        assert got.count("201 Created") == 28 and got[9] == "201 Created"
        assert response["entry"][5]["response"]["outcome"]["issue"][0]["expression"] == [
            "Bundle.entry[5].resource.gender"
        ]
        assert calls == [28] and one_by_one == []
        assert (await hub.ctx.store.count_records())["client"] == 28


async def test_fhir_large_batch_validated_beside_its_storing(
    hub_factory: Any,
) -> None:
    """With validation workers (``hub serve``): an invalid entry answers exactly its
    validation errors, no gate decision is made for it, nothing of it is stored, the others
    are, and the audit chain holds."""
    from plugins.fhir.ingest import ingest_bundle
    from plugins.fhir.validation import validate_entry

    async with pooled(hub_factory) as ctx:
        first = await ingest_bundle(ctx, "hospital-x", patient_bundle(SIZE))
        persons = [e["response"]["location"].split("/")[1] for e in first["entry"]]
        audited = len([r async for b in ctx.store.iter_audit() for r in b])

        data = orjson.loads(conditional_creates(SIZE, spoil=True))
        data["type"] = "batch"
        with pytest.raises(FhirError) as inline:
            validate_entry(data["entry"][SIZE - 1], SIZE - 1)
        response = await ingest_bundle(ctx, "hospital-x", orjson.dumps(data))
        assert statuses(response) == ["200 OK"] * (SIZE - 1) + ["400 Bad Request"]
        issues = response["entry"][SIZE - 1]["response"]["outcome"]["issue"]
        assert issues == [i.to_json() for i in inline.value.issues]
        new = [entry_from_row(r) async for b in ctx.store.iter_audit() for r in b][audited:]
        assert {e.client for e in new} == set(persons[: SIZE - 1])

        data = orjson.loads(patient_bundle(SIZE, 100))
        data["type"] = "batch"
        data["entry"][3]["resource"]["contact"] = [{"bogus": True}]
        response = await ingest_bundle(ctx, "hospital-x", orjson.dumps(data))
        got = statuses(response)
        assert got[3] == "400 Bad Request" and got.count("201 Created") == SIZE - 1
        expression = response["entry"][3]["response"]["outcome"]["issue"][0]["expression"]
        assert expression == ["Bundle.entry[3].resource.contact[0].bogus"]
        assert (await ctx.store.count_records())["client"] == 2 * SIZE - 1
        assert (await verify_store(ctx.store, ctx.keys)).ok


async def test_fhir_batch_with_fhirpy(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-9301")
        client = AsyncFHIRClient(hub.fhir, authorization=f"Bearer {hub.keys['hospital-x']}")
        request = batch(
            post(service_request(pid)),
            post(service_request(pid) | {"status": "not-a-status"}),
            {"request": {"method": "GET", "url": f"Patient/{pid}"}},
        )
        response = await client.execute("", method="post", data=request)
        assert response["type"] == "batch-response"
        assert statuses(response) == ["201 Created", "400 Bad Request", "200 OK"]
        sr_id = response["entry"][0]["response"]["location"].split("/")[1]
        stored = await client.reference("ServiceRequest", sr_id).to_resource()
        assert stored["subject"]["reference"] == f"Patient/{pid}"


async def test_fhir_batch_entry_that_fails_when_stored_is_lost_alone(
    fhir_hub: FhirHubFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A store failure of one entry rolls back its savepoint only: the others are stored,
    it answers 500 (no client data anywhere), and the audit chain holds."""
    async with fhir_hub() as hub:
        engine = hub.ctx.engine
        real = engine._ingest

        async def failing(tx: Any, records: Any, *args: Any, **kwargs: Any) -> Any:
            if any("MRN-BOOM" in r.meta.key.id for r in records):
                raise RuntimeError("disk full")
            return await real(tx, records, *args, **kwargs)

        monkeypatch.setattr(engine, "_ingest", failing)
        mrns = ["MRN-9801", "MRN-BOOM", "MRN-9803"]
        request = batch(*(post(patient_json(m, family="Ravensworth")) for m in mrns))
        status, response, _ = await hub.call("hospital-x", "POST", "", request)
        assert status == 200, response
        assert statuses(response) == ["201 Created", "500 Internal Server Error", "201 Created"]
        assert response["entry"][1]["response"]["outcome"]["issue"][0]["expression"] == [
            "Bundle.entry[1]"
        ]
        assert (await hub.ctx.store.count_records())["client"] == 2
        assert "Ravensworth" not in json.dumps(response) and "BOOM" not in json.dumps(response)
        assert "Ravensworth" not in caplog.text and "BOOM" not in caplog.text
        assert (await verify_store(hub.ctx.store, hub.ctx.keys)).ok
