"""Scheduled (crontab) feeds, their cursor, the scheduler jobs, and outbox retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.delivery import (
    DeliveryScheduler,
    DeliveryWorker,
    collect_sinks,
    delivery_jobs,
    enqueue_for_feed,
    prune_delivered,
    prune_payloads,
    run_scheduled_feed,
    validate_schedule,
)


def nightly(h: Any, url: str) -> str:
    return h.webhook_feed("nightly", "partner", url, schedule="0 2 * * *")


async def test_delivery_scheduled_feed_queues_changes_since_its_cursor(hub, h) -> None:
    hub.write(nightly(h, "http://127.0.0.1:9/x"))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1", "P2"])
        assert await ctx.store.list_outbox() == [], "a scheduled feed is not queued at ingest"
        (feed,) = ctx.engine.feeds
        first = await run_scheduled_feed(ctx, feed)
        assert (first.considered, first.enqueued, first.withheld) == (2, 2, 0)
        cursor = (await ctx.store.feed_cursor("nightly")).received_at
        assert cursor
        again = await run_scheduled_feed(ctx, feed)
        assert (again.considered, again.enqueued) == (0, 0)
        await h.add_clients(ctx, ["P3"])
        await h.add_clients(ctx, ["P4"], consent=False)
        third = await run_scheduled_feed(ctx, feed)
        assert (third.considered, third.enqueued, third.withheld) == (2, 1, 1)
        assert (await ctx.store.feed_cursor("nightly")).received_at > cursor
        assert len(await ctx.store.list_outbox()) == 3


async def test_delivery_enqueue_for_feed_is_idempotent_per_version(hub, h) -> None:
    hub.write(nightly(h, "http://127.0.0.1:9/x"))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1"])
        (feed,) = ctx.engine.feeds
        record = h.client("P1")
        first = await enqueue_for_feed(ctx, feed, [record])
        second = await enqueue_for_feed(ctx, feed, [record])
        assert (first.enqueued, second.enqueued, second.already_queued) == (1, 0, 1)
        unknown = await enqueue_for_feed(ctx, feed, [h.client("nobody")])
        assert (unknown.enqueued, unknown.skipped) == (0, 1)


async def test_delivery_jobs_have_feed_crons_and_retention(hub, h) -> None:
    hub.write(
        nightly(h, "http://127.0.0.1:9/x") + h.webhook_feed("live", "clinic", "http://127.0.0.1:9/")
    )
    async with hub.open() as ctx:
        jobs = {j.name: j for j in delivery_jobs(ctx)}
        assert set(jobs) == {"feed:nightly", "outbox-retention"}
        assert jobs["feed:nightly"].cron == "0 2 * * *"
        assert jobs["outbox-retention"].interval_seconds == 3600
        scheduler = DeliveryScheduler(list(jobs.values()))
        scheduler.start()
        try:
            assert scheduler._scheduler is not None
            registered = {j.id: j for j in scheduler._scheduler.get_jobs()}
            assert set(registered) == {"feed:nightly", "outbox-retention"}
            nxt = registered["feed:nightly"].next_run_time
            assert (nxt.hour, nxt.minute) == (2, 0)
        finally:
            scheduler.shutdown()
        # a job run queues the feed (the scheduler would call it at 02:00 UTC)
        await h.add_clients(ctx, ["P1"])
        woken: list[int] = []
        jobs = {j.name: j for j in delivery_jobs(ctx, on_enqueued=woken.append)}
        await jobs["feed:nightly"].func()
        assert woken == [1]


def test_delivery_bad_schedule_is_named() -> None:
    assert validate_schedule("on-change") is None
    assert validate_schedule("*/5 * * * *") is None
    problem = validate_schedule("every night")
    assert problem is not None and "every night" in problem


async def test_delivery_bad_schedule_is_a_config_error_naming_the_key(hub, h) -> None:
    from hub.config import ConfigError

    hub.write(h.webhook_feed("broken", "partner", "http://127.0.0.1:9/", schedule="61 * * * *"))
    with pytest.raises(ConfigError, match=r"feeds\[0\].schedule'.*61"):
        async with hub.open():
            pass


async def test_delivery_retention_prunes_old_settled_rows_only(hub, receiver, h) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1", "P2", "P3"])
        worker = DeliveryWorker(ctx, collect_sinks(ctx), "w")
        try:
            while await worker.run_once():
                pass
        finally:
            for sink in worker.sinks.values():
                await sink.close()
        await h.add_clients(ctx, ["P4"])
        assert dict(await ctx.store.outbox_depth()) == {"delivered": 3, "pending": 1}
        assert await prune_delivered(ctx) == 0, "nothing is 30 days old yet"
        later = datetime.now(UTC) + timedelta(days=31)
        assert await prune_delivered(ctx, now=later) == 3
        assert dict(await ctx.store.outbox_depth()) == {"pending": 1}


async def test_retention_prunes_old_dead_letters_and_inbound_entries(hub, h) -> None:
    # [retention] payload_days: a dead letter keeps its payload (for a replay) and an
    # inbound entry the answer sent, each only this long; what is still open stays.
    hub.write(
        h.webhook_feed("partner-clients", "partner", "http://127.0.0.1:9/"),
        extra="[retention]\npayload_days = 10\n",
    )
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1", "P2"])
        dead, retrying = await ctx.store.claim_outbox("w", 10, 60)
        assert await ctx.store.finish_outbox(dead.id, "dead", error="HTTP 410")
        assert await ctx.store.finish_outbox(
            retrying.id, "retry", error="HTTP 503", retry_at="2999-01-01"
        )
        async with ctx.store.transaction() as tx:
            await tx.remember_message("hospital", "MSG1", "hash", b"ACK")
        assert await prune_payloads(ctx) == 0, "nothing is 10 days old yet"
        later = datetime.now(UTC) + timedelta(days=11)
        assert await prune_payloads(ctx, now=later) == 2
        assert [r.id for r in await ctx.store.list_outbox()] == [retrying.id]
        async with ctx.store.transaction() as tx:
            assert await tx.seen_message("hospital", "MSG1") is None


async def test_delivery_run_workers_stops_gracefully(hub, receiver, h) -> None:
    from hub.delivery import run_workers

    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url))
    async with hub.open() as ctx:
        stop = asyncio.Event()
        task = asyncio.create_task(run_workers(ctx, stop))
        await asyncio.sleep(0.1)
        await h.add_clients(ctx, ["P1", "P2"])  # the engine wakes the workers
        await h.wait_until(lambda: len(receiver.delivered_keys()) == 2, within=5)
        stop.set()
        await asyncio.wait_for(task, 10)
        assert ctx.engine.on_change is None, "the wake-up hook is removed on the way out"
