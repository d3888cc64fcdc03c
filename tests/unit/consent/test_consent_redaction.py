"""Redaction applies a decision to a record's fields, failing closed."""

from __future__ import annotations

from consent import Decision, Outcome, redact

FIELDS: dict[str, object] = {
    "FirstName": "Ana",
    "Address": "1 Main St",
    "Zip": "92101",
    "ProjectType": 1,
    "HIVStatus": 1,
    "Unmapped": "?",
}
CATEGORY_OF = {
    "FirstName": "identity",
    "Address": "identity",
    "Zip": "identity",
    "ProjectType": "housing",
    "HIVStatus": "hiv",
}
LOCATION = frozenset({"Address", "Zip"})


def decision(released: set[str], *, location_withheld: bool = False) -> Decision:
    """A permit releasing ``released``."""
    outcome: Outcome = "permit-redacted" if location_withheld else "permit"
    return Decision(outcome, frozenset(released), frozenset(), (), "mpa-1", location_withheld)


def test_only_released_categories_are_kept() -> None:
    kept = redact(FIELDS, CATEGORY_OF, decision({"identity", "housing"}), LOCATION)
    assert kept == {"FirstName": "Ana", "Address": "1 Main St", "Zip": "92101", "ProjectType": 1}


def test_fields_without_a_category_are_dropped() -> None:
    every = decision({"identity", "housing", "hiv", "demographics"})
    assert "Unmapped" not in redact(FIELDS, CATEGORY_OF, every)


def test_location_fields_are_dropped_when_withheld() -> None:
    kept = redact(FIELDS, CATEGORY_OF, decision({"identity"}, location_withheld=True), LOCATION)
    assert kept == {"FirstName": "Ana"}


def test_a_deny_keeps_nothing() -> None:
    deny = Decision("deny", frozenset(), frozenset({"identity"}), ("NO_CONSENT",), None)
    assert redact(FIELDS, CATEGORY_OF, deny, LOCATION) == {}


def test_the_input_is_not_changed() -> None:
    before = dict(FIELDS)
    redact(FIELDS, CATEGORY_OF, decision({"housing"}))
    assert before == FIELDS
