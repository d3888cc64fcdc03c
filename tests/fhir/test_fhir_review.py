"""The FHIR API as a partner sees it: consent on referral reads, scopes on write responses,
search modifiers and bad dates, ``subject``, Patient ``_lastUpdated``, paging that holds when
records change, content negotiation, ``If-Match`` on conditional updates, SMART keys that
cannot sign. Client data here is invented."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.audit import entry_from_row
from plugins.fhir.smart import SmartTokenSource, TokenError, load_private_key
from tests.fhir.conftest import MRN_SYSTEM, FhirHubFactory, patient_json
from tests.fhir.test_fhir_api import new_referral
from tests.security.test_security_smart import assertion, auth_toml, rsa_pair

ETH = {
    "meta": {
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"}]
    }
}


async def _referral_of(hub: Any, agency: str, pid: str, **extra: Any) -> tuple[str, str]:
    """(ServiceRequest id, Task id) of a referral ``agency`` makes to cie-211."""
    request = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "performer": [{"reference": "Organization/cie-211"}],
        **extra,
    }
    status, sr, _ = await hub.call(agency, "POST", "ServiceRequest", request)
    assert status == 201, sr
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "focus": {"reference": f"ServiceRequest/{sr['id']}"},
        "for": {"reference": f"Patient/{pid}"},
        "owner": {"reference": "Organization/cie-211"},
        **extra,
    }
    status, t, _ = await hub.call(agency, "POST", "Task", task)
    assert status == 201, t
    return sr["id"], t["id"]


async def _visible(hub: Any, sr_id: str, task_id: str) -> tuple[int, int, int]:
    """What cie-211 gets: (ServiceRequest read, Task read, Tasks found by owner)."""
    sr_status = (await hub.call("cie-211", "GET", f"ServiceRequest/{sr_id}"))[0]
    task_status = (await hub.call("cie-211", "GET", f"Task/{task_id}"))[0]
    _, found, _ = await hub.call("cie-211", "GET", "Task", params={"owner": "Organization/cie-211"})
    return sr_status, task_status, found["total"]


async def test_fhir_a_sensitive_referral_reaches_a_party_only_as_the_consent_allows(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-7101")
        await hub.consent("MRN-7101", id="mpa-7101-a", signed_on="2025-01-15")
        sr_id, task_id = await _referral_of(hub, "hospital-x", pid, **ETH)
        # the consent does not opt in substance use: the ETH-labelled referral stays home
        assert await _visible(hub, sr_id, task_id) == (404, 404, 0)
        _, missing, _ = await hub.call("cie-211", "GET", "Task/no-such-task")
        assert (await hub.call("cie-211", "GET", f"Task/{task_id}"))[1] == missing
        # every decision about the Task itself is in the audit log
        entries = [entry_from_row(r) async for b in hub.ctx.store.iter_audit() for r in b]
        about_task = [e for e in entries if e.record and task_id in e.record]
        assert about_task and all(e.recipient == "cie-211" for e in about_task)
        assert {e.decision for e in about_task} == {"deny"}
        # a newer consent naming cie-211 for substance use lets it through
        await hub.consent(
            "MRN-7101",
            id="mpa-7101-b",
            signed_on="2025-02-01",
            sensitive=["substance_use"],
            part2_recipients=["cie-211"],
        )
        assert await _visible(hub, sr_id, task_id) == (200, 200, 1)


async def test_fhir_a_part2_or_vsp_referral_never_reaches_another_agency_unconsented(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        # the client is released to every agency (hospital-x's record, default consent) ...
        pid = await hub.post_patient("hospital-x", "MRN-7201")
        await hub.consent("MRN-7201")
        # ... but what a Part 2 program or a victim service provider sends stays theirs
        part2 = await _referral_of(hub, "recovery-p2", pid)
        vsp = await _referral_of(hub, "safe-haven", pid)
        assert await _visible(hub, *part2) == (404, 404, 0)
        assert await _visible(hub, *vsp) == (404, 404, 0)
        # an ordinary referral for the same client is seen
        ordinary = await new_referral(hub, pid)
        assert await _visible(hub, *ordinary) == (200, 200, 1)


async def test_fhir_patient_last_updated_narrows_a_search_and_never_lists_everyone(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        first = await hub.post_patient("hospital-x", "MRN-7301", family="Quill")
        await hub.post_patient("hospital-x", "MRN-7302", family="Rook", birthDate="1990-02-03")

        async def ids(**params: str) -> list[str]:
            status, bundle, _ = await hub.call("hospital-x", "GET", "Patient", params=params)
            assert status == 200, bundle
            return [e["resource"]["id"] for e in bundle.get("entry", [])]

        assert await ids(_lastUpdated="gt2100-01-01") == []
        assert await ids(_lastUpdated="gt2000-01-01") == []  # alone it is no criterion
        assert await ids(family="Quill", _lastUpdated="gt2000-01-01") == [first]
        assert await ids(family="Quill", _lastUpdated="gt2100-01-01") == []
        assert await ids(name="Ada Quill", _lastUpdated="lt2000-01-01") == []


async def _follow(hub: Any, agency: str, page: dict[str, Any], relation: str) -> Any:
    """The page a link of ``page`` names, or None."""
    url = next((link["url"] for link in page["link"] if link["relation"] == relation), None)
    if url is None:
        return None
    async with hub.session.get(url, headers=hub.headers(agency)) as resp:
        assert resp.status == 200
        return await resp.json(content_type=None)


def _ids(page: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in page.get("entry", [])]


async def test_fhir_paging_misses_nothing_when_a_record_changes_between_pages(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-7401")
        await hub.consent("MRN-7401")
        made = [(await new_referral(hub, pid))[1] for _ in range(5)]
        _, page, _ = await hub.call("cie-211", "GET", "Task", params={"_count": "2"})
        assert _ids(page) == made[:2]
        # the owner accepts the first Task: it moves to the end of the order
        _, first, _ = await hub.call("cie-211", "GET", f"Task/{made[0]}")
        first["status"] = "accepted"
        assert (await hub.call("cie-211", "PUT", f"Task/{made[0]}", first))[0] == 200
        pages = [page]
        while (following := await _follow(hub, "cie-211", pages[-1], "next")) is not None:
            pages.append(following)
        seen = [i for p in pages for i in _ids(p)]
        assert seen == [*made, made[0]]  # nothing skipped; the changed one again, at its place
        # back from the last page, page by page
        page = pages[-1]
        back = _ids(page)
        while (page := await _follow(hub, "cie-211", page, "previous")) is not None:
            back = _ids(page) + back
        assert back == [*made[1:], made[0]]


async def test_fhir_patient_pages_hold_when_persons_come_and_go(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        ids = sorted(
            [
                await hub.post_patient(
                    "hospital-x",
                    f"MRN-75{i}",
                    family="Pager",
                    given=f"G{i}",
                    birthDate=f"197{i}-01-01",
                )
                for i in range(4)
            ]
        )
        params = {"family": "Pager", "_count": "2", "_purpose": "treatment"}
        _, page, _ = await hub.call("hospital-x", "GET", "Patient", params=params)
        assert _ids(page) == ids[:2] and page["total"] == 4
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "_purpose=treatment" in links["next"] and "_purpose=treatment" in links["self"]
        more = await hub.post_patient(
            "hospital-x", "MRN-7599", family="Pager", given="Late", birthDate="1960-01-01"
        )
        page = await _follow(hub, "hospital-x", page, "next")
        rest = _ids(page)
        while (page := await _follow(hub, "hospital-x", page, "next")) is not None:
            rest += _ids(page)
        assert rest == sorted([*ids[2:], *([more] if more > ids[1] else [])])


async def test_fhir_page_sizes_and_newest_first_pages(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-7601")
        made = [(await new_referral(hub, pid))[1] for _ in range(4)]
        _, counted, _ = await hub.call("hospital-x", "GET", "Task", params={"_count": "0"})
        assert counted["total"] == 4 and _ids(counted) == []
        assert [link["relation"] for link in counted["link"]] == ["self"]
        status, huge, _ = await hub.call("hospital-x", "GET", "Task", params={"_count": "999999"})
        assert status == 200 and _ids(huge) == made  # at most max_page_size (500)
        _, page, _ = await hub.call(
            "hospital-x", "GET", "Task", params={"_sort": "-_lastUpdated", "_count": "3"}
        )
        newest = _ids(page)
        while (page := await _follow(hub, "hospital-x", page, "next")) is not None:
            newest += _ids(page)
        assert newest == made[::-1]


async def test_fhir_a_write_only_token_gets_no_resource_back(
    fhir_hub: FhirHubFactory, tmp_path: Path
) -> None:
    private, public_path = rsa_pair(tmp_path, "mercy")
    async with fhir_hub(auth_toml(public_path)) as hub:
        # cie-211's record of a client, released to hospital-x (the token's agency)
        await hub.post_patient("cie-211", "MRN-7701", family="Wrenfield")
        await hub.consent("MRN-7701", recorded_by="cie-211")
        form = {
            "grant_type": "client_credentials",
            "scope": "system/Patient.write",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(private, f"{hub.url}/auth/token"),
        }
        async with hub.session.post(f"{hub.url}/auth/token", data=form) as resp:
            token = (await resp.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        criteria = {"identifier": f"{MRN_SYSTEM}|MRN-7701"}
        async with hub.session.get(f"{hub.fhir}/Patient", params=criteria, headers=headers) as r:
            assert r.status == 403
        ours = patient_json("MRN-7701", family="Other")
        for extra in ({"If-None-Exist": f"identifier={MRN_SYSTEM}|MRN-7701"}, {}):
            async with hub.session.post(
                f"{hub.fhir}/Patient", data=json.dumps(ours), headers={**headers, **extra}
            ) as resp:
                assert resp.status in (200, 201)
                assert await resp.read() == b""  # not cie-211's record of the client
        # the partner's API key (not limited by scopes) still gets the resource back
        status, body, _ = await hub.call("hospital-x", "POST", "Patient", ours)
        assert status == 200 and body["resourceType"] == "Patient"


async def test_fhir_a_request_for_another_format_is_not_acceptable(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        refused = [
            ({"Accept": "application/fhir+xml"}, None),
            ({"Accept": "application/fhir+json;q=0, application/xml"}, None),
            ({}, {"_format": "xml"}),
            ({"Accept": "application/fhir+json"}, {"_format": "application/fhir+xml"}),
        ]
        for headers, params in refused:
            status, body, got = await hub.call(
                "cie-211", "GET", "metadata", headers=headers, params=params
            )
            assert status == 406, (headers, params)
            assert body["resourceType"] == "OperationOutcome"
            assert got["Content-Type"].startswith("application/fhir+json")
        accepted = [
            ({"Accept": "application/fhir+json"}, None),
            ({"Accept": "application/json, text/plain, */*"}, None),
            ({"Accept": "text/html, */*;q=0.8"}, None),
            ({"Accept": "application/xml"}, {"_format": "json"}),
            ({}, {"_format": "application/fhir+json;fhirVersion=4.0"}),
        ]
        for headers, params in accepted:
            status, _, _ = await hub.call(
                "cie-211", "GET", "metadata", headers=headers, params=params
            )
            assert status == 200, (headers, params)


async def test_fhir_modifiers_and_bad_dates_are_refused_and_subject_is_searched(
    fhir_hub: FhirHubFactory,
) -> None:
    async with fhir_hub() as hub:
        first = await hub.post_patient("hospital-x", "MRN-7801", family="Ames")
        second = await hub.post_patient("hospital-x", "MRN-7802", family="Birch")
        sr_first, task_first = await new_referral(hub, first)
        await new_referral(hub, second)
        for rtype, params in (
            ("Task", {"status:not": "requested"}),
            ("Task", {"owner:Organization": "cie-211"}),
            ("Patient", {"name:exact": "Ames"}),
            ("Patient", {"birthdate:missing": "true"}),
            # a bad date is refused even where nothing is stored to compare it with
            ("Consent", {"_lastUpdated": "gt2020-13-45"}),
            ("Procedure", {"_lastUpdated": "ap2020"}),
        ):
            status, body, _ = await hub.call("hospital-x", "GET", rtype, params=params)
            assert status == 400, (rtype, params)
            assert body["resourceType"] == "OperationOutcome"
            assert "Ames" not in json.dumps(body)
        for rtype, wanted in (("Task", task_first), ("ServiceRequest", sr_first)):
            _, found, _ = await hub.call(
                "hospital-x", "GET", rtype, params={"subject": f"Patient/{first}"}
            )
            assert _ids(found) == [wanted], rtype


def _pem(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


async def test_fhir_smart_keys_that_cannot_sign_are_configuration_errors() -> None:
    with pytest.raises(TokenError) as wrong_curve:
        load_private_key(_pem(ec.generate_private_key(ec.SECP256R1())))
    assert wrong_curve.value.retry is False and "P-384" in str(wrong_curve.value)
    rsa_key, _alg = load_private_key(
        _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    )
    # an ``alg`` in the feed's options that the key cannot sign with: no retry, no request
    source = SmartTokenSource("http://127.0.0.1:9/token", "client", rsa_key, "ES384", "k1")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TokenError) as cannot_sign:
            await source.token(session, 1.0)
    assert cannot_sign.value.retry is False


async def test_fhir_a_conditional_update_honours_if_match(fhir_hub: FhirHubFactory) -> None:
    async with fhir_hub() as hub:
        pid = await hub.post_patient("hospital-x", "MRN-7901")
        request = {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "identifier": [{"system": "urn:oid:1.2.3", "value": "REF-79"}],
            "subject": {"reference": f"Patient/{pid}"},
        }
        status, stored, _ = await hub.call("hospital-x", "POST", "ServiceRequest", request)
        stored["priority"] = "urgent"
        status, _, headers = await hub.call(
            "hospital-x", "PUT", f"ServiceRequest/{stored['id']}", stored
        )
        assert headers["ETag"] == 'W/"2"'
        stale = {**stored, "priority": "stat"}
        criteria = {"identifier": "urn:oid:1.2.3|REF-79"}
        status, body, headers = await hub.call(
            "hospital-x",
            "PUT",
            "ServiceRequest",
            stale,
            params=criteria,
            headers={"If-Match": 'W/"1"'},
        )
        assert status == 412 and headers["ETag"] == 'W/"2"'
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": stale,
                    "request": {
                        "method": "PUT",
                        "url": "ServiceRequest?identifier=urn:oid:1.2.3|REF-79",
                        "ifMatch": 'W/"1"',
                    },
                }
            ],
        }
        status, body, _ = await hub.call("hospital-x", "POST", "", bundle)
        assert status == 412, body
        _, now, _ = await hub.call("hospital-x", "GET", f"ServiceRequest/{stored['id']}")
        assert now["priority"] == "urgent" and now["meta"]["versionId"] == "2"
        status, _, headers = await hub.call(
            "hospital-x",
            "PUT",
            "ServiceRequest",
            stale,
            params=criteria,
            headers={"If-Match": 'W/"2"'},
        )
        assert status == 200 and headers["ETag"] == 'W/"3"'
