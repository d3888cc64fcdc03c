"""The LEAP consent consult as a partner sees it: purposes of use, the MPA consent without
a record owner, FHIR Consents (their patient, their revocation, far dates), the card, and
what POST /fhir/Consent reveals about persons the caller does not serve."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import orjson

from consent.parsing import parse_consent_file
from hub.synthetic import client

CONSULT = "/cds-services/patient-consent-consult"
MRN = "urn:oid:2.16.840.1.113883.19.5"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
OPTIN = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]
}

Ask = Callable[..., Awaitable[str]]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def fhir_consent(patient: dict[str, Any], scope: str = "patient-privacy", **extra: Any) -> dict:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": scope}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": patient,
        "dateTime": "2025-01-10",
        "provision": {"type": "permit"},
        **extra,
    }


def patient(mrn: str, family: str, birth: str) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family, "given": ["Ada"]}],
        "birthDate": birth,
    }


async def import_mpa(ctx: Any, *records: dict) -> None:
    cfg = ctx.config
    text = orjson.dumps(list(records)).decode()
    await ctx.import_consents(
        parse_consent_file(text, agencies=cfg.agencies, policy=cfg.consent_policy)
    )


def consulting(url: str, http: Any, key: str) -> Callable[..., Awaitable[dict]]:
    """``await card(context)`` → the consult's answer (HTTP 200 asserted)."""

    async def card(context: dict) -> dict:
        body = {"hook": "patient-consent-consult", "hookInstance": "1", "context": context}
        async with http.post(f"{url}{CONSULT}", json=body, headers=bearer(key)) as r:
            assert r.status == 200, await r.text()
            answer: dict = (await r.json())["cards"][0]
            return answer

    return card


def context(
    pid: str, actor: str, purpose: Any = "TREAT", system: str = "hmis:demo", **extra: Any
) -> dict:
    ctx: dict[str, Any] = {
        "patientId": [{"system": system, "value": pid} if system else {"value": pid}],
        "scope": "patient-privacy",
        "actor": [{"system": "urn:cie-hub:agency", "value": actor}],
        **extra,
    }
    if purpose is not None:
        ctx["purposeOfUse"] = purpose
    return ctx


async def fhir(http: Any, url: str, key: str, method: str, path: str, body: Any = None) -> tuple:
    """(status, decoded body, headers) of one FHIR request."""
    headers = {**bearer(key), "Content-Type": "application/fhir+json"}
    data = orjson.dumps(body) if body is not None else None
    async with http.request(method, f"{url}/fhir/{path}", data=data, headers=headers) as r:
        text = await r.read()
        return r.status, (orjson.loads(text) if text else None), r.headers


async def test_consult_purpose_that_maps_to_no_mpa_purpose_is_denied(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        await ctx.engine.ingest([client("1")])
        await import_mpa(
            ctx,
            {
                "id": "a",
                "client": {"system": "hmis:demo", "value": "1"},
                "signed_on": "2024-06-01",
                "recorded_by": "shelter-a",
                "purposes": ["coordination"],
            },
        )
        card = consulting(url, http, await make_key(ctx, "hospital-x"))

        async def summary(purpose: Any) -> str:
            return str((await card(context("1", "hospital-x", purpose)))["summary"])

        for permitted in (
            "COC",
            {"code": "CAREMGT"},
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason"},
                    {"code": "COC"},
                ]
            },
            [{"coding": [{"code": "COC"}]}],
        ):
            assert await summary(permitted) == "CONSENT_PERMIT", permitted
        for denied in (
            "TREAT",
            "PUBHLTH",
            "PATRQT",
            "HSYSADMIN",
            "XYZ-NOT-A-CODE",
            None,
            {"coding": [{"code": "HMARKT"}]},
            [{"coding": [{"code": "PUBHLTH"}]}],
        ):
            assert await summary(denied) == "CONSENT_DENY", denied


async def test_consult_decides_on_the_consent_not_as_the_agency_that_recorded_it(
    web_hub, make_key
) -> None:
    async with web_hub() as (ctx, url, http):
        await ctx.engine.ingest([client(str(i)) for i in range(1, 7)])
        soon = (date.today() + timedelta(days=30)).isoformat()

        def mpa(pid: str, **fields: Any) -> dict:
            return {
                "id": f"c{pid}",
                "client": {"system": "hmis:demo", "value": pid},
                "signed_on": "2024-06-01",
                "recorded_by": "shelter-a",
                **fields,
            }

        await import_mpa(
            ctx,
            mpa("1", revoked_on="2024-07-01"),
            mpa("2", expires_on="2024-12-31"),
            mpa("3", signed_on=soon),
            mpa("4", exclude_agencies=["shelter-a"]),
            mpa("5"),
        )
        card = consulting(url, http, await make_key(ctx, "hospital-x"))
        for pid, expected in [
            ("1", "NO_CONSENT"),  # revoked
            ("2", "NO_CONSENT"),  # expired
            ("3", "NO_CONSENT"),  # not yet valid
            ("4", "CONSENT_DENY"),  # the client excluded shelter-a
            ("5", "CONSENT_PERMIT"),
            ("6", "NO_CONSENT"),  # no consent at all
            ("nobody", "NO_CONSENT"),
        ]:
            assert (await card(context(pid, "shelter-a")))["summary"] == expected, pid


async def test_consult_answers_for_a_vsp_client_as_for_any_client(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        await ctx.engine.ingest([client("1", owner="safe-haven"), client("2")])
        await import_mpa(
            ctx,
            *(
                {
                    "id": f"v{pid}",
                    "client": {"system": "hmis:demo", "value": pid},
                    "signed_on": "2024-06-01",
                    "recorded_by": recorder,
                }
                for pid, recorder in [("1", "safe-haven"), ("2", "shelter-a")]
            ),
        )
        card = consulting(url, http, await make_key(ctx, "cie-211"))
        for actor in ("hospital-x", "safe-haven"):
            vsp = await card(context("1", actor))
            other = await card(context("2", actor))
            assert vsp == other, actor
            assert vsp["summary"] == "CONSENT_PERMIT"


async def test_consult_card_indicator_follows_leap(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        await ctx.engine.ingest([client("1")])
        await import_mpa(
            ctx,
            {
                "id": "a",
                "client": {"system": "hmis:demo", "value": "1"},
                "signed_on": "2024-06-01",
                "exclude_agencies": ["cie-211"],
            },
        )
        card = consulting(url, http, await make_key(ctx, "hospital-x"))
        for pid, actor, summary, indicator in [
            ("1", "cie-211", "CONSENT_DENY", "critical"),
            ("1", "hospital-x", "CONSENT_PERMIT", "info"),
            ("nobody", "hospital-x", "NO_CONSENT", "warning"),
        ]:
            answer = await card(context(pid, actor))
            assert (answer["summary"], answer["indicator"]) == (summary, indicator)


async def test_consult_fhir_consent_by_value_alone_is_not_another_persons(
    web_hub, make_key
) -> None:
    async with web_hub() as (ctx, url, http):
        hospital = await make_key(ctx, "hospital-x")
        status, _body, _ = await fhir(
            http, url, hospital, "POST", "Patient", patient("555", "Quark", "1971-02-03")
        )
        assert status == 201
        by_value = fhir_consent({"identifier": {"value": "555"}}, policyRule=OPTIN)
        status, _stored, headers = await fhir(http, url, hospital, "POST", "Consent", by_value)
        assert status == 201 and headers["X-Consent-Gate"] == "applied"
        # Another person, who carries the same value in another system, consented to nothing.
        await ctx.engine.ingest(
            [client("555", given="Kai", family="Ito", birth_date=date(1990, 5, 5))]
        )
        card = consulting(url, http, await make_key(ctx, "shelter-a"))
        assert (await card(context("555", "cie-211")))["summary"] == "NO_CONSENT"
        assert (await card(context("555", "cie-211", system="")))["summary"] == "NO_CONSENT"
        # The person the hospital recorded it for still has it.
        mine = await card(context("555", "cie-211", system=MRN))
        assert mine["summary"] == "CONSENT_PERMIT"


async def test_consult_after_hub_consent_revoke_of_a_fhir_consent(
    web_hub, make_key, hub_cli
) -> None:
    async with web_hub() as (ctx, url, http):
        hospital = await make_key(ctx, "hospital-x")
        status, body, _ = await fhir(
            http, url, hospital, "POST", "Patient", patient("MRN-7", "Quark", "1971-02-03")
        )
        assert status == 201
        consent = fhir_consent({"reference": f"Patient/{body['id']}"})
        status, stored, headers = await fhir(http, url, hospital, "POST", "Consent", consent)
        assert status == 201 and headers["X-Consent-Gate"] == "applied"
        card = consulting(url, http, await make_key(ctx, "cie-211"))
        by_mrn = context("MRN-7", "cie-211", system=MRN)
        by_value = context("MRN-7", "cie-211", system="")
        assert (await card(by_mrn))["summary"] == "CONSENT_PERMIT"
        assert (await card(by_value))["summary"] == "CONSENT_PERMIT"

        revoke = ("consent", "revoke", f"fhir:{stored['id']}", "--on", "2025-02-01")
        result = await asyncio.to_thread(hub_cli, *revoke)
        assert result.exit_code == 0, result.output
        assert (await card(by_mrn))["summary"] == "NO_CONSENT"
        assert (await card(by_value))["summary"] == "NO_CONSENT"


async def test_consult_fhir_consent_ending_in_year_9999(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        hospital = await make_key(ctx, "hospital-x")
        card = consulting(url, http, hospital)
        for mrn, end in [("MRN-1", "9999-12-31"), ("MRN-2", "9999"), ("MRN-3", "9999-12")]:
            status, body, _ = await fhir(
                http, url, hospital, "POST", "Patient", patient(mrn, "Quark", "1971-02-03")
            )
            assert status == 201
            forever = fhir_consent(
                {"reference": f"Patient/{body['id']}"},
                scope="research",
                policyRule=OPTIN,
                provision={"period": {"start": "2024-01-01", "end": end}},
            )
            status, _stored, _ = await fhir(http, url, hospital, "POST", "Consent", forever)
            assert status == 201
            asked = context(mrn, "hospital-x", system=MRN, scope="research")
            assert (await card(asked))["summary"] == "CONSENT_PERMIT", end


async def test_fhir_consent_signed_in_year_9999_is_refused_by_name(web_hub, make_key) -> None:
    async with web_hub() as (ctx, url, http):
        hospital = await make_key(ctx, "hospital-x")
        status, body, _ = await fhir(
            http, url, hospital, "POST", "Patient", patient("MRN-2", "Boson", "1982-03-04")
        )
        assert status == 201
        late = fhir_consent(
            {"reference": f"Patient/{body['id']}"},
            dateTime="9999-12-31",
            provision={"type": "permit", "period": {"start": "2024-01-01"}},
        )
        status, stored, headers = await fhir(http, url, hospital, "POST", "Consent", late)
        assert status == 201, stored
        gate = headers["X-Consent-Gate"]
        assert gate.startswith("not-applied; dateTime: impossible date"), gate


async def test_fhir_consent_by_identifier_never_reveals_an_unserved_person(
    web_hub, make_key
) -> None:
    async with web_hub() as (ctx, url, http):
        await ctx.engine.ingest(
            [
                client("4242", given="Ana", family="Brooks", birth_date=date(1980, 1, 1)),
                client(
                    "4242",
                    source="clinic:mrn",
                    owner="hospital-x",
                    given="Kai",
                    family="Ito",
                    birth_date=date(1990, 5, 5),
                ),
                client("5151", given="Eve", family="Chen", birth_date=date(1970, 3, 3)),
            ]
        )
        partner = await make_key(ctx, "cie-211")
        answers = set()
        for value in ("0000", "5151", "4242"):
            consent = fhir_consent({"identifier": {"value": value}})
            status, outcome, _ = await fhir(http, url, partner, "POST", "Consent", consent)
            answers.add((status, outcome["issue"][0]["diagnostics"]))
        assert len(answers) == 1
        assert next(iter(answers))[0] == 403

        # The hospital serves one of the two persons: the consent is that person's alone.
        hospital = await make_key(ctx, "hospital-x")
        consent = fhir_consent({"identifier": {"value": "4242"}})
        status, stored, headers = await fhir(http, url, hospital, "POST", "Consent", consent)
        assert status == 201, stored
        assert headers["X-Consent-Gate"] == "applied"
        card = consulting(url, http, hospital)
        served = await card(context("4242", "cie-211", system="clinic:mrn"))
        assert served["summary"] == "CONSENT_PERMIT"
        assert (await card(context("4242", "cie-211")))["summary"] == "NO_CONSENT"


async def test_consult_revoked_mpa_consent_is_not_passed_by_a_fhir_consent(
    web_hub, make_key
) -> None:
    async with web_hub() as (ctx, url, http):
        hospital = await make_key(ctx, "hospital-x")
        for mrn, family, birth in [
            ("MRN-8", "Quark", "1971-02-03"),
            ("MRN-9", "Boson", "1982-03-04"),
        ]:
            status, body, _ = await fhir(
                http, url, hospital, "POST", "Patient", patient(mrn, family, birth)
            )
            assert status == 201
            # No dateTime: the gate cannot enforce it, only the consult reads it.
            undated = fhir_consent({"reference": f"Patient/{body['id']}"})
            del undated["dateTime"]
            status, _stored, headers = await fhir(http, url, hospital, "POST", "Consent", undated)
            assert status == 201 and headers["X-Consent-Gate"].startswith("not-applied")
        await import_mpa(
            ctx,
            {
                "id": "m8",
                "client": {"system": MRN, "value": "MRN-8"},
                "signed_on": "2024-06-01",
                "revoked_on": "2024-07-01",
            },
        )
        card = consulting(url, http, await make_key(ctx, "cie-211"))
        assert (await card(context("MRN-8", "cie-211", system=MRN)))["summary"] == "NO_CONSENT"
        # Without any MPA consent, the FHIR Consent decides.
        mine = await card(context("MRN-9", "cie-211", system=MRN))
        assert mine["summary"] == "CONSENT_PERMIT"
