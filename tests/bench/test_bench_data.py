"""The benchmarks' invented people are distinct people to the identity rules."""

from __future__ import annotations

import csv
from pathlib import Path

from hub.bench.data import clients, people
from hub.core.identity import match_keys, normalise_name
from hub.synthetic import name_tag
from plugins.clarity.generate import write_export

PEOPLE = 20_000


def test_every_invented_person_has_a_name_of_their_own() -> None:
    names = {normalise_name(p.family, [p.given]) for p in people(PEOPLE, 20260101)}
    assert len(names) == PEOPLE


def test_name_tags_are_letters_and_unique() -> None:
    tags = [name_tag(i) for i in range(PEOPLE)]
    assert len(set(tags)) == PEOPLE
    assert all(t.isalpha() and t.islower() for t in tags)


def test_no_invented_client_shares_a_weak_match_key() -> None:
    # A weak key held by two persons sends the second to the review list.
    seen: set[str] = set()
    for record in clients(5_000, 20260101, "shelter-a"):
        keys = match_keys(record, lambda text: text)
        assert not seen.intersection(keys.weak)
        seen.update(keys.weak)


def test_the_synthetic_hud_export_names_each_client_once(tmp_path: Path) -> None:
    folder = write_export(tmp_path / "export", clients=3_000)
    with (folder / "Client.csv").open(newline="", encoding="utf-8-sig") as f:
        names = {normalise_name(r["LastName"], [r["FirstName"]]) for r in csv.DictReader(f)}
    assert len(names) == 3_000
