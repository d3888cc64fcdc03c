"""Shared fixtures for the consent engine tests: a small network and record factories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from consent import (
    DEFAULT_CATEGORIES,
    Agency,
    ClientFacts,
    ClientRef,
    ConsentPolicy,
    ConsentRecord,
    DecisionRequest,
)

AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def build_agencies() -> dict[str, Agency]:
    """The test network: one agency of each kind plus a few edge cases."""
    both = frozenset({"hmis", "cie"})
    cie = frozenset({"cie"})
    hmis = frozenset({"hmis"})
    agencies = [
        Agency("shelter", "Shelter A", "hmis", both),
        Agency("outreach", "Outreach B", "hmis", hmis),
        Agency("partner", "Food bank", "cie", cie),
        Agency("clinic", "Clinic", "health", cie),
        Agency("rehab", "Rehab", "part2", cie),
        Agency("safehouse", "Safe house", "vsp", hmis),
        Agency("retired", "Gone", "cie", cie, active=False),
        Agency("joining", "New", "cie", cie, active_from=date(2025, 6, 2)),
        Agency("leaving", "Leaving", "cie", cie, active_until=date(2025, 6, 1)),
        Agency("left", "Left", "cie", cie, active_until=date(2025, 5, 31)),
    ]
    return {a.id: a for a in agencies}


@pytest.fixture(scope="session")
def agencies() -> dict[str, Agency]:
    """The test network (immutable agencies; no test changes the mapping)."""
    return build_agencies()


@pytest.fixture
def policy() -> ConsentPolicy:
    """The default policy."""
    return ConsentPolicy()


def make_consent(**overrides: Any) -> ConsentRecord:
    """A valid written client consent signed 2025-01-01, overridden field by field."""
    fields: dict[str, Any] = {
        "id": "mpa-1",
        "client": ClientRef("urn:hmis", "P-1"),
        "signed_on": date(2025, 1, 1),
        "expires_on": date(2028, 1, 1),
        "recorded_by": "shelter",
    }
    fields.update(overrides)
    return ConsentRecord(**fields)


def make_request(**overrides: Any) -> DecisionRequest:
    """Shelter's record to the CIE partner for coordination, default categories, an adult."""
    fields: dict[str, Any] = {
        "client": ClientFacts(birth_date=date(1980, 5, 5)),
        "owner": "shelter",
        "recipient": "partner",
        "purpose": "coordination",
        "categories": DEFAULT_CATEGORIES,
        "at": AT,
    }
    fields.update(overrides)
    return DecisionRequest(**fields)


@pytest.fixture
def consent() -> Callable[..., ConsentRecord]:
    """Factory for consent records."""
    return make_consent


@pytest.fixture
def request_for() -> Callable[..., DecisionRequest]:
    """Factory for decision requests."""
    return make_request
