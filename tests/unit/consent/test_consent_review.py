"""Review of consent/ against CONSENT.md: input the importer must refuse cleanly (naming
record and field) or must accept, and invariants of the rules checked as properties."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import (
    CATEGORIES,
    PURPOSES,
    SENSITIVE_CATEGORIES,
    Agency,
    ClientFacts,
    ClientRef,
    ConsentPolicy,
    ConsentRecord,
    ConsentValidationError,
    DecisionRequest,
    consent_in_force,
    evaluate,
    parse_consent_file,
)
from consent.categories import PART2_RECIPIENT_KINDS, PART2_TPO_PURPOSES

POLICY = ConsentPolicy()
AGENCY_IDS = ["shelter", "outreach", "partner", "clinic", "rehab", "safehouse", "retired"]
DAYS = st.dates(min_value=date(2022, 1, 1), max_value=date(2028, 12, 31))


def line(**overrides: object) -> str:
    """One consent record as a JSON line (non-ASCII characters written as they are)."""
    data: dict[str, object] = {
        "id": "mpa-1",
        "client": {"system": "urn:hmis", "value": "P-1"},
        "signed_on": "2025-03-01",
    }
    data.update(overrides)
    return json.dumps(data, ensure_ascii=False)


def refused(text: str, agencies: dict[str, Agency]) -> ConsentValidationError:
    """The error a file is refused with (fails the test when it is accepted)."""
    with pytest.raises(ConsentValidationError) as caught:
        parse_consent_file(text, agencies=agencies, policy=POLICY)
    return caught.value


# ---- the consent JSON format ----------------------------------------------------------


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_json_lines_keep_a_unicode_line_separator_inside_a_string(
    agencies: dict[str, Agency], separator: str
) -> None:
    # JSON allows these unescaped in a string; only \n, \r\n and \r end a JSON Line.
    text = line(id=f"mpa{separator}1") + "\n" + line(id="mpa-2") + "\n"
    records = parse_consent_file(text, agencies=agencies, policy=POLICY)
    assert [r.id for r in records] == [f"mpa{separator}1", "mpa-2"]


def test_json_lines_still_split_at_cr_lf_and_a_lone_cr(agencies: dict[str, Agency]) -> None:
    text = line(id="a") + "\r\n" + line(id="b") + "\r" + line(id="c") + "\n\n"
    records = parse_consent_file(text, agencies=agencies, policy=POLICY)
    assert [r.id for r in records] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" + line()[:-1] + ', "x": ' + "9" * 5000 + "}]", "file: field '<file>': invalid JSON"),
        (
            line() + "\n" + line(id="b")[:-1] + ', "x": ' + "9" * 5000 + "}\n",
            "record 1: field '<json>': invalid JSON on line 2",
        ),
    ],
)
def test_a_number_with_too_many_digits_is_invalid_json_not_a_crash(
    agencies: dict[str, Agency], text: str, message: str
) -> None:
    # json refuses integers past 4300 digits with a bare ValueError.
    error = refused(text, agencies)
    assert message in str(error) and "too many digits" in str(error)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ('{"id": "mpa-\\ud800", "client": {"value": "P-1"}, "signed_on": "2025-03-01"}', "id"),
        (
            '{"id": "mpa-1", "client": {"value": "P-\\udc00"}, "signed_on": "2025-03-01"}',
            "client.value",
        ),
        (
            '{"id": "mpa-1", "client": {"system": "urn:\\ud83d", "value": "P-1"},'
            ' "signed_on": "2025-03-01"}',
            "client.system",
        ),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field(
    agencies: dict[str, Agency], record: str, field: str
) -> None:
    # Accepted, it could not be stored (UTF-8): the import crashed instead of naming it.
    error = refused("[" + record + "]", agencies)
    assert (error.record_index, error.field) == (0, field)
    assert "surrogate" in error.problem and "P-" not in str(error)


def test_a_surrogate_pair_is_text(agencies: dict[str, Agency]) -> None:
    text = '[{"id": "mpa-\\ud83d\\ude00", "client": {"value": "P-1"}, "signed_on": "2025-03-01"}]'
    assert parse_consent_file(text, agencies=agencies, policy=POLICY)[0].id == "mpa-\U0001f600"


# ---- the rules as properties ------------------------------------------------------------


@st.composite
def consents(draw: st.DrawFn, consent_id: str = "") -> ConsentRecord:
    """Any valid consent record of client P-1."""
    signed = draw(DAYS)
    revoked = draw(st.none() | st.integers(0, 1200))
    return ConsentRecord(
        id=consent_id or draw(st.sampled_from(["a", "b", "c"])),
        client=ClientRef(None, "P-1"),
        signed_on=signed,
        expires_on=signed + timedelta(days=draw(st.integers(0, 1500))),
        method=draw(st.sampled_from(["written", "electronic", "verbal"])),
        given_by=draw(st.sampled_from(["client", "guardian"])),
        networks=draw(st.frozensets(st.sampled_from(["hmis", "cie"]))),
        exclude_agencies=draw(st.frozensets(st.sampled_from(AGENCY_IDS))),
        sensitive=draw(st.frozensets(st.sampled_from(sorted(SENSITIVE_CATEGORIES)))),
        part2_recipients=draw(st.frozensets(st.sampled_from(AGENCY_IDS))),
        purposes=draw(st.frozensets(st.sampled_from(PURPOSES))),
        revoked_on=None if revoked is None else signed + timedelta(days=revoked),
    )


requests = st.builds(
    DecisionRequest,
    client=st.builds(
        ClientFacts,
        birth_date=st.none() | st.dates(min_value=date(1990, 1, 1), max_value=date(2015, 1, 1)),
        fleeing_dv=st.booleans(),
    ),
    owner=st.sampled_from(AGENCY_IDS),
    recipient=st.sampled_from(AGENCY_IDS),
    purpose=st.sampled_from(PURPOSES),
    categories=st.frozensets(st.sampled_from(CATEGORIES)),
    at=st.datetimes(min_value=datetime(2022, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
)
policies = st.builds(
    ConsentPolicy, age_of_majority=st.integers(16, 21), accept_verbal_sensitive=st.booleans()
)


def restricted(consent: ConsentRecord, how: str, data: st.DataObject) -> ConsentRecord:
    """``consent`` with one more restriction of kind ``how``."""
    if how == "purposes":
        gone = data.draw(st.sampled_from(PURPOSES))
        return dataclasses.replace(consent, purposes=consent.purposes - {gone})
    if how == "networks":
        gone = data.draw(st.sampled_from(["hmis", "cie"]))
        return dataclasses.replace(consent, networks=consent.networks - {gone})
    if how == "exclude":
        added = data.draw(st.sampled_from(AGENCY_IDS))
        return dataclasses.replace(consent, exclude_agencies=consent.exclude_agencies | {added})
    if how == "sensitive":
        gone = data.draw(st.sampled_from(sorted(SENSITIVE_CATEGORIES)))
        return dataclasses.replace(consent, sensitive=consent.sensitive - {gone})
    if how == "part2":
        gone = data.draw(st.sampled_from(AGENCY_IDS))
        return dataclasses.replace(consent, part2_recipients=consent.part2_recipients - {gone})
    if how == "verbal":
        return dataclasses.replace(consent, method="verbal")
    day = consent.signed_on + timedelta(days=data.draw(st.integers(0, 1500)))
    if how == "revoke":
        earlier = day if consent.revoked_on is None else min(day, consent.revoked_on)
        return dataclasses.replace(consent, revoked_on=earlier)
    return dataclasses.replace(consent, expires_on=min(day, consent.expires_on))


@settings(max_examples=400, deadline=None)
@given(
    request=requests,
    consent=consents("a"),
    policy=policies,
    how=st.sampled_from(
        ["purposes", "networks", "exclude", "sensitive", "part2", "verbal", "revoke", "expire"]
    ),
    data=st.data(),
)
def test_adding_a_restriction_to_the_consent_never_releases_more(
    agencies: dict[str, Agency],
    request: DecisionRequest,
    consent: ConsentRecord,
    policy: ConsentPolicy,
    how: str,
    data: st.DataObject,
) -> None:
    before = evaluate(request, [consent], agencies, policy)
    after = evaluate(request, [restricted(consent, how, data)], agencies, policy)
    assert after.released <= before.released
    if after.permitted and before.location_withheld:
        assert after.location_withheld


@settings(max_examples=400, deadline=None)
@given(request=requests, records=st.lists(consents(), min_size=1, max_size=4), policy=policies)
def test_a_disclosure_meets_every_rule_of_the_consent_in_force(
    agencies: dict[str, Agency],
    request: DecisionRequest,
    records: list[ConsentRecord],
    policy: ConsentPolicy,
) -> None:
    decision = evaluate(request, records, agencies, policy)
    if request.owner == request.recipient or not decision.permitted:
        return
    in_force = consent_in_force(records, request.at)
    assert in_force is not None
    day = request.at.date()
    recipient = agencies[request.recipient]
    # Rule 5: never revoked, expired or not yet signed at T.
    assert in_force.revoked_on is None or in_force.revoked_on > day
    assert in_force.signed_on <= day < in_force.expires_on
    # Rules 7-9.
    assert recipient.networks & in_force.networks
    assert request.recipient not in in_force.exclude_agencies
    assert request.purpose in in_force.purposes
    # Rule 10: a released sensitive category was opted in, not verbally unless accepted,
    # and substance use only to a named or a health/Part 2 TPO recipient.
    for category in decision.released & SENSITIVE_CATEGORIES:
        assert category in in_force.sensitive
        assert in_force.method != "verbal" or policy.accept_verbal_sensitive
    if "substance_use" in decision.released:
        assert request.recipient in in_force.part2_recipients or (
            recipient.kind in PART2_RECIPIENT_KINDS and request.purpose in PART2_TPO_PURPOSES
        )
