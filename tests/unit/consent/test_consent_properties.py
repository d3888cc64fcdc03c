"""Property tests: the decision is deterministic and never releases more than it may."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

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
    DecisionRequest,
    consent_in_force,
    evaluate,
)

AGENCY_IDS = ["shelter", "outreach", "partner", "clinic", "rehab", "safehouse", "retired"]
DAYS = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


def subsets(items: list[str] | tuple[str, ...]) -> st.SearchStrategy[frozenset[str]]:
    """Any subset of ``items``."""
    return st.frozensets(st.sampled_from(list(items)))


@st.composite
def consents(draw: st.DrawFn) -> ConsentRecord:
    """Any valid consent record."""
    signed = draw(DAYS)
    return ConsentRecord(
        id=draw(st.text("abc123", min_size=1, max_size=4)),
        client=ClientRef(None, "P-1"),
        signed_on=signed,
        expires_on=signed + timedelta(days=draw(st.integers(0, 2000))),
        method=draw(st.sampled_from(["written", "electronic", "verbal"])),
        given_by=draw(st.sampled_from(["client", "guardian"])),
        networks=draw(subsets(["hmis", "cie"])),
        exclude_agencies=draw(subsets(AGENCY_IDS)),
        sensitive=draw(subsets(sorted(SENSITIVE_CATEGORIES))),
        part2_recipients=draw(subsets(AGENCY_IDS)),
        purposes=draw(subsets(PURPOSES)),
        revoked_on=draw(st.none() | st.just(signed + timedelta(days=draw(st.integers(0, 900))))),
    )


requests = st.builds(
    DecisionRequest,
    client=st.builds(
        ClientFacts,
        birth_date=st.none() | st.dates(min_value=date(1930, 1, 1), max_value=date(2025, 1, 1)),
        fleeing_dv=st.booleans(),
    ),
    owner=st.sampled_from([*AGENCY_IDS, "unknown-owner"]),
    recipient=st.sampled_from([*AGENCY_IDS, "unknown-recipient"]),
    purpose=st.sampled_from(PURPOSES),
    categories=subsets([*CATEGORIES, "not-a-category"]),
    at=st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2032, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
)
policies = st.builds(
    ConsentPolicy,
    default_term_days=st.integers(1, 2000),
    age_of_majority=st.integers(14, 21),
    accept_verbal_sensitive=st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(request=requests, records=st.lists(consents(), max_size=4), policy=policies)
def test_decision_is_deterministic_and_never_over_releases(
    agencies: dict[str, Agency],
    request: DecisionRequest,
    records: list[ConsentRecord],
    policy: ConsentPolicy,
) -> None:
    decision = evaluate(request, records, agencies, policy)
    # Deterministic, and independent of the order the consents come in.
    assert evaluate(request, records, agencies, policy) == decision
    assert evaluate(request, list(reversed(records)), agencies, policy) == decision
    # Released and withheld split exactly what was asked for.
    assert decision.released.isdisjoint(decision.redacted)
    assert decision.released <= request.categories
    assert decision.released | decision.redacted == request.categories
    if decision.outcome == "deny":
        assert not decision.released
        assert not decision.permitted
    elif decision.outcome == "permit":
        assert not decision.redacted
        assert not decision.location_withheld
    else:
        assert decision.released
        assert decision.redacted or decision.location_withheld
    if request.owner == request.recipient:
        return
    # A disclosure: only with a consent in force, never from a VSP, never sensitive data
    # the consent does not opt in.
    if decision.permitted:
        in_force = consent_in_force(records, request.at)
        assert in_force is not None
        assert decision.consent_id == in_force.id
        assert agencies[request.owner].kind != "vsp"
        assert request.purpose not in ("research", "marketing")
        assert (decision.released & SENSITIVE_CATEGORIES) <= in_force.sensitive
        assert decision.location_withheld == request.client.fleeing_dv
