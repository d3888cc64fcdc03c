"""Whether a client is *currently* fleeing DV is the word of their latest HealthAndDV row by
``InformationDate``, whatever order the rows are read in: a row read later in the file, or a
later correction of an older row, cannot clear a newer "fleeing" (CONSENT.md rule 10), and
deleting the newest row brings back the word before it. The proof is what a recipient
sees: the client's project address leaves their export blanked.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from plugins.clarity.exporter import export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export
from plugins.clarity.spec import LOCATION_COLUMNS
from tests.clarity.conftest import give_consents
from tests.clarity.test_clarity_delta_deletions import _hub

SOURCE = "hmis:synthetic"
WHEN = datetime(2025, 11, 1, 10, 0, 0)
LOCATED = sorted(LOCATION_COLUMNS["ProjectCoC"])
OLD_DAY = "2024-01-10"
NEW_DAY = "2025-06-01"
WRITTEN = "2025-06-01 10:00:00"
CORRECTED = "2025-09-01 10:00:00"
DIALECTS = ["sqlite", "postgresql"]


@dataclass(frozen=True)
class Client:
    """The client the rows are about: their PersonalID, enrollment and project."""

    person: str
    enrollment: str
    project: str


@dataclass(frozen=True)
class Word:
    """One HealthAndDV row of the client: its id, InformationDate, CurrentlyFleeing and
    DateUpdated."""

    row_id: str
    day: str
    fleeing: str
    updated: str = WRITTEN
    deleted: str = ""
    about: Client | None = None
    """The client the row is about, when not the one the test follows."""


def _client(tools: Any, gen: Path, index: int = 0) -> Client:
    """The first (or ``index``-th) enrolled client of a generated export."""
    row = tools.read_csv(gen / "Enrollment.csv")[index]
    return Client(row["PersonalID"], row["EnrollmentID"], row["ProjectID"])


def _write_words(tools: Any, gen: Path, who: Client, words: list[Word]) -> None:
    """Replace HealthAndDV.csv with the client's ``words``, in this order."""

    def edit(rows: list[list[str]]) -> list[list[str]]:
        head = rows[0]
        out = [head]
        for word in words:
            values = dict.fromkeys(head, "")
            about = word.about or who
            values.update(
                HealthAndDVID=word.row_id,
                EnrollmentID=about.enrollment,
                PersonalID=about.person,
                InformationDate=word.day,
                DomesticViolenceSurvivor="1",
                WhenOccurred="4",
                CurrentlyFleeing=word.fleeing,
                DataCollectionStage="2",
                DateCreated=WRITTEN,
                DateUpdated=word.updated,
                DateDeleted=word.deleted,
                UserID="1",
                ExportID=rows[1][head.index("ExportID")] if len(rows) > 1 else "",
            )
            out.append([values[name] for name in head])
        return out

    tools.rewrite(gen / "HealthAndDV.csv", edit)


def _delta(tools: Any, gen: Path, out: Path, who: Client, *words: Word) -> Path:
    """A copy of ``gen`` carrying ``words`` as its HealthAndDV rows (imported as a delta)."""
    shutil.copytree(gen, out)
    _write_words(tools, out, who, list(words))
    return out


async def _location_withheld(ctx: Any, tools: Any, out: Path, who: Client) -> bool:
    """Export the client to 211 and say whether their project's address was withheld (and
    checks that the export and its summary agree)."""
    await give_consents(ctx, [who.person], SOURCE)
    summary = await export_hmis(ctx, out, csv_version="2026", recipient="cie-211", export_date=WHEN)
    assert {r["PersonalID"] for r in tools.read_csv(out / "Client.csv")} == {who.person}
    coc = next(r for r in tools.read_csv(out / "ProjectCoC.csv") if r["ProjectID"] == who.project)
    blank = [coc[col] == "" for col in LOCATED]
    assert coc["Address1"] or all(blank), "withheld columns go together"
    withheld = all(blank)
    assert summary.locations_withheld == (1 if withheld else 0)
    return withheld


async def _import_and_look(
    make_hub: Any, tools: Any, tmp_path: Path, dialect: str, name: str, *words: Word
) -> bool:
    """Import an export carrying ``words`` into a new hub; whether 211 gets the address."""
    gen = write_export(tmp_path / name, clients=20, seed=6, version="2026")
    who = _client(tools, gen)
    _write_words(tools, gen, who, list(words))
    async with _hub(make_hub, name, dialect) as ctx:
        summary = await import_export(ctx, gen)
        assert summary.to_json()["errors"] == 0
        return await _location_withheld(ctx, tools, tmp_path / f"{name}-211", who)


NEWER_FLEEING = Word("DV-NEW", NEW_DAY, "1")
OLDER_CALM = Word("DV-OLD", OLD_DAY, "0")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_newer_fleeing_row_read_before_an_older_one_still_counts(
    make_hub: Any, tools: Any, tmp_path: Path, dialect: str
) -> None:
    withheld = await _import_and_look(
        make_hub, tools, tmp_path, dialect, "newer-first", NEWER_FLEEING, OLDER_CALM
    )
    assert withheld, "the client's latest word is fleeing: their location must be withheld"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_order_of_the_rows_does_not_matter(
    make_hub: Any, tools: Any, tmp_path: Path, dialect: str
) -> None:
    older_first = await _import_and_look(
        make_hub, tools, tmp_path, dialect, "older-first", OLDER_CALM, NEWER_FLEEING
    )
    newer_first = await _import_and_look(
        make_hub, tools, tmp_path, dialect, "newer-first", NEWER_FLEEING, OLDER_CALM
    )
    assert older_first == newer_first == True  # noqa: E712 - both orders, one answer
    # And the other way round: a newer "not fleeing" is the current word in either order.
    calm = Word("DV-NEW", NEW_DAY, "0")
    earlier = Word("DV-OLD", OLD_DAY, "1")
    assert not await _import_and_look(
        make_hub, tools, tmp_path, dialect, "calm-first", calm, earlier
    )
    assert not await _import_and_look(
        make_hub, tools, tmp_path, dialect, "calm-last", earlier, calm
    )


OLDER_FLEEING = Word("DV-OLD", OLD_DAY, "1")
NEWER_CALM = Word("DV-NEW", NEW_DAY, "0")
DELTAS = [
    # The old row corrected months later (a newer DateUpdated): it still describes OLD_DAY.
    (
        "a later correction of an older row does not clear fleeing",
        [OLDER_CALM, NEWER_FLEEING],
        Word("DV-OLD", OLD_DAY, "0", CORRECTED),
        True,
        True,
    ),
    # The same row, same InformationDate, corrected: the client was not fleeing after all.
    (
        "a correction of the newest row itself clears fleeing",
        [NEWER_FLEEING, OLDER_CALM],
        Word("DV-NEW", NEW_DAY, "0", CORRECTED),
        True,
        False,
    ),
    # The HMIS deletes the newer row (entered in error): the older "fleeing" is current again.
    (
        "deleting the newest row brings back the word before it",
        [OLDER_FLEEING, NEWER_CALM],
        Word("DV-NEW", NEW_DAY, "0", CORRECTED, deleted=CORRECTED),
        False,
        True,
    ),
    (
        "a row whose answer becomes 'not collected' says nothing any more",
        [OLDER_FLEEING, NEWER_CALM],
        Word("DV-NEW", NEW_DAY, "99", CORRECTED),
        False,
        True,
    ),
    (
        "a deleted row without an answer withdraws what it said",
        [OLDER_FLEEING, NEWER_CALM],
        Word("DV-NEW", NEW_DAY, "", CORRECTED, deleted=CORRECTED),
        False,
        True,
    ),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("first", "change", "before", "after"), [c[1:] for c in DELTAS], ids=[c[0] for c in DELTAS]
)
async def test_a_delta_changing_one_row(
    make_hub: Any,
    tools: Any,
    tmp_path: Path,
    dialect: str,
    first: list[Word],
    change: Word,
    before: bool,
    after: bool,
) -> None:
    gen = write_export(tmp_path / "gen", clients=20, seed=6, version="2026")
    who = _client(tools, gen)
    _write_words(tools, gen, who, first)
    delta = _delta(tools, gen, tmp_path / "delta", who, change)
    async with _hub(make_hub, "hub", dialect) as ctx:
        await import_export(ctx, gen)
        assert await _location_withheld(ctx, tools, tmp_path / "before", who) is before
        summary = (await import_export(ctx, delta, directive="delta")).to_json()
        assert summary["errors"] == 0
        assert summary["files"]["HealthAndDV.csv"]["updated"] == 1  # the change is read
        assert await _location_withheld(ctx, tools, tmp_path / "after", who) is after


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_two_rows_of_the_same_day_disagreeing_count_as_fleeing(
    make_hub: Any, tools: Any, tmp_path: Path, dialect: str
) -> None:
    fleeing = Word("DV-A", NEW_DAY, "1")
    calm = Word("DV-B", NEW_DAY, "0")
    assert await _import_and_look(make_hub, tools, tmp_path, dialect, "ab", fleeing, calm)
    assert await _import_and_look(make_hub, tools, tmp_path, dialect, "ba", calm, fleeing)


async def test_a_full_refresh_without_the_newest_row_brings_back_the_word_before_it(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=20, seed=6, version="2026")
    who = _client(tools, gen)
    _write_words(tools, gen, who, [OLDER_FLEEING, NEWER_CALM])
    refreshed = _delta(tools, gen, tmp_path / "full", who, OLDER_FLEEING)
    async with make_hub("hub") as ctx:
        await import_export(ctx, gen)
        assert not await _location_withheld(ctx, tools, tmp_path / "before", who)
        summary = (await import_export(ctx, refreshed, directive="full")).to_json()
        assert summary["errors"] == 0
        assert await _location_withheld(ctx, tools, tmp_path / "after", who)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_row_moved_to_another_client_takes_its_word_along(
    make_hub: Any, tools: Any, tmp_path: Path, dialect: str
) -> None:
    """The newer "not fleeing" row was entered on the wrong client and is moved: the client
    left with only an older "fleeing" row is fleeing again."""
    gen = write_export(tmp_path / "gen", clients=20, seed=6, version="2026")
    who, other = _client(tools, gen), _client(tools, gen, 1)
    assert who.person != other.person
    _write_words(tools, gen, who, [OLDER_FLEEING, NEWER_CALM])
    moved = Word("DV-NEW", NEW_DAY, "0", CORRECTED, about=other)
    delta = _delta(tools, gen, tmp_path / "delta", who, moved)
    async with _hub(make_hub, "hub", dialect) as ctx:
        await import_export(ctx, gen)
        assert not await _location_withheld(ctx, tools, tmp_path / "before", who)
        summary = (await import_export(ctx, delta, directive="delta")).to_json()
        assert summary["errors"] == 0
        assert await _location_withheld(ctx, tools, tmp_path / "after", who)
