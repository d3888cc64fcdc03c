"""Value types (``consent.value_types``): compared and hashed by value, slotted, changed
only by ``dataclasses.replace``, as the frozen dataclasses they replace were."""

from __future__ import annotations

import dataclasses
from datetime import date

from consent.decision import Decision
from consent.model import ClientFacts


def _decision(reason: str = "CONSENT_VALID") -> Decision:
    return Decision("permit", frozenset({"identity"}), frozenset(), (reason,), "c-1")


def test_equal_values_are_equal_and_hash_alike() -> None:
    assert _decision() == _decision()
    assert hash(_decision()) == hash(_decision())
    assert len({_decision(), _decision(), _decision("OTHER")}) == 2
    assert {ClientFacts(None, True): 1}[ClientFacts(None, True)] == 1


def test_replace_makes_a_new_value_and_leaves_the_old_one() -> None:
    first = _decision()
    second = dataclasses.replace(first, consent_id="c-2")
    assert (first.consent_id, second.consent_id) == ("c-1", "c-2")
    assert second.outcome == first.outcome


def test_a_value_has_slots_and_no_instance_dict() -> None:
    assert not hasattr(_decision(), "__dict__")
    assert "outcome" in Decision.__slots__


def test_client_facts_show_no_birth_date_in_their_repr() -> None:
    assert "1990" not in repr(ClientFacts(date(1990, 5, 17), False))
