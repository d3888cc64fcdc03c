"""LEAP-compatible FHIR R4 Consent evaluation, mirroring the behaviours LEAP's tests pin."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from consent import (
    AGENCY_EXCLUDED,
    CONSENT_EXPIRED,
    CONSENT_NOT_YET_VALID,
    CONSENT_REVOKED,
    NO_CONSENT,
    NOTHING_LEFT,
    PART2_RECIPIENT_NOT_NAMED,
    VSP_RECORD,
    Decision,
    FhirConsentError,
    evaluate_fhir_consents,
    mpa_to_leap,
)

SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
OID = "urn:ietf:rfc:3986"
NPI = "http://hl7.org/fhir/sid/us-npi"
MEDICARE = "http://hl7.org/fhir/sid/us-medicare"
AT = datetime(2025, 6, 1, 12, tzinfo=UTC)

BAD_ORG = [(OID, "urn:oid:2.16.840.1.113883.20.5"), (NPI, "1111111111")]
GOOD_ORG = [(OID, "urn:oid:1.2.3.4")]
OTHER = [(OID, "urn:oid:9.9.9")]
PATIENT = [(MEDICARE, "0000-000-0000")]
TARGETS: dict[str, list[tuple[str, str]]] = {
    "Organization/bad": BAD_ORG,
    "Organization/good": GOOD_ORG,
    "Patient/52": PATIENT,
    "Patient/53": [(MEDICARE, "9999-999-9999")],
}


def resolve(reference: str) -> Sequence[tuple[str, str]]:
    """The test FHIR server: identifiers of referenced resources."""
    return TARGETS.get(reference, [])


def actor(reference: str) -> dict[str, Any]:
    """A provision actor referencing ``reference``."""
    role = {"coding": [{"system": f"{ACT_CODE}/ParticipationType", "code": "IRCP"}]}
    return {"role": role, "reference": {"reference": reference}}


def purpose(code: str) -> dict[str, str]:
    """A provision purpose coding."""
    return {"system": ACT_REASON, "code": code}


def fhir_consent(
    rule: str | None = "OPTIN",
    *,
    id: str = "c1",
    status: str = "active",
    scope: str = "patient-privacy",
    date_time: str | None = "2024-01-01T00:00:00Z",
    period: tuple[str | None, str | None] | None = ("2024-01-01", "2026-12-31"),
    provisions: list[dict[str, Any]] | None = None,
    **root: Any,
) -> dict[str, Any]:
    """A Consent resource shaped like LEAP's fixtures."""
    provision: dict[str, Any] = dict(root)
    if period is not None:
        provision["period"] = {k: v for k, v in zip(("start", "end"), period, strict=True) if v}
    if provisions:
        provision["provision"] = provisions
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": id,
        "status": status,
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": scope}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-6"}]}],
        "patient": {"reference": "Patient/52"},
        "provision": provision,
    }
    if rule is not None:
        resource["policyRule"] = {"coding": [{"system": ACT_CODE, "code": rule}]}
    if date_time is not None:
        resource["dateTime"] = date_time
    return resource


def consult(
    consents: list[dict[str, Any]],
    *,
    pou: str | None = "TREAT",
    actors: Sequence[tuple[str, str]] = OTHER,
    patient_ids: Sequence[tuple[str, str]] = (),
    scope: str = "patient-privacy",
    at: datetime = AT,
) -> str:
    """One consult against ``consents``."""
    return evaluate_fhir_consents(
        consents,
        patient_ids=patient_ids,
        scope=scope,
        purpose=pou,
        actor_ids=actors,
        resolve_actor=resolve,
        at=at,
    )


DENY_BAD_ORG = {"type": "deny", "actor": [actor("Organization/bad")]}


def test_opt_in_permits_and_opt_out_denies() -> None:
    assert consult([fhir_consent("OPTIN")]) == "CONSENT_PERMIT"
    assert consult([fhir_consent("OPTOUT")]) == "CONSENT_DENY"


def test_no_consent_at_all() -> None:
    assert consult([]) == "NO_CONSENT"


@pytest.mark.parametrize(
    "period",
    [("2020-01-01", "2022-01-01"), ("2025-06-02", None), (None, "2025-05-31T23:59:59Z")],
    ids=["expired", "not-yet-valid", "ended-yesterday"],
)
def test_expired_or_not_yet_valid_consent_is_no_consent(
    period: tuple[str | None, str | None],
) -> None:
    assert consult([fhir_consent("OPTOUT", period=period)]) == "NO_CONSENT"


def test_period_dates_cover_their_whole_day() -> None:
    assert consult([fhir_consent(period=("2025-06-01", "2025-06-01"))]) == "CONSENT_PERMIT"
    assert consult([fhir_consent(period=("2025", "2025-06"))]) == "CONSENT_PERMIT"
    assert consult([fhir_consent(period=(None, "2025-05"))]) == "NO_CONSENT"


@pytest.mark.parametrize(
    "status", ["inactive", "draft", "proposed", "rejected", "entered-in-error"]
)
def test_a_consent_that_is_not_active_is_no_consent(status: str) -> None:
    assert consult([fhir_consent("OPTOUT", status=status)]) == "NO_CONSENT"


def test_a_consent_of_another_scope_is_no_consent() -> None:
    assert consult([fhir_consent("OPTOUT", scope="adr")]) == "NO_CONSENT"
    assert consult([fhir_consent("OPTOUT", scope="adr")], scope="adr") == "CONSENT_DENY"


def test_scope_carried_as_a_category_matches() -> None:
    resource = fhir_consent("OPTOUT")
    del resource["scope"]
    resource["category"].append({"coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy"}]})
    assert consult([resource]) == "CONSENT_DENY"


@pytest.mark.parametrize("identifier", BAD_ORG)
def test_recipient_on_the_deny_list_by_any_identifier_is_denied(
    identifier: tuple[str, str],
) -> None:
    resource = fhir_consent(provisions=[DENY_BAD_ORG])
    assert consult([resource], actors=[(OID, "urn:oid:0.0"), identifier]) == "CONSENT_DENY"
    assert consult([resource], actors=GOOD_ORG) == "CONSENT_PERMIT"


def test_actor_named_by_a_logical_identifier() -> None:
    logical = {"reference": {"identifier": {"system": NPI, "value": "2222222222"}}}
    resource = fhir_consent(provisions=[{"type": "deny", "actor": [logical]}])
    assert consult([resource], actors=[(NPI, "2222222222")]) == "CONSENT_DENY"
    assert consult([resource], actors=[(NPI, "3333333333")]) == "CONSENT_PERMIT"


def test_denied_purpose_is_denied() -> None:
    resource = fhir_consent(provisions=[{"type": "deny", "purpose": [purpose("HMARKT")]}])
    assert consult([resource], pou="HMARKT") == "CONSENT_DENY"
    assert consult([resource], pou="TREAT") == "CONSENT_PERMIT"


def test_conditions_of_one_provision_must_all_match() -> None:
    both = {"type": "deny", "actor": [actor("Organization/bad")], "purpose": [purpose("HMARKT")]}
    resource = fhir_consent(provisions=[both])
    assert consult([resource], actors=BAD_ORG, pou="HMARKT") == "CONSENT_DENY"
    assert consult([resource], actors=BAD_ORG, pou="TREAT") == "CONSENT_PERMIT"
    assert consult([resource], actors=GOOD_ORG, pou="HMARKT") == "CONSENT_PERMIT"


def test_sibling_provisions_combine_as_or() -> None:
    by_purpose = {"type": "deny", "purpose": [purpose("HMARKT")]}
    resource = fhir_consent(provisions=[DENY_BAD_ORG, by_purpose])
    assert consult([resource], actors=BAD_ORG, pou="TREAT") == "CONSENT_DENY"
    assert consult([resource], actors=GOOD_ORG, pou="HMARKT") == "CONSENT_DENY"
    assert consult([resource], actors=GOOD_ORG, pou="TREAT") == "CONSENT_PERMIT"


def test_an_empty_provision_matches_everything() -> None:
    assert consult([fhir_consent(provisions=[{"type": "deny"}])]) == "CONSENT_DENY"


def test_nested_exception_flips_its_parent() -> None:
    allow_good = {"type": "permit", "actor": [actor("Organization/good")]}
    resource = fhir_consent("OPTOUT", provisions=[allow_good])
    assert consult([resource], actors=GOOD_ORG) == "CONSENT_PERMIT"
    assert consult([resource], actors=BAD_ORG) == "CONSENT_DENY"


def test_exception_to_an_exception_flips_back() -> None:
    treat_ok = {"type": "permit", "purpose": [purpose("TREAT")]}
    resource = fhir_consent(provisions=[{**DENY_BAD_ORG, "provision": [treat_ok]}])
    assert consult([resource], actors=BAD_ORG, pou="TREAT") == "CONSENT_PERMIT"
    assert consult([resource], actors=BAD_ORG, pou="HMARKT") == "CONSENT_DENY"
    assert consult([resource], actors=GOOD_ORG, pou="HMARKT") == "CONSENT_PERMIT"


def test_matched_siblings_that_resolve_differently_deny() -> None:
    treat_ok = {"type": "permit", "purpose": [purpose("TREAT")]}
    lifted = {**DENY_BAD_ORG, "provision": [treat_ok]}  # resolves to permit for TREAT
    everyone = {"type": "deny", "actor": [actor("Organization/good"), actor("Organization/bad")]}
    resource = fhir_consent(provisions=[lifted, everyone])
    assert consult([resource], actors=BAD_ORG, pou="TREAT") == "CONSENT_DENY"
    assert consult([fhir_consent(provisions=[lifted])], actors=BAD_ORG) == "CONSENT_PERMIT"


def test_nested_provision_outside_its_period_does_not_apply() -> None:
    old_ban = {**DENY_BAD_ORG, "period": {"end": "2024-12-31"}}
    assert consult([fhir_consent(provisions=[old_ban])], actors=BAD_ORG) == "CONSENT_PERMIT"


@pytest.mark.parametrize(
    ("older", "newer", "expected"),
    [("OPTOUT", "OPTIN", "CONSENT_PERMIT"), ("OPTIN", "OPTOUT", "CONSENT_DENY")],
)
def test_the_more_recent_consent_wins(older: str, newer: str, expected: str) -> None:
    old = fhir_consent(older, id="old", date_time="2024-01-01")
    new = fhir_consent(newer, id="new", date_time="2025-02-01T09:30:00-08:00")
    assert consult([old, new]) == expected
    assert consult([new, old]) == expected


def test_an_older_consent_applies_when_the_newer_is_not_in_force() -> None:
    old = fhir_consent("OPTOUT", id="old", date_time="2024-01-01")
    new = fhir_consent("OPTIN", id="new", date_time="2025-01-01", status="inactive")
    assert consult([old, new]) == "CONSENT_DENY"


def test_equal_times_deny_wins_and_undated_is_oldest() -> None:
    a = fhir_consent("OPTIN", id="a", date_time="2025-01-01")
    b = fhir_consent("OPTOUT", id="b", date_time="2025-01-01T00:00:00Z")
    assert consult([a, b]) == consult([b, a]) == "CONSENT_DENY"
    undated = fhir_consent("OPTOUT", id="u", date_time=None)
    assert consult([undated, a]) == "CONSENT_PERMIT"


def test_root_provision_type_sets_the_base_decision() -> None:
    assert consult([fhir_consent(None, type="deny")]) == "CONSENT_DENY"
    assert consult([fhir_consent("OPTOUT", type="permit")]) == "CONSENT_PERMIT"


def test_no_computable_base_decision_is_no_consent() -> None:
    assert consult([fhir_consent("hipaa-auth")]) == "NO_CONSENT"


def test_root_conditions_limit_what_the_consent_covers() -> None:
    resource = fhir_consent("hipaa-self-pay", type="permit", purpose=[purpose("TREAT")])
    assert consult([resource], pou="TREAT") == "CONSENT_PERMIT"
    assert consult([resource], pou="HMARKT") == "NO_CONSENT"


@pytest.mark.parametrize(
    ("rule", "exception", "pou", "actors"),
    [
        ("OPTIN", {"type": "deny", "securityLabel": [{"code": "R"}]}, "TREAT", OTHER),
        ("OPTOUT", {"type": "permit", "class": [{"code": "Observation"}]}, "TREAT", OTHER),
        ("OPTIN", {"type": "deny", "purpose": [purpose("HMARKT")]}, None, OTHER),
        ("OPTOUT", {"type": "permit", "purpose": [purpose("TREAT")]}, None, OTHER),
        ("OPTIN", DENY_BAD_ORG, "TREAT", ()),
    ],
    ids=["deny-label", "permit-class", "deny-purpose", "permit-purpose", "no-actor"],
)
def test_undetermined_exceptions_fail_closed(
    rule: str,
    exception: dict[str, Any],
    pou: str | None,
    actors: Sequence[tuple[str, str]],
) -> None:
    resource = fhir_consent(rule, provisions=[exception])
    assert consult([resource], pou=pou, actors=actors) == "CONSENT_DENY"


def test_consents_are_matched_to_the_patient() -> None:
    mine = fhir_consent("OPTOUT")
    assert consult([mine], patient_ids=PATIENT) == "CONSENT_DENY"
    assert consult([mine], patient_ids=[(MEDICARE, "9999-999-9999")]) == "NO_CONSENT"
    logical = fhir_consent("OPTOUT")
    logical["patient"] = {"identifier": {"system": MEDICARE, "value": "0000-000-0000"}}
    assert consult([logical], patient_ids=PATIENT) == "CONSENT_DENY"
    other = fhir_consent("OPTOUT")
    other["patient"] = {"reference": "Patient/53"}
    assert consult([other], patient_ids=PATIENT) == "NO_CONSENT"
    assert consult([other]) == "CONSENT_DENY"  # no patient ids: already filtered


def test_other_resources_are_ignored() -> None:
    assert consult([{**fhir_consent("OPTOUT"), "resourceType": "Patient"}]) == "NO_CONSENT"


@pytest.mark.parametrize("date_time", ["01/01/2024", "2024-02-30", "2024-13", "2024-1-1"])
def test_malformed_dates_raise_naming_consent_and_element(date_time: str) -> None:
    with pytest.raises(FhirConsentError, match="Consent/c9: element 'dateTime'"):
        consult([fhir_consent(id="c9", date_time=date_time)])
    with pytest.raises(FhirConsentError, match=re.escape("element 'provision.period.end'")):
        consult([fhir_consent(id="c9", period=("2024-01-01", date_time))])


def decision(outcome: str, *reasons: str) -> Decision:
    """An MPA decision with ``reasons``."""
    released = frozenset() if outcome == "deny" else frozenset({"identity"})
    return Decision(outcome, released, frozenset(), reasons, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mpa", "leap"),
    [
        (decision("permit"), "CONSENT_PERMIT"),
        (decision("permit-redacted", PART2_RECIPIENT_NOT_NAMED), "CONSENT_PERMIT"),
        (decision("deny", NO_CONSENT), "NO_CONSENT"),
        (decision("deny", CONSENT_EXPIRED), "NO_CONSENT"),
        (decision("deny", CONSENT_NOT_YET_VALID), "NO_CONSENT"),
        (decision("deny", CONSENT_REVOKED), "NO_CONSENT"),
        (decision("deny", AGENCY_EXCLUDED), "CONSENT_DENY"),
        (decision("deny", VSP_RECORD), "CONSENT_DENY"),
        (decision("deny", PART2_RECIPIENT_NOT_NAMED, NOTHING_LEFT), "CONSENT_DENY"),
    ],
)
def test_mpa_decisions_map_to_leap_summaries(mpa: Decision, leap: str) -> None:
    assert mpa_to_leap(mpa) == leap
