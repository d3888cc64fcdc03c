"""Scheduled feeds take what becomes theirs after their cursor passed it, as on-change feeds
do: a record that arrived before its client record (its person unknown at the run that
passed it) at the first run after the client arrives, and, for a feed of persons holding a
kind of record (``person_has``), a person's earlier records at the first run after their
first such record arrives. Each is decided and audited once; nothing is queued twice."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hub.audit import entry_from_row
from hub.context import HubContext
from hub.core.records import Encounter
from hub.delivery import run_scheduled_feed
from hub.synthetic import client, encounter, enrollment
from tests.conftest import HubFactory, require_pg
from tests.core.test_core_late_routing import consent_for

FEED = """
[delivery]
feed_settle_seconds = 0

[[feeds]]
name = "nightly"
recipient = "hospital-x"
kinds = {kinds}
{extra}
purpose = "treatment"
schedule = "0 2 * * *"
connector = "webhook"
options = {{url = "http://127.0.0.1:9/none"}}
"""


async def queued(ctx: HubContext) -> list[tuple[str, str]]:
    return sorted((r.record_kind, r.record_source_id) for r in await ctx.store.list_outbox())


async def decisions(ctx: HubContext) -> list[str]:
    entries = [entry_from_row(r) async for batch in ctx.store.iter_audit() for r in batch]
    return sorted(e.record for e in entries if e.recipient == "hospital-x")


def updated(record: Encounter) -> Encounter:
    """The record's next version (a sender's A08 update)."""
    return replace(record, meta=replace(record.meta, version="2025-03-01T00:00:00"))


async def run(ctx: HubContext) -> None:
    (feed,) = ctx.engine.feeds
    assert await run_scheduled_feed(ctx, feed) is not None


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_a_record_passed_before_its_client_arrived_goes_at_the_next_run(
    hub_factory: HubFactory, store: str
) -> None:
    if store == "postgresql":
        require_pg()
    toml = FEED.format(kinds='["client", "enrollment"]', extra="")
    async with hub_factory(toml, store=store) as ctx:
        await consent_for(ctx, "1")
        await ctx.engine.ingest([enrollment("E1", "1"), enrollment("E2", "2")])
        await run(ctx)
        assert await queued(ctx) == [], "no client yet: nobody to decide for"
        await ctx.engine.ingest([client("1")])
        await run(ctx)
        assert await queued(ctx) == [("client", "1"), ("enrollment", "E1")]
        # later runs and the client's next version do not decide the enrollment again
        await run(ctx)
        await ctx.engine.ingest([client("1", version="2025-02-01T00:00:00")])
        await run(ctx)
        assert await queued(ctx) == [("client", "1"), ("client", "1"), ("enrollment", "E1")]
        assert (await decisions(ctx)).count("enrollment/hmis:demo/E1") == 1
        # E2's client is still unknown: it waits, and goes once its client comes
        await consent_for(ctx, "2")
        await ctx.engine.ingest([client("2")])
        await run(ctx)
        assert ("enrollment", "E2") in await queued(ctx)
        assert (await decisions(ctx)).count("enrollment/hmis:demo/E2") == 1


async def test_a_waiting_record_deleted_before_its_client_came_is_not_sent(
    hub_factory: HubFactory,
) -> None:
    toml = FEED.format(kinds='["client", "enrollment"]', extra="")
    async with hub_factory(toml) as ctx:
        await consent_for(ctx, "1")
        await ctx.engine.ingest([enrollment("E1", "1")])
        await run(ctx)
        async with ctx.store.transaction() as tx:
            await tx.mark_deleted("enrollment", "hmis:demo", ["E1"])
        await ctx.engine.ingest([client("1")])
        await run(ctx)
        assert await queued(ctx) == [("client", "1")]
        assert "enrollment/hmis:demo/E1" not in await decisions(ctx)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_a_client_passed_without_an_encounter_goes_at_the_run_after_their_first(
    hub_factory: HubFactory, store: str
) -> None:
    if store == "postgresql":
        require_pg()
    toml = FEED.format(kinds='["client"]', extra='person_has = ["encounter"]')
    async with hub_factory(toml, store=store) as ctx:
        await consent_for(ctx, "1")
        await ctx.engine.ingest([client("1")])
        await run(ctx)
        assert await queued(ctx) == []
        await ctx.engine.ingest([encounter("V1", "1", source="hmis:demo")])
        await run(ctx)
        assert await queued(ctx) == [("client", "1")]
        # the person's only encounter, updated: the person qualified before, and the client
        # (already queued) is not decided on again
        await ctx.engine.ingest([updated(encounter("V1", "1", source="hmis:demo"))])
        await run(ctx)
        await ctx.engine.ingest([encounter("V2", "1", source="hmis:demo")])
        await run(ctx)
        assert await queued(ctx) == [("client", "1")]
        assert (await decisions(ctx)).count("client/hmis:demo/1") == 1


async def test_a_withheld_earlier_record_is_not_decided_again_at_every_run(
    hub_factory: HubFactory,
) -> None:
    """A person qualifying late whose earlier record the gate withholds: one decision, not
    one per run."""
    toml = FEED.format(kinds='["client"]', extra='person_has = ["encounter"]')
    async with hub_factory(toml) as ctx:
        await ctx.engine.ingest([client("1")])  # no consent: the gate withholds it
        await run(ctx)
        await ctx.engine.ingest([encounter("V1", "1", source="hmis:demo")])
        await run(ctx)
        await ctx.engine.ingest([encounter("V2", "1", source="hmis:demo")])
        await run(ctx)
        await run(ctx)
        assert await queued(ctx) == []
        assert (await decisions(ctx)).count("client/hmis:demo/1") == 1
