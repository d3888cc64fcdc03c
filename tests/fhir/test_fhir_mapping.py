"""Canonical records ↔ FHIR R4: every mapping round-trips and renders valid R4 (R4B models)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Any

from fhir.resources.R4B.encounter import Encounter as FhirEncounter
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.core.partial_dates import first_day, iso_text
from hub.core.records import (
    Address,
    Client,
    ContactPoint,
    Encounter,
    HumanName,
    Identifier,
    Provenance,
    RecordMeta,
    Referral,
    SourceKey,
)
from hub.core.serialize import record_payload
from plugins.fhir.canonical import client_record
from plugins.fhir.mapping import (
    canonical_system,
    client_to_patient,
    encounter_from_fhir,
    encounter_to_fhir,
    fhir_system,
    merge_client_payloads,
    patient_to_client,
    referral_from_fhir,
    referral_to_fhir,
)
from plugins.fhir.search import birthdate_matches

WORDS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzÄÖéABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-'.",
    min_size=1,
    max_size=12,
)
CODES = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.", min_size=1, max_size=8)
WHEN = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def meta(kind: str) -> RecordMeta:
    return RecordMeta(
        kind, SourceKey("src", "1"), "hospital-x", Provenance("t", datetime.now(UTC), "h"), "1"
    )


def _aligned(client: Client) -> Client:
    """A client whose partial birth date is held as its period's first day (as parsed)."""
    if client.birth_date is None:
        return dataclasses.replace(client, birth_date_precision="")
    first = first_day(client.birth_date, client.birth_date_precision)
    return dataclasses.replace(client, birth_date=first)


identifiers = st.builds(
    Identifier,
    system=st.sampled_from(
        ["hmis:IMPL-9", "MERCY", "urn:oid:2.16.1", "https://ids.example/mrn", ""]
    ),
    value=CODES,
    type=st.sampled_from(["", "MR", "PI", "SS"]),
)
names = st.builds(
    HumanName,
    family=WORDS,
    given=st.lists(WORDS, max_size=3).map(tuple),
    prefix=st.sampled_from(["", "Dr", "Ms"]),
    suffix=st.sampled_from(["", "Jr", "III"]),
    use=st.sampled_from(["", "official", "L", "maiden", "A"]),
)
telecom = st.builds(
    ContactPoint,
    system=st.sampled_from(["", "phone", "email", "other", "PH", "Internet"]),
    value=CODES,
    use=st.sampled_from(["", "home", "mobile", "PRN"]),
)
addresses = st.builds(
    Address,
    lines=st.lists(WORDS, max_size=2).map(tuple),
    city=st.sampled_from(["", "San Diego", "Chula Vista"]),
    state=st.sampled_from(["", "CA"]),
    postal_code=st.sampled_from(["", "92101", "02134"]),
    country=st.sampled_from(["", "US"]),
    use=st.sampled_from(["", "home", "H", "old"]),
)
clients = st.builds(
    Client,
    meta=st.just(meta("client")),
    identifiers=st.lists(identifiers, max_size=3).map(tuple),
    names=st.lists(names, max_size=2).map(tuple),
    birth_date=st.one_of(
        st.none(), st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 1, 1))
    ),
    ssn=st.sampled_from([None, "078-05-1121", "xxx-xx-1121"]),
    telecom=st.lists(telecom, max_size=2).map(tuple),
    addresses=st.lists(addresses, max_size=2).map(tuple),
    name_quality=st.sampled_from(["", "1", "2", "99"]),
    ssn_quality=st.sampled_from(["", "1", "8"]),
    birth_date_quality=st.sampled_from(["", "1", "9"]),
    sex=st.sampled_from(["", "female", "male", "other", "unknown", "F", "M", "0", "99", "X"]),
    gender=st.lists(st.sampled_from(["Woman", "Man", "NonBinary", "Transgender"]), max_size=2).map(
        tuple
    ),
    race=st.lists(
        st.sampled_from(["2106-3", "2028-9", "2118-8", "White", "Asian"]),
        max_size=3,
    ).map(tuple),
    ethnicity=st.sampled_from(["", "0", "1", "H", "N", "99"]),
    veteran_status=st.sampled_from(["", "0", "1"]),
    deceased=st.sampled_from(["", "true", "false", "Y", "N", "2024-02-03", "20240203"]),
    birth_date_precision=st.sampled_from(["", "", "month", "year"]),
).map(_aligned)
encounters = st.builds(
    Encounter,
    meta=st.just(meta("encounter")),
    client=st.just(SourceKey("hl7:MERCY", "MRN-1")),
    event=st.sampled_from(["", "A01", "A03", "A08"]),
    patient_class=st.sampled_from(["", "E", "I", "O", "P", "R", "B"]),
    location=st.sampled_from(["", "ER^12^1", "4WEST"]),
    visit_number=st.sampled_from(["", "V100", "2024-77"]),
    admit_time=st.one_of(st.none(), WHEN),
    discharge_time=st.one_of(st.none(), WHEN),
    facility=st.sampled_from(["", "MERCYGEN"]),
    diagnoses=st.lists(
        st.sampled_from(["I10", "http://hl7.org/fhir/sid/icd-10-cm|E11.9", "Z59.0"]), max_size=3
    ).map(tuple),
)
referrals = st.builds(
    Referral,
    meta=st.just(meta("referral")),
    client=st.just(SourceKey("fhir:hospital-x", "MRN-1")),
    status=st.sampled_from(
        ["requested", "accepted", "completed", "draft", "P", "A", "R", "E", "X"]
    ),
    priority=st.sampled_from(["", "routine", "urgent", "stat", "S", "R", "Z"]),
    requester=st.sampled_from(["", "hospital-x", "Dr Who (PCP)"]),
    performer=st.sampled_from(["", "cie-211", "Food Bank of SD"]),
    service_codes=st.lists(
        st.sampled_from(["http://snomed.info/sct|464131000124100", "FOOD", "HOUSING"]), max_size=2
    ).map(tuple),
    reason=st.sampled_from(["", "food insecurity"]),
    diagnoses=st.lists(
        st.sampled_from(["Z59.4", "http://hl7.org/fhir/sid/icd-10-cm|Z59.0"]), max_size=2
    ).map(tuple),
    notes=st.lists(WORDS, max_size=2).map(tuple),
    authored_on=st.one_of(st.none(), WHEN),
    consent_ref=st.sampled_from(["", "Consent/c-1", "mpa-0007", "signed paper form"]),
    outputs=st.lists(
        st.sampled_from(["Procedure/p-1", "Procedure/p-2", "phone call"]), max_size=2
    ).map(tuple),
)


@SETTINGS
@given(clients)
def test_fhir_client_patient_round_trip(client: Client) -> None:
    payload = record_payload(client)
    patient = client_to_patient(payload, patient_id="p1", managing_organization="hospital-x")
    Patient.model_validate(patient)
    assert patient_to_client(patient) == payload


def _with_foreign_extensions(value: Any) -> Any:
    """A copy of a Patient where the resource and every name, telecom and address carry an
    extension the hub does not know (so none of them is read on the no-extension path)."""
    foreign = {"url": "urn:example:not-the-hubs", "valueString": "x"}
    out = dict(value)
    out["extension"] = [*out.get("extension", ()), foreign]
    for element in ("name", "telecom", "address"):
        if element in out:
            out[element] = [
                {**i, "extension": [*i.get("extension", ()), foreign]} for i in out[element]
            ]
    return out


@SETTINGS
@given(clients)
def test_fhir_patient_mapping_ignores_foreign_extensions(client: Client) -> None:
    """The quick path (no extensions) and the full one agree."""
    patient = client_to_patient(record_payload(client))
    bare = {k: v for k, v in patient.items() if k != "extension"}
    assert patient_to_client(_with_foreign_extensions(patient)) == patient_to_client(patient)
    assert patient_to_client(_with_foreign_extensions(bare)) == patient_to_client(bare)


@SETTINGS
@given(encounters)
def test_fhir_encounter_round_trip(encounter: Encounter) -> None:
    payload = record_payload(encounter)
    resource = encounter_to_fhir(payload, encounter_id="e1", patient_ref="Patient/p1")
    FhirEncounter.model_validate(resource)
    assert encounter_from_fhir(resource, client=payload["client"]) == payload


@SETTINGS
@given(referrals)
def test_fhir_referral_round_trip(referral: Referral) -> None:
    payload = record_payload(referral)
    sr, task = referral_to_fhir(
        payload, service_request_id="sr1", task_id="t1", patient_ref="Patient/p1"
    )
    ServiceRequest.model_validate(sr)
    Task.model_validate(task)
    assert task["focus"] == {"reference": "ServiceRequest/sr1"}
    assert referral_from_fhir(sr, task, client=payload["client"]) == payload


@given(st.sampled_from(["hmis:IMPL", "MERCY", "urn:oid:1.2", "http://x.org/a", "https://x", ""]))
def test_fhir_identifier_systems_round_trip(system: str) -> None:
    assert canonical_system(fhir_system(system)) == system


def test_fhir_patient_shape_for_partners() -> None:
    """What a partner sees: FHIR codes and US Core extensions, source codes kept aside."""
    client = Client(
        meta=meta("client"),
        identifiers=(Identifier("hmis:IMPL-9", "P-77", "PI"),),
        names=(HumanName("Testperson", ("Ada",)),),
        ssn="078-05-1121",
        sex="1",
        race=("White",),
        ethnicity="1",
    )
    patient = client_to_patient(record_payload(client))
    assert patient["gender"] == "male"
    assert patient["identifier"][0]["system"] == "urn:cie-hub:hmis:IMPL-9"
    assert patient["identifier"][1]["system"] == "http://hl7.org/fhir/sid/us-ssn"
    race = next(e for e in patient["extension"] if e["url"].endswith("us-core-race"))
    assert race["extension"][0]["valueCoding"]["code"] == "2106-3"
    ethnicity = next(e for e in patient["extension"] if e["url"].endswith("us-core-ethnicity"))
    assert ethnicity["extension"][0]["valueCoding"]["code"] == "2135-2"


def test_fhir_partner_patient_without_hub_extensions() -> None:
    """A plain partner Patient maps to the canonical words and codes every connector uses
    (sex as FHIR's gender words, race as OMB/CDC codes, deceased true/false)."""
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "gender": "female",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": "078-05-1121"}],
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2028-9",
                        },
                    },
                    {"url": "text", "valueString": "Asian"},
                ],
            }
        ],
        "deceasedBoolean": False,
    }
    assert patient_to_client(patient) == {
        "ssn": "078-05-1121",
        "sex": "female",
        "race": ["2028-9"],
        "deceased": "false",
    }


def test_fhir_merge_client_payloads() -> None:
    a = {"identifiers": [{"system": "s", "value": "1"}], "birth_date": "1980-01-01"}
    b = {"identifiers": [{"system": "s", "value": "1"}, {"system": "t", "value": "2"}], "sex": "F"}
    assert merge_client_payloads([a, b]) == {
        "identifiers": [{"system": "s", "value": "1"}, {"system": "t", "value": "2"}],
        "birth_date": "1980-01-01",
        "sex": "F",
    }


def test_fhir_merge_takes_a_birth_dates_precision_with_the_birth_date() -> None:
    full = {"birth_date": "1980-05-17"}
    year = {"birth_date": "1980-01-01", "birth_date_precision": "year"}
    assert merge_client_payloads([full, year]) == {"birth_date": "1980-05-17"}
    assert merge_client_payloads([year, full]) == year


def test_fhir_partial_birth_dates_are_kept_at_their_precision() -> None:
    for birth, payload in (
        ("1980", {"birth_date": "1980-01-01", "birth_date_precision": "year"}),
        ("1980-05", {"birth_date": "1980-05-01", "birth_date_precision": "month"}),
        ("1980-05-17", {"birth_date": "1980-05-17"}),
        ("1980-13", {}),  # no date: no birth date
        ("1980-02-30", {}),
    ):
        assert patient_to_client({"resourceType": "Patient", "birthDate": birth}) == payload
        client = client_record(meta("client"), payload)
        if payload:
            assert client_to_patient(record_payload(client))["birthDate"] == birth
        else:
            assert client.birth_date is None


@SETTINGS
@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 1, 1)),
    st.sampled_from(["", "month", "year"]),
)
def test_fhir_partial_birth_dates_round_trip(day: date, precision: str) -> None:
    """FHIR ``date`` → canonical → FHIR keeps the text, and canonical → FHIR → canonical the
    record, at every precision."""
    text = iso_text(day, precision)
    payload = patient_to_client({"resourceType": "Patient", "birthDate": text})
    client = client_record(meta("client"), payload)
    assert (client.birth_date, client.birth_date_precision) == (
        first_day(day, precision),
        precision,
    )
    assert record_payload(client) == payload
    patient = client_to_patient(payload)
    Patient.model_validate(patient)
    assert patient["birthDate"] == text


def test_fhir_birthdate_search_on_a_partial_birth_date() -> None:
    """FHIR date search: a partial birth date is the range it covers (eq: the search value's
    range holds it; ge/le/gt/lt: the ranges overlap beyond the value; sa/eb: wholly after or
    before)."""
    for birth, search, found in (
        ("1980", "1980", True),
        ("1980", "1980-01-01", False),  # eq: the search's day does not hold the whole year
        ("1980", "1980-01", False),
        ("1980", "ge1980-06-01", True),  # the year reaches past 1 June
        ("1980", "le1980-06-01", True),
        ("1980", "gt1980-12-31", False),
        ("1980", "lt1980-01-01", False),
        ("1980", "sa1979", True),
        ("1980-05", "1980", True),
        ("1980-05", "1980-05", True),
        ("1980-05", "ne1980-05", False),
        ("1980-05", "ge1980-05-31", True),
        ("1980-05", "ge1980-06-01", False),
        ("1980-05", "le1980-04-30", False),
        ("1980-05", "eb1980-06", True),
    ):
        client = client_record(meta("client"), patient_to_client({"birthDate": birth}))
        patient = client_to_patient(record_payload(client))
        assert birthdate_matches(patient.get("birthDate"), search) is found, (birth, search)
