"""One test (or more) per CONSENT.md rule and reason code, with the boundary days."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from consent import (
    AGE_UNKNOWN,
    AGENCY_EXCLUDED,
    CATEGORY_UNKNOWN,
    CONSENT_EXPIRED,
    CONSENT_NOT_YET_VALID,
    CONSENT_REVOKED,
    DEFAULT_CATEGORIES,
    DV_LOCATION_WITHHELD,
    GUARDIAN_CONSENT_LAPSED,
    MINOR_NEEDS_GUARDIAN,
    NO_CONSENT,
    NOTHING_LEFT,
    OUT_OF_NETWORK_SCOPE,
    OWNER_UNKNOWN,
    PART2_RECIPIENT_NOT_NAMED,
    PURPOSE_NOT_PERMITTED,
    RECIPIENT_NOT_ACTIVE,
    RECIPIENT_UNKNOWN,
    REDACTED_SENSITIVE,
    SAME_AGENCY,
    VERBAL_NOT_ACCEPTED,
    VSP_RECORD,
    Agency,
    ClientFacts,
    ConsentPolicy,
    ConsentRecord,
    Decision,
    DecisionRequest,
    consent_in_force,
    evaluate,
)

ConsentFactory = Callable[..., ConsentRecord]
RequestFactory = Callable[..., DecisionRequest]
Agencies = dict[str, Agency]
POLICY = ConsentPolicy()


def on(day: date) -> datetime:
    """Noon UTC on ``day``."""
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def decide(
    request: DecisionRequest,
    consents: list[ConsentRecord],
    agencies: Agencies,
    policy: ConsentPolicy = POLICY,
) -> Decision:
    """``evaluate``, checking on the way that the consents' order never matters."""
    decision = evaluate(request, consents, agencies, policy)
    assert evaluate(request, list(reversed(consents)), agencies, policy) == decision
    return decision


def assert_deny(decision: Decision, reason: str, request: DecisionRequest) -> None:
    """A deny releases nothing, withholds everything asked, for exactly ``reason``."""
    assert decision.outcome == "deny"
    assert not decision.permitted
    assert decision.reasons == (reason,)
    assert decision.released == frozenset()
    assert decision.redacted == request.categories


# Rule 0: the plain permit ------------------------------------------------------------


def test_plain_permit_releases_everything_asked_with_no_reason(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for()
    decision = decide(request, [consent()], agencies)
    assert decision == Decision("permit", DEFAULT_CATEGORIES, frozenset(), (), "mpa-1")
    assert decision.permitted


# Rule 1 ------------------------------------------------------------------------------


def test_same_agency_is_permitted_without_any_consent(
    request_for: RequestFactory, agencies: Agencies
) -> None:
    asked = frozenset({"identity", "hiv", "substance_use"})
    request = request_for(recipient="shelter", categories=asked)
    decision = decide(request, [], agencies)
    assert decision == Decision("permit", asked, frozenset(), (SAME_AGENCY,), None)


def test_same_agency_vsp_keeps_its_own_records(
    request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(owner="safehouse", recipient="safehouse")
    assert decide(request, [], agencies).reasons == (SAME_AGENCY,)


def test_same_agency_does_not_withhold_location_from_itself(
    request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(recipient="shelter", client=ClientFacts(fleeing_dv=True))
    assert not decide(request, [], agencies).location_withheld


# Rule 2 ------------------------------------------------------------------------------


def test_unknown_recipient_is_denied(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(recipient="nobody")
    decision = decide(request, [consent()], agencies)
    assert_deny(decision, RECIPIENT_UNKNOWN, request)
    assert decision.consent_id is None


@pytest.mark.parametrize("recipient", ["retired", "joining", "left"])
def test_inactive_recipient_is_denied(
    recipient: str, consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(recipient=recipient)
    assert_deny(decide(request, [consent()], agencies), RECIPIENT_NOT_ACTIVE, request)


def test_recipient_is_active_on_its_last_day(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(recipient="leaving")  # active_until = the decision day
    assert decide(request, [consent()], agencies).outcome == "permit"


def test_recipient_becomes_active_on_its_first_day(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(recipient="joining", at=on(date(2025, 6, 2)))
    assert decide(request, [consent()], agencies).outcome == "permit"


# Rule 3 ------------------------------------------------------------------------------


def test_vsp_record_is_denied_even_with_a_full_consent(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    full = consent(
        sensitive=frozenset({"dv", "hiv", "behavioral_health", "substance_use"}),
        part2_recipients=frozenset({"outreach"}),
        networks=frozenset({"hmis", "cie"}),
    )
    request = request_for(owner="safehouse", recipient="outreach")
    decision = decide(request, [full], agencies)
    assert_deny(decision, VSP_RECORD, request)
    assert decision.consent_id is None


def test_unknown_owner_fails_closed(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(owner="hmis-org-77")
    assert_deny(decide(request, [consent()], agencies), OWNER_UNKNOWN, request)


# Rules 4 and 5 -----------------------------------------------------------------------


def test_no_consent_is_denied(request_for: RequestFactory, agencies: Agencies) -> None:
    request = request_for()
    decision = decide(request, [], agencies)
    assert_deny(decision, NO_CONSENT, request)
    assert decision.consent_id is None


def test_revoked_on_the_decision_day_is_revoked(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(at=on(date(2025, 6, 1)))
    decision = decide(request, [consent(revoked_on=date(2025, 6, 1))], agencies)
    assert_deny(decision, CONSENT_REVOKED, request)
    assert decision.consent_id == "mpa-1"


def test_revocation_dated_tomorrow_does_not_stop_today(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(at=on(date(2025, 6, 1)))
    decision = decide(request, [consent(revoked_on=date(2025, 6, 2))], agencies)
    assert decision.outcome == "permit"


def test_the_day_of_expiry_is_expired(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(at=on(date(2028, 1, 1)))
    decision = decide(request, [consent(expires_on=date(2028, 1, 1))], agencies)
    assert_deny(decision, CONSENT_EXPIRED, request)
    assert decision.consent_id == "mpa-1"


def test_the_day_before_expiry_is_valid(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(at=datetime(2027, 12, 31, 23, 59, tzinfo=UTC))
    assert decide(request, [consent(expires_on=date(2028, 1, 1))], agencies).permitted


def test_revocation_is_checked_before_expiry(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(at=on(date(2029, 1, 1)))
    both = consent(expires_on=date(2028, 1, 1), revoked_on=date(2026, 1, 1))
    assert decide(request, [both], agencies).reasons == (CONSENT_REVOKED,)


def test_consent_signed_after_the_decision_is_not_yet_valid(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(at=on(date(2024, 12, 31)))
    decision = decide(request, [consent()], agencies)
    assert_deny(decision, CONSENT_NOT_YET_VALID, request)
    assert decision.consent_id == "mpa-1"


def test_consent_is_valid_on_its_signing_day(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(at=datetime(2025, 1, 1, 0, 0, tzinfo=UTC))
    assert decide(request, [consent()], agencies).permitted


def test_newest_consent_wins_a_newer_revocation(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    old = consent(id="old", signed_on=date(2024, 1, 1))
    new = consent(id="new", signed_on=date(2025, 2, 1), revoked_on=date(2025, 3, 1))
    decision = decide(request_for(), [old, new], agencies)
    assert decision.reasons == (CONSENT_REVOKED,)
    assert decision.consent_id == "new"


def test_newest_consent_wins_over_an_older_revoked_one(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    old = consent(id="old", signed_on=date(2024, 1, 1), revoked_on=date(2024, 6, 1))
    new = consent(id="new", signed_on=date(2025, 2, 1))
    decision = decide(request_for(), [old, new], agencies)
    assert decision.outcome == "permit"
    assert decision.consent_id == "new"


def test_newest_consent_narrows_an_older_one(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    old = consent(id="old", signed_on=date(2024, 1, 1))
    new = consent(id="new", signed_on=date(2025, 2, 1), exclude_agencies=frozenset({"partner"}))
    assert decide(request_for(), [old, new], agencies).reasons == (AGENCY_EXCLUDED,)


def test_future_dated_consent_does_not_displace_the_valid_one_before_its_day(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    old = consent(id="old", signed_on=date(2024, 1, 1))
    future = consent(
        id="future", signed_on=date(2025, 7, 1), exclude_agencies=frozenset({"partner"})
    )
    before = decide(request_for(), [old, future], agencies)
    assert (before.outcome, before.consent_id) == ("permit", "old")
    after = decide(request_for(at=on(date(2025, 7, 1))), [old, future], agencies)
    assert (after.reasons, after.consent_id) == ((AGENCY_EXCLUDED,), "future")


def test_same_day_consents_the_revoked_one_wins(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    a = consent(id="a", signed_on=date(2025, 2, 1), revoked_on=date(2025, 2, 1))
    b = consent(id="b", signed_on=date(2025, 2, 1))
    decision = decide(request_for(), [a, b], agencies)
    assert (decision.reasons, decision.consent_id) == ((CONSENT_REVOKED,), "a")


def test_consent_in_force_helper(consent: ConsentFactory) -> None:
    old = consent(id="old", signed_on=date(2024, 1, 1))
    new = consent(id="new", signed_on=date(2025, 6, 2))
    assert consent_in_force([new, old], on(date(2025, 6, 1))) == old
    assert consent_in_force([new, old], on(date(2025, 6, 2))) == new
    assert consent_in_force([new], on(date(2025, 6, 1))) is None
    assert consent_in_force([], on(date(2025, 6, 1))) is None


# Rule 6 ------------------------------------------------------------------------------


def test_minor_the_day_before_their_18th_birthday_needs_a_guardian(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(client=ClientFacts(birth_date=date(2007, 6, 2)), at=on(date(2025, 6, 1)))
    decision = decide(request, [consent()], agencies)
    assert_deny(decision, MINOR_NEEDS_GUARDIAN, request)
    assert decision.consent_id == "mpa-1"


def test_client_consent_counts_from_the_18th_birthday(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(client=ClientFacts(birth_date=date(2007, 6, 1)), at=on(date(2025, 6, 1)))
    decision = decide(request, [consent()], agencies)
    assert (decision.outcome, decision.reasons) == ("permit", ())


@pytest.mark.parametrize(
    ("day", "outcome"), [(date(2026, 2, 28), "deny"), (date(2026, 3, 1), "permit")]
)
def test_leap_day_birth_comes_of_age_on_1_march(
    day: date,
    outcome: str,
    consent: ConsentFactory,
    request_for: RequestFactory,
    agencies: Agencies,
) -> None:
    request = request_for(client=ClientFacts(birth_date=date(2008, 2, 29)), at=on(day))
    assert decide(request, [consent()], agencies).outcome == outcome


def test_configured_age_of_majority_is_used(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(client=ClientFacts(birth_date=date(2005, 1, 1)))  # 20 at T
    decision = decide(request, [consent()], agencies, ConsentPolicy(age_of_majority=21))
    assert decision.reasons == (MINOR_NEEDS_GUARDIAN,)


def test_guardian_consent_covers_a_minor(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(client=ClientFacts(birth_date=date(2010, 1, 1)))
    assert decide(request, [consent(given_by="guardian")], agencies).outcome == "permit"


def test_guardian_consent_lapses_on_the_18th_birthday(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    facts = ClientFacts(birth_date=date(2007, 6, 1))
    guardian = consent(given_by="guardian", signed_on=date(2024, 1, 1))
    request = request_for(client=facts, at=on(date(2025, 6, 1)))
    decision = decide(request, [guardian], agencies)
    assert_deny(decision, GUARDIAN_CONSENT_LAPSED, request)
    day_before = request_for(client=facts, at=on(date(2025, 5, 31)))
    assert decide(day_before, [guardian], agencies).outcome == "permit"


def test_guardian_consent_signed_for_an_adult_does_not_lapse(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    guardian = consent(given_by="guardian")  # the client was 44 when it was signed
    assert decide(request_for(), [guardian], agencies).outcome == "permit"


# A birth date known only to the year: 2007-01-01 .. 2007-12-31; on AT (2025-06-01) the
# client is 17 or 18.
BORN_2007 = ClientFacts(birth_date=date(2007, 1, 1), birth_date_latest=date(2007, 12, 31))


def test_a_birth_year_counts_the_client_a_minor_until_the_last_possible_birthday(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(client=BORN_2007)
    assert_deny(decide(request, [consent()], agencies), MINOR_NEEDS_GUARDIAN, request)
    new_year = request_for(client=BORN_2007, at=on(date(2025, 12, 31)))
    assert decide(new_year, [consent()], agencies).outcome == "permit"


def test_a_birth_year_lapses_a_guardians_consent_from_the_first_possible_birthday(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    guardian = consent(given_by="guardian", signed_on=date(2024, 6, 1))
    request = request_for(client=BORN_2007)
    assert_deny(decide(request, [guardian], agencies), GUARDIAN_CONSENT_LAPSED, request)
    before = request_for(client=BORN_2007, at=on(date(2024, 12, 31)))
    assert decide(before, [guardian], agencies).outcome == "permit"
    # Signed when the client was 17 or already 18: they may have come of age since.
    late = consent(given_by="guardian", signed_on=date(2025, 3, 1))
    assert_deny(decide(request, [late], agencies), GUARDIAN_CONSENT_LAPSED, request)


def test_unknown_age_presumes_an_adult_and_notes_it(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    decision = decide(request_for(client=ClientFacts()), [consent()], agencies)
    assert (decision.outcome, decision.reasons) == ("permit", (AGE_UNKNOWN,))


def test_unknown_age_with_a_guardian_consent_is_noted_too(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(client=ClientFacts())
    decision = decide(request, [consent(given_by="guardian")], agencies)
    assert (decision.outcome, decision.reasons) == ("permit", (AGE_UNKNOWN,))


# Rules 7-9 ---------------------------------------------------------------------------


def test_recipient_outside_the_consent_networks_is_denied(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(recipient="partner")  # cie only
    decision = decide(request, [consent(networks=frozenset({"hmis"}))], agencies)
    assert_deny(decision, OUT_OF_NETWORK_SCOPE, request)
    hmis_peer = request_for(recipient="outreach")
    assert decide(hmis_peer, [consent(networks=frozenset({"hmis"}))], agencies).permitted


def test_excluded_agency_is_denied(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for()
    excluding = consent(exclude_agencies=frozenset({"partner"}))
    assert_deny(decide(request, [excluding], agencies), AGENCY_EXCLUDED, request)


def test_network_scope_is_checked_before_exclusion(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    both = consent(networks=frozenset({"hmis"}), exclude_agencies=frozenset({"partner"}))
    assert decide(request_for(), [both], agencies).reasons == (OUT_OF_NETWORK_SCOPE,)


def test_purpose_outside_the_consent_is_denied(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(purpose="payment")
    assert_deny(decide(request, [consent()], agencies), PURPOSE_NOT_PERMITTED, request)


@pytest.mark.parametrize("purpose", ["research", "marketing"])
def test_research_and_marketing_are_never_permitted(
    purpose: str, consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    listing = consent(purposes=frozenset({"coordination", purpose}))
    request = request_for(purpose=purpose)
    assert_deny(decide(request, [listing], agencies), PURPOSE_NOT_PERMITTED, request)


# Rule 10 -----------------------------------------------------------------------------


def test_sensitive_category_not_opted_in_is_redacted(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(categories=frozenset({"identity", "hiv", "behavioral_health"}))
    decision = decide(request, [consent(sensitive=frozenset({"behavioral_health"}))], agencies)
    assert decision.outcome == "permit-redacted"
    assert decision.released == {"identity", "behavioral_health"}
    assert decision.redacted == {"hiv"}
    assert decision.reasons == (REDACTED_SENSITIVE,)


def test_sensitive_category_opted_in_is_released(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(categories=frozenset({"identity", "hiv"}))
    decision = decide(request, [consent(sensitive=frozenset({"hiv"}))], agencies)
    assert decision.outcome == "permit"
    assert decision.released == {"identity", "hiv"}


def test_verbal_consent_does_not_release_sensitive_categories(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    verbal = consent(method="verbal", sensitive=frozenset({"dv"}))
    request = request_for(categories=frozenset({"housing", "dv"}))
    decision = decide(request, [verbal], agencies)
    assert decision.outcome == "permit-redacted"
    assert decision.released == {"housing"}
    assert decision.redacted == {"dv"}
    assert decision.reasons == (VERBAL_NOT_ACCEPTED,)


def test_verbal_sensitive_is_released_when_the_policy_accepts_it(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    verbal = consent(method="verbal", sensitive=frozenset({"dv"}))
    request = request_for(categories=frozenset({"housing", "dv"}))
    lenient = ConsentPolicy(accept_verbal_sensitive=True)
    assert decide(request, [verbal], agencies, lenient).released == {"housing", "dv"}


def test_verbal_consent_releases_non_sensitive_categories(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    decision = decide(request_for(), [consent(method="verbal")], agencies)
    assert (decision.outcome, decision.released) == ("permit", DEFAULT_CATEGORIES)


SUD = frozenset({"services", "substance_use"})


@pytest.mark.parametrize(
    ("recipient", "purpose", "named", "released"),
    [
        ("partner", "coordination", frozenset(), False),  # non-health CIE partner
        ("partner", "treatment", frozenset(), False),  # treatment, but not health
        ("partner", "coordination", frozenset({"partner"}), True),  # named recipient
        ("clinic", "treatment", frozenset(), True),  # health, TPO
        ("clinic", "payment", frozenset(), True),
        ("clinic", "operations", frozenset(), True),
        ("clinic", "coordination", frozenset(), False),  # health, not TPO
        ("rehab", "treatment", frozenset(), True),  # another Part 2 program
        ("rehab", "referral", frozenset(), False),
    ],
)
def test_substance_use_needs_a_named_or_tpo_recipient(
    recipient: str,
    purpose: str,
    named: frozenset[str],
    released: bool,
    consent: ConsentFactory,
    request_for: RequestFactory,
    agencies: Agencies,
) -> None:
    sud = consent(
        sensitive=frozenset({"substance_use"}),
        part2_recipients=named,
        purposes=frozenset({"coordination", "referral", "treatment", "payment", "operations"}),
    )
    request = request_for(recipient=recipient, purpose=purpose, categories=SUD)
    decision = decide(request, [sud], agencies)
    if released:
        assert (decision.outcome, decision.released, decision.reasons) == ("permit", SUD, ())
    else:
        assert decision.outcome == "permit-redacted"
        assert decision.redacted == {"substance_use"}
        assert decision.reasons == (PART2_RECIPIENT_NOT_NAMED,)


def test_substance_use_not_opted_in_names_the_opt_in_reason(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(recipient="clinic", purpose="treatment", categories=SUD)
    decision = decide(request, [consent()], agencies)
    assert decision.reasons == (REDACTED_SENSITIVE,)


def test_fleeing_dv_withholds_location_from_other_agencies(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(client=ClientFacts(birth_date=date(1990, 1, 1), fleeing_dv=True))
    decision = decide(request, [consent()], agencies)
    assert decision.location_withheld
    assert decision.outcome == "permit-redacted"
    assert decision.released == DEFAULT_CATEGORIES  # no whole category is removed
    assert decision.redacted == frozenset()
    assert decision.reasons == (DV_LOCATION_WITHHELD,)


def test_not_fleeing_dv_keeps_location(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    assert not decide(request_for(), [consent()], agencies).location_withheld


def test_unknown_category_is_withheld(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(categories=frozenset({"identity", "astrology"}))
    decision = decide(request, [consent()], agencies)
    assert decision.released == {"identity"}
    assert decision.redacted == {"astrology"}
    assert decision.reasons == (CATEGORY_UNKNOWN,)


def test_reasons_come_in_rule_order(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(
        client=ClientFacts(fleeing_dv=True),
        categories=frozenset({"identity", "hiv", "substance_use"}),
    )
    decision = decide(request, [consent(sensitive=frozenset({"substance_use"}))], agencies)
    assert decision.reasons == (
        AGE_UNKNOWN,
        REDACTED_SENSITIVE,
        PART2_RECIPIENT_NOT_NAMED,
        DV_LOCATION_WITHHELD,
    )
    assert decision.redacted == {"hiv", "substance_use"}


# Rule 11 -----------------------------------------------------------------------------


def test_nothing_left_is_a_deny_listing_what_was_withheld(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(categories=frozenset({"hiv", "dv"}))
    decision = decide(request, [consent()], agencies)
    assert decision.outcome == "deny"
    assert decision.released == frozenset()
    assert decision.redacted == {"hiv", "dv"}
    assert decision.reasons == (REDACTED_SENSITIVE, NOTHING_LEFT)
    assert decision.consent_id == "mpa-1"
    assert not decision.location_withheld


def test_asking_for_nothing_leaves_nothing(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    decision = decide(request_for(categories=frozenset()), [consent()], agencies)
    assert (decision.outcome, decision.reasons) == ("deny", (NOTHING_LEFT,))


# Order: first deny wins --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "consents", "reason"),
    [
        ({"recipient": "nobody", "owner": "safehouse"}, [], RECIPIENT_UNKNOWN),
        ({"recipient": "retired", "owner": "safehouse"}, [], RECIPIENT_NOT_ACTIVE),
        ({"owner": "safehouse"}, [], VSP_RECORD),
        ({"client": ClientFacts(birth_date=date(2015, 1, 1))}, [], NO_CONSENT),
        (
            {"client": ClientFacts(birth_date=date(2015, 1, 1)), "purpose": "marketing"},
            ["revoked"],
            CONSENT_REVOKED,
        ),
        ({"client": ClientFacts(birth_date=date(2015, 1, 1))}, ["narrow"], MINOR_NEEDS_GUARDIAN),
        ({"purpose": "marketing"}, ["narrow"], OUT_OF_NETWORK_SCOPE),
        ({"purpose": "marketing"}, ["excluding"], AGENCY_EXCLUDED),
    ],
)
def test_the_first_failing_rule_gives_the_reason(
    overrides: dict[str, object],
    consents: list[str],
    reason: str,
    consent: ConsentFactory,
    request_for: RequestFactory,
    agencies: Agencies,
) -> None:
    shapes = {
        "revoked": consent(revoked_on=date(2025, 2, 1), networks=frozenset({"hmis"})),
        "narrow": consent(networks=frozenset({"hmis"}), purposes=frozenset({"treatment"})),
        "excluding": consent(exclude_agencies=frozenset({"partner"})),
    }
    request = request_for(**overrides)
    decision = decide(request, [shapes[name] for name in consents], agencies)
    assert_deny(decision, reason, request)


def test_decision_json_is_the_check_shape(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    request = request_for(categories=frozenset({"identity", "housing", "hiv"}))
    assert decide(request, [consent()], agencies).to_json() == {
        "decision": "permit-redacted",
        "released": ["housing", "identity"],
        "redacted": ["hiv"],
        "reasons": ["REDACTED_SENSITIVE"],
        "consent_id": "mpa-1",
    }


def test_decision_time_zone_decides_the_day(
    consent: ConsentFactory, request_for: RequestFactory, agencies: Agencies
) -> None:
    # 2028-01-01 03:00 in UTC is still 2027-12-31 in San Diego: not yet expired there.
    utc = datetime(2028, 1, 1, 3, tzinfo=UTC)
    pacific = utc.astimezone(timezone(timedelta(hours=-8)))
    expiring = consent(expires_on=date(2028, 1, 1))
    assert decide(request_for(at=utc), [expiring], agencies).reasons == (CONSENT_EXPIRED,)
    assert decide(request_for(at=pacific), [expiring], agencies).permitted
    assert pacific - utc == timedelta(0)
