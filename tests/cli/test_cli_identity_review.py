"""Review findings on ``hub identity review --resolve`` and ``hub identity unlink``: the age
rules of the consent gate survive a link or an unlink, a person id that does not exist is a
one-line error that changes nothing, and two administrators deciding the same thing at once
are done one after the other (PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from hub.config import load_config
from hub.context import make_plugins, open_context
from hub.identity_admin import list_reviews, resolve_review, unlink
from hub.synthetic import client
from tests.conftest import fresh_pg_database, write_hub

MINOR = date(2015, 3, 3)


def import_consent(hub_cli: Any, tmp_path: Path, value: str, system: str) -> None:
    """A consent the client signed alone (no guardian): it does not cover a minor."""
    path = tmp_path / "consent.json"
    path.write_text(
        orjson.dumps(
            [
                {
                    "id": f"c-{value}",
                    "client": {"system": system, "value": value},
                    "signed_on": "2025-01-02",
                    "recorded_by": "shelter-a",
                    "given_by": "client",
                    "purposes": ["treatment"],
                }
            ]
        ).decode(),
        encoding="utf-8",
    )
    assert hub_cli("consent", "import", str(path)).exit_code == 0


def check(hub_cli: Any, value: str, system: str) -> dict[str, Any]:
    result = hub_cli(
        "consent",
        "check",
        "--client",
        value,
        "--client-system",
        system,
        "--owner",
        "shelter-a",
        "--recipient",
        "hospital-x",
        "--purpose",
        "treatment",
        "--at",
        "2025-06-01T00:00:00+00:00",
    )
    assert result.exit_code == 0, result.output
    decision: dict[str, Any] = orjson.loads(result.stdout)
    return decision


def test_an_unlinked_minor_is_still_a_minor(
    hub_dir: Any, hub_cli: Any, seed_records: Any, tmp_path: Path
) -> None:
    config = hub_dir()
    seed_records(config, [client("31", given="Kai", family="Ito", birth_date=MINOR)])
    import_consent(hub_cli, tmp_path, "31", "hmis:demo")
    assert check(hub_cli, "31", "hmis:demo")["reasons"] == ["MINOR_NEEDS_GUARDIAN"]

    assert hub_cli("identity", "unlink", "client/hmis:demo/31").exit_code == 0
    after = check(hub_cli, "31", "hmis:demo")
    assert after["decision"] == "deny" and after["reasons"] == ["MINOR_NEEDS_GUARDIAN"]


def seed_review(config: Path, seed_records: Any) -> None:
    """A hospital record without a birth date, then a shelter record of a minor with the same
    name: a weak match, left for review."""
    seed_records(
        config,
        [
            client(
                "M7",
                given="Kai",
                family="Ito",
                birth_date=None,
                source="hl7:MERCY",
                owner="hospital-x",
            )
        ],
    )
    seed_records(config, [client("31", given="Kai", family="Ito", birth_date=MINOR)])


def test_linking_a_minor_to_a_person_of_unknown_age_keeps_the_age_rule(
    hub_dir: Any, hub_cli: Any, seed_records: Any, tmp_path: Path
) -> None:
    config = hub_dir()
    seed_review(config, seed_records)
    import_consent(hub_cli, tmp_path, "31", "hmis:demo")
    [item] = orjson.loads(hub_cli("identity", "review").stdout)
    assert item["record"] == "client/hmis:demo/31"
    [target] = item["candidates"]
    done = hub_cli("identity", "review", "--resolve", str(item["id"]), "--link", target)
    assert done.exit_code == 0, done.output
    after = check(hub_cli, "31", "hmis:demo")
    assert after["decision"] == "deny" and after["reasons"] == ["MINOR_NEEDS_GUARDIAN"]


def test_linking_to_a_person_that_does_not_exist_changes_nothing(
    hub_dir: Any, hub_cli: Any, seed_records: Any, tmp_path: Path
) -> None:
    config = hub_dir()
    seed_review(config, seed_records)
    import_consent(hub_cli, tmp_path, "31", "hmis:demo")
    [item] = orjson.loads(hub_cli("identity", "review").stdout)
    before = check(hub_cli, "31", "hmis:demo")
    result = hub_cli("identity", "review", "--resolve", str(item["id"]), "--link", "nobody")
    assert result.exit_code == 2
    assert result.output == f"error: no person 'nobody': link to a candidate of item {item['id']}\n"
    assert orjson.loads(hub_cli("identity", "review").stdout) == [item]  # still open
    assert check(hub_cli, "31", "hmis:demo") == before  # still its own person, age known


async def test_two_administrators_resolving_one_item_at_once(tmp_path: Path) -> None:
    async with fresh_pg_database() as url:
        cfg = load_config(write_hub(tmp_path, "", url))
        async with (
            open_context(cfg, make_plugins(cfg), migrate=True) as a,
            open_context(cfg, make_plugins(cfg)) as b,
        ):
            await a.engine.ingest([client("21", given="Dan", family="Diaz")])
            await a.engine.ingest(
                [client("X9", given="Dan", family="Diaz", birth_date=None, source="hl7:MERCY")]
            )
            [item] = await list_reviews(a)
            [target] = item["candidates"]
            done = await asyncio.gather(
                resolve_review(a, item["id"], target), resolve_review(b, item["id"], None)
            )
            # one decision is taken; the other administrator is told the item is closed
            assert sorted(done) == [False, True]
            assert await list_reviews(a) == []


async def test_two_administrators_unlinking_one_record_at_once(tmp_path: Path) -> None:
    async with fresh_pg_database() as url:
        cfg = load_config(write_hub(tmp_path, "", url))
        async with (
            open_context(cfg, make_plugins(cfg), migrate=True) as a,
            open_context(cfg, make_plugins(cfg)) as b,
        ):
            result = await a.engine.ingest([client("21", given="Dan", family="Diaz")])
            person = result.persons["hmis:demo/21"]
            done = await asyncio.gather(
                unlink(a, "client/hmis:demo/21"), unlink(b, "client/hmis:demo/21")
            )
            # as one after the other: the second undoes the link the first made
            first, second = sorted(done, key=lambda p: p != person)
            assert first == person and second != person
            reviews = await list_reviews(a)
            assert [r["candidates"].count(second) for r in reviews] == [1, 1]
