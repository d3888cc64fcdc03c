"""Scheduled feeds never pass a record by: versions are stamped with the time they are
stored, and a run takes only what was stored at least ``feed_settle_seconds`` ago."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hub.delivery import run_scheduled_feed


def nightly(h: Any) -> str:
    return h.webhook_feed("nightly", "partner", "http://127.0.0.1:9/x", schedule="0 2 * * *")


def received_long_ago(h: Any, value: str) -> Any:
    """A client whose source says it was received years ago (an old export, a replay)."""
    rec = h.client(value, version="2025-02-01T00:00:00")
    old = replace(rec.meta.provenance, received_at=datetime(2020, 1, 1, tzinfo=UTC))
    return replace(rec, meta=replace(rec.meta, provenance=old))


async def test_a_version_stored_after_a_run_is_taken_by_the_next_whatever_its_source_says(
    hub: Any, h: Any
) -> None:
    hub.write(nightly(h))
    async with hub.open() as ctx:
        (feed,) = ctx.engine.feeds
        await h.add_clients(ctx, ["A"])
        first = await run_scheduled_feed(ctx, feed)
        assert first is not None and first.enqueued == 1
        # Received by its source long before the cursor's position, stored only now.
        await h.add_clients(ctx, ["B"])
        await h.add_clients(ctx, ["C"], consent=True)
        await ctx.engine.ingest([received_long_ago(h, "C")])
        second = await run_scheduled_feed(ctx, feed)
        assert second is not None and second.considered == 2
        queued = {r.record_source_id for r in await ctx.store.list_outbox(limit=100)}
        assert queued == {"A", "B", "C"}


async def test_a_run_leaves_what_was_stored_within_the_settle_window(hub: Any, h: Any) -> None:
    hub.write(nightly(h), feed_settle_seconds=3600.0)
    async with hub.open() as ctx:
        (feed,) = ctx.engine.feeds
        await h.add_clients(ctx, ["A"])
        run = await run_scheduled_feed(ctx, feed)
        assert run is not None and run.considered == 0
        assert (await ctx.store.feed_cursor("nightly")).received_at == ""
