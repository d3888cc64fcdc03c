"""Value objects: agency participation, policy config, JSON shapes, no PII in reprs."""

from __future__ import annotations

import ast
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import consent
from consent import (
    Agency,
    ClientFacts,
    ClientRef,
    ConsentPolicy,
    ConsentRecord,
    Decision,
    DecisionRequest,
)


def noon(day: date) -> datetime:
    """Noon UTC on ``day``."""
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def test_agency_participation_bounds_are_inclusive() -> None:
    agency = Agency(
        "a",
        "A",
        "cie",
        frozenset({"cie"}),
        active_from=date(2025, 1, 1),
        active_until=date(2025, 12, 31),
    )
    assert not agency.is_active(noon(date(2024, 12, 31)))
    assert agency.is_active(noon(date(2025, 1, 1)))
    assert agency.is_active(noon(date(2025, 12, 31)))
    assert not agency.is_active(noon(date(2026, 1, 1)))
    assert not Agency("b", "B", "cie", frozenset(), active=False).is_active(noon(date(2025, 6, 1)))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "church"}, "kind"),
        ({"networks": frozenset({"internet"})}, "networks"),
        ({"active_from": date(2025, 2, 1), "active_until": date(2025, 1, 1)}, "active_until"),
    ],
)
def test_agency_rejects_bad_values(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"id": "a", "name": "A", "kind": "cie", "networks": frozenset()}
    with pytest.raises(ValueError, match=f"field '{field}'"):
        Agency(**{**base, **kwargs})  # type: ignore[arg-type]


def test_policy_from_mapping() -> None:
    assert ConsentPolicy.from_mapping({}) == ConsentPolicy()
    policy = ConsentPolicy.from_mapping(
        {"default_term_days": 365, "age_of_majority": 21, "accept_verbal_sensitive": True}
    )
    assert policy == ConsentPolicy(365, 21, True)


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"default_term": 365}, "default_term"),
        ({"default_term_days": "365"}, "default_term_days"),
        ({"default_term_days": True}, "default_term_days"),
        ({"default_term_days": 0}, "default_term_days"),
        ({"age_of_majority": 18.0}, "age_of_majority"),
        ({"age_of_majority": -1}, "age_of_majority"),
        ({"accept_verbal_sensitive": 1}, "accept_verbal_sensitive"),
    ],
)
def test_policy_rejects_unknown_keys_and_wrong_types(mapping: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=f"'{key}'"):
        ConsentPolicy.from_mapping(mapping)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "smoke"}, "method"),
        ({"given_by": "friend"}, "given_by"),
        ({"expires_on": date(2024, 12, 31)}, "expires_on"),
        ({"revoked_on": date(2024, 12, 31)}, "revoked_on"),
    ],
)
def test_consent_record_rejects_impossible_values(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "id": "mpa-1",
        "client": ClientRef(None, "SECRET"),
        "signed_on": date(2025, 1, 1),
        "expires_on": date(2026, 1, 1),
    }
    with pytest.raises(ValueError, match=f"field '{field}'") as caught:
        ConsentRecord(**{**base, **kwargs})  # type: ignore[arg-type]
    assert "SECRET" not in str(caught.value)


def test_consent_json_shape() -> None:
    record = ConsentRecord(
        id="mpa-1",
        client=ClientRef(None, "P-1"),
        signed_on=date(2025, 3, 1),
        expires_on=date(2028, 2, 29),
        sensitive=frozenset({"hiv", "dv"}),
    )
    assert record.to_json() == {
        "id": "mpa-1",
        "client": {"value": "P-1"},
        "signed_on": "2025-03-01",
        "expires_on": "2028-02-29",
        "method": "written",
        "given_by": "client",
        "networks": ["cie", "hmis"],
        "exclude_agencies": [],
        "sensitive": ["dv", "hiv"],
        "part2_recipients": [],
        "purposes": ["coordination", "eligibility", "referral", "treatment"],
        "revoked_on": None,
        "recorded_by": None,
    }


def test_client_data_stays_out_of_reprs() -> None:
    ref = ClientRef("urn:hmis", "SECRET-ID")
    record = ConsentRecord("mpa-1", ref, date(2025, 1, 1), date(2026, 1, 1))
    facts = ClientFacts(birth_date=date(1999, 12, 31), fleeing_dv=True)
    request = DecisionRequest(facts, "a", "b", "referral", frozenset(), noon(date(2025, 1, 2)))
    for value in (ref, record, facts, request):
        text = repr(value)
        assert "SECRET-ID" not in text
        assert "1999" not in text
        assert "fleeing" not in text


def test_decision_permitted_and_json() -> None:
    deny = Decision("deny", frozenset(), frozenset({"identity"}), ("NO_CONSENT",), None)
    assert not deny.permitted
    assert deny.to_json() == {
        "decision": "deny",
        "released": [],
        "redacted": ["identity"],
        "reasons": ["NO_CONSENT"],
        "consent_id": None,
    }
    assert Decision("permit-redacted", frozenset({"a"}), frozenset(), (), "x", True).permitted


def test_package_imports_only_the_standard_library() -> None:
    root = Path(consent.__file__).parent
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top == "consent" or top in sys.stdlib_module_names, f"{path.name}: {name}"


def test_public_names_are_exported() -> None:
    assert sorted(consent.__all__) == sorted(set(consent.__all__))
    for name in consent.__all__:
        assert hasattr(consent, name), name
