"""MPA consent records ↔ FHIR R4 Consent: round trips, LEAP-style shapes, what cannot map."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.consent import Consent
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import Agency, ConsentPolicy, ConsentRecord, parse_consent
from consent.categories import NETWORKS, PURPOSES, SENSITIVE_CATEGORIES
from consent.model import DEFAULT_PURPOSES
from plugins.fhir.consent_mapping import ConsentMappingError, consent_from_fhir, consent_to_fhir

AGENCIES = {
    a: Agency(a, a, "cie", frozenset({"cie"}), identifiers=(("urn:oid:9.9", f"{a}-oid"),))
    for a in ("hospital-x", "cie-211", "shelter-a", "recovery-p2")
}
POLICY = ConsentPolicy()


def subset(items: Any) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(sorted(items)), unique=True).map(sorted)


@st.composite
def consent_records(draw: st.DrawFn) -> ConsentRecord:
    signed = draw(st.dates(min_value=date(2015, 1, 1), max_value=date(2030, 1, 1)))
    data: dict[str, Any] = {
        "id": draw(st.sampled_from(["mpa-0001", "c 2/x", "fhir:abc"])),
        "client": draw(
            st.sampled_from(
                [
                    {"system": "hmis:IMPL-9", "value": "P-77"},
                    {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-1"},
                    {"value": "P-77"},
                ]
            )
        ),
        "signed_on": signed.isoformat(),
        "method": draw(st.sampled_from(["written", "electronic", "verbal"])),
        "given_by": draw(st.sampled_from(["client", "guardian"])),
        "networks": draw(subset(NETWORKS)),
        "exclude_agencies": draw(subset(AGENCIES)),
        "sensitive": draw(subset(SENSITIVE_CATEGORIES)),
        "part2_recipients": draw(subset(AGENCIES)),
        "purposes": draw(subset(PURPOSES)),
    }
    if draw(st.booleans()):
        data["expires_on"] = (signed + timedelta(days=draw(st.integers(0, 4000)))).isoformat()
    if draw(st.booleans()):
        data["revoked_on"] = (signed + timedelta(days=draw(st.integers(0, 400)))).isoformat()
    if draw(st.booleans()):
        data["recorded_by"] = draw(st.sampled_from(sorted(AGENCIES)))
    return parse_consent(data, agencies=AGENCIES, policy=POLICY)


def shared_nothing(record: ConsentRecord) -> ConsentRecord:
    """A consent for no network or no purpose is a plain deny; its other lists do nothing."""
    if record.networks and record.purposes:
        return record
    return dataclasses.replace(
        record,
        networks=frozenset(),
        purposes=DEFAULT_PURPOSES,
        exclude_agencies=frozenset(),
        sensitive=frozenset(),
    )


@settings(max_examples=150, deadline=None)
@given(consent_records())
def test_fhir_consent_round_trip(record: ConsentRecord) -> None:
    resource = consent_to_fhir(record)
    Consent.model_validate(resource)
    assert consent_from_fhir(resource, agencies=AGENCIES, policy=POLICY) == shared_nothing(record)


def leap_consent(**provision: Any) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": "leap-1",
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
        "patient": {"identifier": {"system": "urn:cie-hub:hmis:IMPL-9", "value": "P-77"}},
        "dateTime": "2025-02-01T10:00:00-08:00",
        "provision": provision,
    }


def test_fhir_leap_permit_with_deny_exceptions() -> None:
    resource = leap_consent(
        type="permit",
        period={"end": "2026-02-01"},
        purpose=[{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
        provision=[
            {"type": "deny", "actor": [{"reference": {"reference": "Organization/shelter-a"}}]},
            {
                "type": "deny",
                "actor": [
                    {"reference": {"identifier": {"system": "urn:oid:9.9", "value": "cie-211-oid"}}}
                ],
            },
            {"type": "deny", "actor": [{"reference": {"reference": "Organization/unknown-org"}}]},
            {"type": "deny", "securityLabel": [{"code": "ETH"}, {"code": "HIV"}]},
        ],
    )
    record = consent_from_fhir(resource, agencies=AGENCIES, policy=POLICY)
    assert record.id == "leap-1"
    assert record.client.system == "hmis:IMPL-9" and record.client.value == "P-77"
    assert record.signed_on == date(2025, 2, 1) and record.expires_on == date(2026, 2, 1)
    assert record.networks == frozenset(NETWORKS)
    assert record.purposes == {"treatment"}
    assert record.exclude_agencies == {"shelter-a", "cie-211"}
    assert record.sensitive == {"behavioral_health", "dv"}
    assert record.revoked_on is None


def test_fhir_optout_and_inactive() -> None:
    optout = leap_consent()
    optout["policyRule"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]
    }
    record = consent_from_fhir(optout, agencies=AGENCIES, policy=POLICY)
    assert record.networks == frozenset()
    inactive = {**leap_consent(type="permit"), "status": "inactive"}
    assert consent_from_fhir(inactive, agencies=AGENCIES, policy=POLICY).revoked_on == date(
        2025, 2, 1
    )


@pytest.mark.parametrize(
    ("change", "element"),
    [
        ({"status": "draft"}, "status"),
        ({"scope": {"coding": [{"code": "research"}]}}, "scope"),
        ({"patient": {"reference": "Patient/1"}}, "patient"),
        (
            {
                "provision": {
                    "type": "permit",
                    "provision": [{"type": "deny", "class": [{"code": "Observation"}]}],
                }
            },
            "provision.provision[0].class",
        ),
        (
            {
                "provision": {
                    "type": "permit",
                    "actor": [{"reference": {"reference": "Organization/cie-211"}}],
                }
            },
            "provision.actor[0]",
        ),
        (
            {
                "provision": {
                    "type": "deny",
                    "actor": [{"reference": {"reference": "Organization/cie-211"}}],
                }
            },
            "provision.actor",
        ),
        (
            {"provision": {"type": "permit", "purpose": [{"code": "GOSSIP"}]}},
            "provision.purpose[0]",
        ),
        (
            {
                "provision": {
                    "type": "permit",
                    "provision": [{"type": "deny", "securityLabel": [{"code": "STD"}]}],
                }
            },
            "provision.provision[0].securityLabel[0]",
        ),
    ],
)
def test_fhir_consents_the_mpa_cannot_express(change: dict[str, Any], element: str) -> None:
    resource = {**leap_consent(type="permit"), **change}
    with pytest.raises(ConsentMappingError) as err:
        consent_from_fhir(resource, agencies=AGENCIES, policy=POLICY)
    assert err.value.element == element
    assert "P-77" not in str(err.value)
