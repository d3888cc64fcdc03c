"""Listing and replaying the outbox by feed, and a partner's page, whatever else it holds."""

from __future__ import annotations

import pytest

from hub import admin
from hub.context import HubContext
from hub.core.ports import OutboxRow


def entry(i: int, feed: str, recipient: str = "r") -> OutboxRow:
    due = "2026-01-01T00:00:00.000000+00:00"
    return OutboxRow(
        0, feed, recipient, f"p{i}", "client", "s", str(i), "v", f"k{i}", "pending", 0, due, due
    )


async def settle(ctx: HubContext, entries: list[OutboxRow], status: str) -> list[int]:
    async with ctx.store.transaction() as tx:
        await tx.enqueue_many(entries)
    keys = {e.idempotency_key for e in entries}
    ids = [r.id for r in await ctx.store.list_outbox(limit=10_000) if r.idempotency_key in keys]
    for outbox_id in ids:
        assert await ctx.store.finish_outbox(outbox_id, status, error="HTTP 410")
    return sorted(ids)


async def test_a_feeds_old_dead_letters_are_listed_and_replayed_behind_newer_ones(
    any_hub: HubContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of 2 stand for pages of 1,000: the feed's dead letters are older than a page of
    # another feed's, which used to hide them from the listing and from the replay.
    monkeypatch.setattr(admin, "REPLAY_PAGE", 2)
    old = await settle(any_hub, [entry(i, "old-feed") for i in range(5)], "dead")
    newer = await settle(any_hub, [entry(100 + i, "busy-feed") for i in range(6)], "dead")
    listed = await admin.list_entries(any_hub, status="dead", feed="old-feed", limit=3)
    assert [r.id for r in listed] == old[::-1][:3]
    assert await admin.replay_dead(any_hub, "old-feed") == old
    assert {r.status for r in await any_hub.store.list_outbox(feed="old-feed")} == {"pending"}
    assert await admin.replay_dead(any_hub) == newer


async def test_a_partners_page_is_not_emptied_by_newer_withheld_entries(
    any_hub: HubContext,
) -> None:
    [delivered] = await settle(any_hub, [entry(1, "f")], "delivered")
    await settle(any_hub, [entry(2 + i, "f") for i in range(3)], "withheld")
    page = await admin.list_entries(any_hub, recipient="r", limit=2, hide_withheld=True)
    assert [r.id for r in page] == [delivered]
    everything = await admin.list_entries(any_hub, recipient="r", limit=2)
    assert [r.status for r in everything] == ["withheld", "withheld"]
