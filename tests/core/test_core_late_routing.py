"""On-change feeds also take what becomes theirs after it was stored: a record that arrived
before its client record (its person unknown then) once the client arrives, and, for a feed
of persons holding a kind of record (``person_has``, e.g. clients with an ADT encounter), a
person's records once their first such record arrives. Each is decided (and audited) once."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from consent.parsing import parse_consent_file
from hub.audit import entry_from_row
from hub.context import HubContext
from hub.synthetic import client, encounter, enrollment
from tests.conftest import HubFactory, require_pg

FEED = """
[[feeds]]
name = "{name}"
recipient = "hospital-x"
kinds = {kinds}
{extra}
purpose = "treatment"
connector = "webhook"
options = {{url = "http://127.0.0.1:9/none"}}
"""


async def consent_for(ctx: HubContext, personal_id: str) -> None:
    body = {
        "id": f"mpa-{personal_id}",
        "client": {"system": "hmis:demo", "value": personal_id},
        "signed_on": "2024-01-01",
        "recorded_by": "shelter-a",
    }
    cfg = ctx.config
    await ctx.import_consents(
        parse_consent_file(
            orjson.dumps([body]).decode(), agencies=cfg.agencies, policy=cfg.consent_policy
        )
    )


async def queued(ctx: HubContext) -> list[tuple[str, str]]:
    return sorted((r.record_kind, r.record_source_id) for r in await ctx.store.list_outbox())


async def decisions_for(ctx: HubContext, recipient: str) -> list[str]:
    entries = [entry_from_row(r) async for batch in ctx.store.iter_audit() for r in batch]
    return sorted(e.record for e in entries if e.recipient == recipient)


async def test_a_record_that_came_before_its_client_is_routed_when_the_client_arrives(
    hub_factory: HubFactory,
) -> None:
    toml = FEED.format(name="to-hospital", kinds='["client", "enrollment"]', extra="")
    async with hub_factory(toml) as ctx:
        await consent_for(ctx, "1")
        first = await ctx.engine.ingest([enrollment("E1", "1")])
        assert first.enqueued == 0 and await queued(ctx) == []
        second = await ctx.engine.ingest([client("1")])
        assert second.enqueued == 2
        assert await queued(ctx) == [("client", "1"), ("enrollment", "E1")]
        await ctx.engine.ingest([client("1", version="2025-02-01T00:00:00")])
        # the client's new version is queued; the enrollment is not decided again
        assert await queued(ctx) == [("client", "1"), ("client", "1"), ("enrollment", "E1")]
        assert (await decisions_for(ctx, "hospital-x")).count("enrollment/hmis:demo/E1") == 1


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_a_client_is_sent_once_their_first_encounter_arrives(
    hub_factory: HubFactory, store: str
) -> None:
    """``kinds = ["client"]``, ``person_has = ["encounter"]``: a client stored without an
    encounter is sent when the first encounter comes, and only then."""
    if store == "postgresql":
        require_pg()
    toml = FEED.format(
        name="admitted-clients", kinds='["client"]', extra='person_has = ["encounter"]'
    )
    async with hub_factory(toml, store=store) as ctx:
        await consent_for(ctx, "1")
        await ctx.engine.ingest([client("1")])
        assert await queued(ctx) == []
        await ctx.engine.ingest([encounter("V1", "1", source="hmis:demo")])
        assert await queued(ctx) == [("client", "1")]
        await ctx.engine.ingest([encounter("V2", "1", source="hmis:demo")])
        assert await queued(ctx) == [("client", "1")]
        assert (await decisions_for(ctx, "hospital-x")).count("client/hmis:demo/1") == 1


async def test_a_persons_records_are_found_without_walking_every_record(tmp_path: Path) -> None:
    """The look-up behind ``person_has`` feeds and FHIR reads costs the same whatever else is
    stored (SQLite virtual-machine steps with 10 and 3,000 other persons' encounters)."""
    from hub.config import load_config
    from hub.context import make_plugins, open_context
    from tests.conftest import write_hub

    cfg = load_config(write_hub(tmp_path))
    async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
        result = await ctx.engine.ingest([client("1"), encounter("V-1", "1", source="hmis:demo")])
        person = result.persons["hmis:demo/1"]
        conn = ctx.store._raw()  # type: ignore[attr-defined]

        async def steps() -> int:
            count = 0

            def tick() -> int:
                nonlocal count
                count += 1
                return 0

            async with ctx.store.transaction() as tx:
                conn.set_progress_handler(tick, 1)
                rows = await tx.records_of_person(person, ["encounter"])
                conn.set_progress_handler(None, 1)
            assert [r.source_id for r in rows] == ["V-1"]
            return count

        await ctx.engine.ingest([encounter(f"V{i}", f"M{i}") for i in range(10)])
        few = await steps()
        await ctx.engine.ingest([encounter(f"V{i}", f"M{i}") for i in range(10, 3_010)])
        many = await steps()
    assert many < few * 1.5, (few, many)
