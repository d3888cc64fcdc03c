"""A birth date known only to the year or month: kept in payloads, kept out of identity
keys, and read by the consent gate the way that fails closed (CONSENT.md rule 6)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import orjson

from consent import (
    DEFAULT_CATEGORIES,
    GUARDIAN_CONSENT_LAPSED,
    MINOR_NEEDS_GUARDIAN,
    Agency,
    ClientFacts,
    ClientRef,
    ConsentPolicy,
    ConsentRecord,
    Decision,
    DecisionRequest,
    evaluate,
)
from hub.context import HubContext
from hub.core.gate import client_facts
from hub.core.identity import decide_link, match_keys
from hub.core.records import Client
from hub.core.serialize import record_from_payload, record_payload
from hub.identity_admin import list_reviews, resolve_review, unlink
from hub.synthetic import client
from tests.conftest import HubFactory

AGENCIES = {
    "shelter": Agency("shelter", "Shelter", "hmis", frozenset({"hmis", "cie"})),
    "partner": Agency("partner", "Partner", "cie", frozenset({"cie"})),
}


def blind(value: str) -> str:
    return f"b({value})"


def born(precision: str, day: date = date(1980, 1, 1), pid: str = "1") -> Client:
    return dataclasses.replace(client(pid), birth_date=day, birth_date_precision=precision)


def decide(
    facts: ClientFacts, at: date, given_by: str = "client", signed: date = date(2025, 1, 1)
) -> Decision:
    consent = ConsentRecord(
        id="mpa-1",
        client=ClientRef("urn:hmis", "P-1"),
        signed_on=signed,
        expires_on=date(2030, 1, 1),
        given_by=given_by,
        recorded_by="shelter",
    )
    request = DecisionRequest(
        client=facts,
        owner="shelter",
        recipient="partner",
        purpose="coordination",
        categories=DEFAULT_CATEGORIES,
        at=datetime(at.year, at.month, at.day, 12, tzinfo=UTC),
    )
    return evaluate(request, [consent], AGENCIES, ConsentPolicy())


# ---- payloads ------------------------------------------------------------------------------


def test_a_partial_birth_date_round_trips_through_the_stored_payload() -> None:
    for precision, day in (("year", date(1980, 1, 1)), ("month", date(1980, 5, 1))):
        record = born(precision, day)
        payload = orjson.loads(orjson.dumps(record_payload(record)))
        assert payload["birth_date"] == day.isoformat()
        assert payload["birth_date_precision"] == precision
        back = record_from_payload(record.meta, payload)
        assert back == record
        assert (
            isinstance(back, Client)
            and back.birth_date_text() == day.isoformat()[: 4 if precision == "year" else 7]
        )


def test_a_payload_stored_before_partial_dates_reads_as_a_whole_date() -> None:
    record = client("1", birth_date=date(1980, 5, 17))
    payload = record_payload(record)
    assert "birth_date_precision" not in payload  # the default is left out, as before
    back = record_from_payload(record.meta, {"birth_date": "1980-05-17"})
    assert isinstance(back, Client)
    assert (back.birth_date, back.birth_date_precision) == (date(1980, 5, 17), "")
    assert back.birth_date_text() == "1980-05-17"


# ---- identity ------------------------------------------------------------------------------


def test_a_partial_birth_date_makes_no_identity_key() -> None:
    """A person born "1980" gets the keys of a person of unknown birth date: none of the
    name+DOB, DOB+SSN or DOB+family keys, so never those of someone born 1980-01-01."""
    for precision in ("year", "month"):
        partial = dataclasses.replace(born(precision), ssn="219-09-9999")
        unknown = dataclasses.replace(partial, birth_date=None, birth_date_precision="")
        assert match_keys(partial, blind) == match_keys(unknown, blind)
        assert not any("1980" in k for k in match_keys(partial, blind).all())


def test_a_person_born_1980_is_not_linked_to_one_born_on_1_january_1980() -> None:
    full = born("", date(1980, 1, 1))
    found = {k: {"person-full"} for k in match_keys(full, blind).all()}
    decision = decide_link(match_keys(born("year", date(1980, 1, 1), pid="2"), blind), found)
    assert decision.person is None  # a new person; at most a review item (same name)


# ---- consent facts -------------------------------------------------------------------------


def test_stored_birth_dates_become_facts_with_the_range_they_cover() -> None:
    assert client_facts("1980-05-17", False) == ClientFacts(date(1980, 5, 17), False)
    assert client_facts("2008", True) == ClientFacts(date(2008, 1, 1), True, date(2008, 12, 31))
    assert client_facts("2008-02", False) == ClientFacts(date(2008, 2, 1), False, date(2008, 2, 29))
    assert client_facts(None, False) == ClientFacts(None, False)


def test_born_2008_is_treated_as_a_possible_minor_while_they_may_be_17() -> None:
    """Born "2008", on 2026-06-01 the client is 17 or 18: their own consent does not count
    (the latest possible birthday decides) until 2026-12-31 has passed."""
    facts = client_facts("2008", False)
    assert decide(facts, date(2026, 6, 1)).reasons == (MINOR_NEEDS_GUARDIAN,)
    assert decide(facts, date(2026, 12, 30)).reasons == (MINOR_NEEDS_GUARDIAN,)
    assert decide(facts, date(2026, 12, 31)).outcome == "permit"


def test_born_2008_a_guardians_consent_lapses_from_the_first_possible_birthday() -> None:
    facts = client_facts("2008", False)
    guardian = {"given_by": "guardian", "signed": date(2025, 1, 1)}
    assert decide(facts, date(2025, 12, 31), **guardian).outcome == "permit"  # 17 for sure
    assert decide(facts, date(2026, 1, 1), **guardian).reasons == (GUARDIAN_CONSENT_LAPSED,)
    assert decide(facts, date(2026, 6, 1), **guardian).reasons == (GUARDIAN_CONSENT_LAPSED,)
    # Signed on 2026-03-01, when the client was 17 or already 18: by 2026-06-01 they may
    # have come of age since, so that consent may have lapsed too.
    later = {"given_by": "guardian", "signed": date(2026, 3, 1)}
    assert decide(facts, date(2026, 6, 1), **later).reasons == (GUARDIAN_CONSENT_LAPSED,)


async def test_ingest_stores_the_partial_birth_date_the_gate_reads(any_hub: HubContext) -> None:
    """The engine records the birth year itself for the person (not 1 January, which would
    make a possible minor an adult for up to a year)."""
    result = await any_hub.engine.ingest([born("year", date(2008, 1, 1), pid="minor-1")])
    (person,) = set(result.persons.values())
    async with any_hub.store.transaction() as tx:
        stored = await tx.persons_facts([person])
        facts = await any_hub.gate.facts(tx, person)
    assert stored[person][0] == "2008"
    assert facts == ClientFacts(date(2008, 1, 1), False, date(2008, 12, 31))
    assert decide(facts, date(2026, 6, 1)).reasons == (MINOR_NEEDS_GUARDIAN,)


async def test_identity_review_carries_the_partial_birth_date_to_the_person(
    hub_factory: HubFactory,
) -> None:
    """An administrator's link (to a person of unknown age) and unlink give the person the
    birth year, as ingest does, never 1 January."""
    async with hub_factory() as ctx:
        await ctx.engine.ingest([client("A1", given="Dan", family="Diaz", birth_date=None)])
        partial = dataclasses.replace(
            client("B1", given="Dan", family="Diaz", source="hl7:MERCY", owner="hospital-x"),
            birth_date=date(2008, 1, 1),
            birth_date_precision="year",
        )
        await ctx.engine.ingest([partial])
        (item,) = await list_reviews(ctx)
        target = item["candidates"][0]
        async with ctx.store.transaction() as tx:
            assert (await tx.persons_facts([target]))[target][0] is None
        assert await resolve_review(ctx, item["id"], target)
        async with ctx.store.transaction() as tx:
            assert (await tx.persons_facts([target]))[target][0] == "2008"
        assert await unlink(ctx, "client/hl7:MERCY/B1") == target
        async with ctx.store.transaction() as tx:
            fresh = (await tx.persons_of_clients("hl7:MERCY", ["B1"]))["B1"]
            assert fresh != target
            assert (await tx.persons_facts([fresh]))[fresh][0] == "2008"
