"""SMART v1 system scopes: what a token request may ask for, and what a granted set allows."""

from __future__ import annotations

import pytest

from hub.auth import FULL_SCOPE, Caller, ScopeError, parse_scopes


def test_no_scope_requested_is_read_and_write_of_everything() -> None:
    assert parse_scopes("") == frozenset(FULL_SCOPE.split())
    assert parse_scopes("  ") == frozenset({"system/*.read", "system/*.write"})


@pytest.mark.parametrize(
    "text",
    [
        "patient/*.read",
        "user/Patient.read",
        "system/Patient",
        "system/*.rs",
        "openid",
        "system/patient.read",
    ],
)
def test_a_scope_outside_the_grammar_is_refused_by_name(text: str) -> None:
    with pytest.raises(ScopeError, match="is not supported"):
        parse_scopes(f"system/*.read {text}")


@pytest.mark.parametrize(
    ("scopes", "rtype", "write", "allowed"),
    [
        ("system/*.read", "Patient", False, True),
        ("system/*.read", "Patient", True, False),
        ("system/Patient.read", "Patient", False, True),
        ("system/Patient.read", "Encounter", False, False),
        ("system/Patient.write", "Patient", False, False),
        ("system/Patient.*", "Patient", True, True),
        ("system/*.*", "Task", True, True),
        ("system/Patient.read system/*.write", "Task", True, True),
        ("system/Patient.read system/*.write", "Task", False, False),
    ],
)
def test_a_caller_is_held_to_its_scopes(
    scopes: str, rtype: str, write: bool, allowed: bool
) -> None:
    caller = Caller("hospital-x", "partner", "smart:mercy", parse_scopes(scopes))
    assert caller.allows(rtype, write) is allowed


def test_a_caller_without_scopes_is_not_limited_by_them() -> None:
    # API keys and client certificates: their role and the consent gate limit them.
    caller = Caller("hospital-x", "partner", "key1")
    assert caller.allows("Patient", True) and caller.allows("Task", False)
