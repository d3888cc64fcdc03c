"""A name, SSN or birth date its source marks as not full (HUD data quality 2: a partial,
street or code name; an approximate SSN or birth date) or as unreliable (8, 9, 99) takes no
part in matching: two people entered as "John Smith, born about 1980-01-01" are two people,
and one's consent never releases the other's records. A value of quality 1, or from a
source that gives no quality, matches as before."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from hub.context import HubContext
from hub.core.identity import MatchKeys, match_keys
from hub.core.records import Client
from hub.synthetic import client
from tests.core.test_core_identity_ssn import person_of

ANY_STORE = pytest.mark.parametrize("any_hub", ["sqlite", "postgresql"], indirect=True)
SSN = "512-34-5671"
ABOUT = date(1980, 1, 1)


def blind(text: str) -> str:
    return f"k({text})"


def kinds(keys: tuple[str, ...]) -> set[str]:
    """The kinds of plain keys (``nd``, ``ssn`` …) behind blinded ones."""
    return {k[2:].split(":", 1)[0] for k in keys}


def matching(keys: MatchKeys) -> set[str]:
    """The kinds of the keys that take part in matching (not the value-only ones)."""
    return kinds(keys.strong + keys.pair + keys.weak)


def smith(personal_id: str, ssn: str | None = SSN, **quality: str) -> Client:
    """John Smith, born about 1980-01-01; data quality codes as given."""
    record = client(personal_id, given="John", family="Smith", birth_date=ABOUT, ssn=ssn)
    return dataclasses.replace(record, **quality)  # type: ignore[arg-type]


@pytest.mark.parametrize("quality", ["", "1"])
def test_full_values_make_every_key(quality: str) -> None:
    record = smith("1", name_quality=quality, ssn_quality=quality, birth_date_quality=quality)
    keys = match_keys(record, blind)
    assert matching(keys) == {"id", "ssn", "ns", "ds", "nd", "n", "df"}
    assert kinds(keys.value_only) == {"idv"}


@pytest.mark.parametrize("code", ["2", "8", "9", "99"])
def test_a_name_not_full_makes_no_key(code: str) -> None:
    keys = match_keys(smith("1", name_quality=code), blind)
    assert matching(keys) == {"id", "ssn", "ds"}
    assert kinds(keys.value_only) == {"idv", "n"}  # found by a name search, never matched on


@pytest.mark.parametrize("code", ["2", "8", "9", "99"])
def test_an_ssn_not_full_makes_no_key(code: str) -> None:
    keys = match_keys(smith("1", ssn_quality=code), blind)
    assert matching(keys) == {"id", "nd", "n", "df"}
    assert keys.ssn == "" and keys.ssn_pairs == ()


@pytest.mark.parametrize("code", ["2", "8", "9", "99"])
def test_a_birth_date_not_full_makes_no_key(code: str) -> None:
    keys = match_keys(smith("1", birth_date_quality=code), blind)
    assert matching(keys) == {"id", "ssn", "ns", "n"}


@ANY_STORE
async def test_two_smiths_born_about_the_same_day_are_two_people(any_hub: HubContext) -> None:
    """Name + birth date is two of three and links, unless the birth date is approximate:
    then only the name agrees, which is a review item, never a link."""
    engine = any_hub.engine
    await engine.ingest([smith("1", ssn=None, birth_date_quality="2")])
    result = await engine.ingest([smith("2", ssn=None, birth_date_quality="2")])
    assert await person_of(any_hub, "1") != await person_of(any_hub, "2")
    assert result.reviews == 1

    # The same two records with full birth dates are one person (two of three agree).
    await engine.ingest([smith("3", ssn=None, birth_date_quality="1")])
    await engine.ingest([smith("4", ssn=None, birth_date_quality="1")])
    assert await person_of(any_hub, "3") == await person_of(any_hub, "4")


@ANY_STORE
async def test_an_ssn_is_not_taken_alone_when_the_name_and_birth_date_were_left_out(
    any_hub: HubContext,
) -> None:
    """A child entered with a partial name and an approximate birth date, carrying a parent's
    SSN: with nothing to check the SSN against, it goes to review, never links."""
    engine = any_hub.engine
    parent = client("1", given="Ana", family="Alvarez", birth_date=date(1971, 5, 9), ssn=SSN)
    await engine.ingest([parent])
    child = dataclasses.replace(
        client("2", given="Baby", family="Berg", birth_date=date(2012, 2, 2), ssn=SSN),
        name_quality="2",
        birth_date_quality="2",
    )
    result = await engine.ingest([child])
    assert await person_of(any_hub, "2") != await person_of(any_hub, "1")
    assert result.reviews == 1
