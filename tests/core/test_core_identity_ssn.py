"""A full, valid SSN links a record to a person only when it does not contradict the rest of
the record: a person who shares the SSN but neither the name nor the birth date is someone
else (a parent's SSN entered for a child, a mistyped digit), so the record gets a person of
its own and a review item, and one person's consent never releases the other's records."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from hub.context import HubContext
from hub.core.identity import decide_link, match_keys
from hub.synthetic import client

ANY_STORE = pytest.mark.parametrize("any_hub", ["sqlite", "postgresql"], indirect=True)
SSN = "512-34-5671"
BORN = date(1971, 5, 9)


def blind(text: str) -> str:
    return f"k({text})"


async def person_of(ctx: HubContext, personal_id: str) -> str:
    async with ctx.store.transaction() as tx:
        row = await tx.get_record("client", "hmis:demo", personal_id)
    assert row is not None and row.person_id
    return row.person_id


@ANY_STORE
async def test_a_shared_ssn_with_another_name_and_birth_date_is_reviewed_not_linked(
    any_hub: HubContext,
) -> None:
    engine = any_hub.engine
    await engine.ingest([client("1", given="Ana", family="Alvarez", birth_date=BORN, ssn=SSN)])
    parent = await person_of(any_hub, "1")

    result = await engine.ingest(
        [client("2", given="Bo", family="Berg", birth_date=date(2012, 2, 2), ssn=SSN)]
    )
    child = await person_of(any_hub, "2")
    assert child != parent
    assert result.reviews == 1
    async with any_hub.store.transaction() as tx:
        reviews = await tx.list_reviews()
    assert [(r.record, r.candidates) for r in reviews] == [("client/hmis:demo/2", (parent,))]
    assert "SSN shared" in reviews[0].reason


@ANY_STORE
async def test_the_ssn_still_links_when_the_name_or_the_birth_date_agrees(
    any_hub: HubContext,
) -> None:
    engine = any_hub.engine
    await engine.ingest([client("1", given="Ana", family="Alvarez", birth_date=BORN, ssn=SSN)])
    person = await person_of(any_hub, "1")
    # married name, same birth date; and a mistyped birth date, same name
    await engine.ingest([client("3", given="Ana", family="Berg", birth_date=BORN, ssn=SSN)])
    await engine.ingest(
        [client("4", given="Ana", family="Alvarez", birth_date=date(1971, 9, 5), ssn=SSN)]
    )
    assert await person_of(any_hub, "3") == person
    assert await person_of(any_hub, "4") == person
    async with any_hub.store.transaction() as tx:
        assert await tx.list_reviews() == []


def test_an_ssn_alone_links_when_the_record_says_nothing_else() -> None:
    known = client("1", birth_date=BORN, ssn=SSN)
    bare = dataclasses.replace(client("9", ssn=SSN), names=(), birth_date=None, identifiers=())
    found: dict[str, set[str]] = {k: {"P1"} for k in match_keys(known, blind).all()}
    assert decide_link(match_keys(bare, blind), found).person == "P1"


def test_a_contradicted_ssn_holder_does_not_outvote_an_agreeing_one() -> None:
    """Two persons carry the SSN; the record agrees with one of them: it links there."""
    agreeing = client("1", given="Ana", family="Alvarez", birth_date=BORN, ssn=SSN)
    other = client("2", given="Bo", family="Berg", birth_date=date(2012, 2, 2), ssn=SSN)
    found: dict[str, set[str]] = {}
    for person, rec in (("P1", agreeing), ("P2", other)):
        for k in match_keys(rec, blind).all():
            found.setdefault(k, set()).add(person)
    again = client("7", given="Ana", family="Alvarez", birth_date=date(1971, 5, 10), ssn=SSN)
    decision = decide_link(match_keys(again, blind), found)
    assert (decision.person, decision.review_candidates) == ("P1", ())
