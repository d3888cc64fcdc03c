"""The calendar day of a decision is the network's (``[consent] timezone``): in San Diego a
consent signed on 1 March is not in force on the evening of 28 February, though it is
already 1 March in UTC; birthdays, revocation days and agencies' dates count the same way."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from consent import Agency, ClientFacts, ConsentPolicy
from consent.rules import evaluate, evaluate_consent
from tests.unit.consent.conftest import make_consent, make_request

PACIFIC = ConsentPolicy(timezone="America/Los_Angeles")
EVENING_28_FEB_IN_SAN_DIEGO = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)  # 18:00 PST


def test_a_consent_is_in_force_from_its_signing_day_in_the_networks_zone(
    agencies: dict[str, Agency],
) -> None:
    consent = make_consent(signed_on=date(2025, 3, 1))
    request = make_request(recipient="partner", at=EVENING_28_FEB_IN_SAN_DIEGO)
    utc = evaluate(request, [consent], agencies, ConsentPolicy())
    local = evaluate(request, [consent], agencies, PACIFIC)
    assert utc.outcome == "permit"
    assert (local.outcome, local.reasons) == ("deny", ("CONSENT_NOT_YET_VALID",))
    later = make_request(recipient="partner", at=datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    assert evaluate(later, [consent], agencies, PACIFIC).outcome == "permit"


def test_a_minor_comes_of_age_on_the_birthday_in_the_networks_zone(
    agencies: dict[str, Agency],
) -> None:
    consent = make_consent(signed_on=date(2024, 1, 1))
    facts = ClientFacts(birth_date=date(2007, 3, 1))  # 18 on 1 March 2025
    request = make_request(recipient="partner", at=EVENING_28_FEB_IN_SAN_DIEGO, client=facts)
    decision = evaluate_consent(request, [consent], agencies, PACIFIC)
    assert decision.reasons == ("MINOR_NEEDS_GUARDIAN",)


def test_an_unknown_time_zone_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match="key 'timezone': unknown time zone 'Mars/Olympus'"):
        ConsentPolicy.from_mapping({"timezone": "Mars/Olympus"})
    assert ConsentPolicy.from_mapping({"timezone": "America/Los_Angeles"}) == PACIFIC
