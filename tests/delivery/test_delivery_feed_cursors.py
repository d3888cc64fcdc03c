"""Scheduled feeds' cursors in the store: shared by every process, one run of a feed at a
time under a lease, the cursor moving only with the batch it covers, the old cursor file
imported once, and the schema migration that adds them."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.core.ports import FeedCursor
from hub.core.rows import record_to_row
from hub.delivery import (
    DeliveryError,
    delivery_jobs,
    import_legacy_cursors,
    legacy_cursor_file,
    run_scheduled_feed,
)
from hub.store import schema
from hub.store.base import StoreError

FEED = "nightly"
TIE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def nightly(h: Any) -> str:
    return h.webhook_feed(FEED, "partner", "http://127.0.0.1:9/x", schedule="0 2 * * *")


async def audit_records(ctx: Any) -> Counter[str]:
    """How many audit entries each record has for the feed's recipient."""
    found: Counter[str] = Counter()
    async for batch in ctx.store.iter_audit():
        for row in batch:
            body = orjson.loads(row.body)
            if body["recipient"] == "partner":
                found[body["record"]] += 1
    return found


async def queued(ctx: Any) -> Counter[str]:
    """Outbox entries per record id."""
    return Counter(r.record_source_id for r in await ctx.store.list_outbox(limit=10_000))


async def add_tied_clients(ctx: Any, h: Any, values: list[str]) -> None:
    """Consented clients all received at the same instant (as one batch import stamps them)."""
    text = json.dumps([h.consent_json(v) for v in values])
    from consent.parsing import parse_consent_file

    await ctx.import_consents(
        parse_consent_file(text, agencies=ctx.config.agencies, policy=ctx.config.consent_policy)
    )
    records = []
    for v in values:
        rec = h.client(v)
        provenance = replace(rec.meta.provenance, received_at=TIE)
        records.append(replace(rec, meta=replace(rec.meta, provenance=provenance)))
    await ctx.engine.ingest(records)


def failing_at(ctx: Any, monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Make the gate pass of the ``call``-th record of this hub raise (a crash mid-run)."""
    real = ctx.engine.prepare_delivery
    calls = 0

    async def prepare(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            raise RuntimeError("crash in the middle of a batch")
        return await real(*args, **kw)

    monkeypatch.setattr(ctx.engine, "prepare_delivery", prepare)


def slowed(ctx: Any, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make each gate pass of this hub take a while (a run that is still going)."""
    real = ctx.engine.prepare_delivery

    async def prepare(*args: Any, **kw: Any) -> Any:
        await asyncio.sleep(seconds)
        return await real(*args, **kw)

    monkeypatch.setattr(ctx.engine, "prepare_delivery", prepare)


@pytest.fixture
async def two_workers(hub: Any, h: Any, pg_url: str) -> AsyncIterator[tuple[Any, Any]]:
    """Two hub contexts ("workers" on two machines) on one PostgreSQL database."""
    hub.store_url = pg_url
    hub.write(nightly(h))
    async with hub.open() as a, hub.open() as b:
        yield a, b


async def add_clients(h: Any, ctx: Any, values: list[str], *others: Any) -> None:
    """Ingest consented clients in one hub; the others load the new consents (as each
    process does from the shared store)."""
    await h.add_clients(ctx, values)
    for other in others:
        await other.reload_consents()


# ---- one process -----------------------------------------------------------------------


async def test_delivery_feed_run_moves_its_cursor_in_the_store(
    hub: Any, h: Any, store_url: str
) -> None:
    hub.store_url = store_url
    hub.write(nightly(h))
    async with hub.open() as ctx:
        (feed,) = ctx.engine.feeds
        assert await ctx.store.feed_cursor(FEED) == FeedCursor("")
        await h.add_clients(ctx, ["P1", "P2", "P3"])
        first = await run_scheduled_feed(ctx, feed, batch=2)
        assert first is not None and (first.considered, first.enqueued) == (3, 3)
        newest = max(r.received_at for r in await records_of(ctx))
        cursor = await ctx.store.feed_cursor(FEED)
        assert cursor.received_at == newest and cursor.key is not None
        again = await run_scheduled_feed(ctx, feed)
        assert again is not None and again.considered == 0
        await h.add_clients(ctx, ["P4"])
        third = await run_scheduled_feed(ctx, feed)
        assert third is not None and (third.considered, third.enqueued) == (1, 1)
        assert (await ctx.store.feed_cursor(FEED)).received_at > cursor.received_at
        assert set((await audit_records(ctx)).values()) == {1}
        assert not legacy_cursor_file(ctx).exists(), "no cursor file is written any more"
        # the lease was given back: a claim by anyone succeeds at once
        assert await ctx.store.claim_feed(FEED, "someone", 5) is not None


async def records_of(ctx: Any) -> list[Any]:
    return [r async for batch in ctx.store.iter_records("client") for r in batch]


async def test_delivery_feed_cursor_moves_only_with_the_batch_it_covers(
    hub: Any, h: Any, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.store_url = store_url
    hub.write(nightly(h))
    values = [f"P{i:02d}" for i in range(12)]
    async with hub.open() as ctx:
        (feed,) = ctx.engine.feeds
        await h.add_clients(ctx, values)
        failing_at(ctx, monkeypatch, 7)  # the 2nd record of the 2nd batch of 5
        with pytest.raises(RuntimeError, match="crash"):
            await run_scheduled_feed(ctx, feed, batch=5)
        positions = await ctx.store.feed_changes(["client"], FeedCursor(""), 100)
        assert await ctx.store.feed_cursor(FEED) == positions[4], "at the end of batch 1"
        assert sum((await audit_records(ctx)).values()) == 5, "batch 2 rolled back whole"
        assert sum((await queued(ctx)).values()) == 5
        monkeypatch.undo()
        rest = await run_scheduled_feed(ctx, feed, batch=5)
        assert rest is not None and rest.considered == 7, "the lease was given back"
        audit = await audit_records(ctx)
        assert len(audit) == 12 and set(audit.values()) == {1}, "each record audited once"
        assert await queued(ctx) == Counter({v: 1 for v in values})
        assert await ctx.store.feed_cursor(FEED) == positions[-1]


async def test_delivery_feed_records_received_at_one_instant_split_across_batches(
    hub: Any, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.write(nightly(h))
    values = [f"T{i:02d}" for i in range(7)]
    async with hub.open() as ctx:
        (feed,) = ctx.engine.feeds
        await add_tied_clients(ctx, h, values)
        # One ingest stores its records at one instant, whatever their sources say.
        stamps = {row.received_at for row in await records_of(ctx)}
        assert len(stamps) == 1 and TIE.isoformat(timespec="microseconds") not in stamps
        failing_at(ctx, monkeypatch, 4)
        with pytest.raises(RuntimeError):
            await run_scheduled_feed(ctx, feed, batch=3)
        cursor = await ctx.store.feed_cursor(FEED)
        assert cursor.received_at in stamps
        assert cursor.key is not None, "mid-instant: the key says how far"
        monkeypatch.undo()
        rest = await run_scheduled_feed(ctx, feed, batch=3)
        assert rest is not None and rest.considered == 4
        audit = await audit_records(ctx)
        assert len(audit) == 7 and set(audit.values()) == {1}


async def test_delivery_feed_job_skips_quietly_while_the_feed_runs_elsewhere(
    hub: Any, h: Any
) -> None:
    hub.write(nightly(h))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1"])
        assert await ctx.store.claim_feed(FEED, "other-host:1:run", 60) is not None
        woken: list[int] = []
        jobs = {j.name: j for j in delivery_jobs(ctx, on_enqueued=woken.append)}
        await jobs[f"feed:{FEED}"].func()
        assert woken == [] and await queued(ctx) == Counter()
        assert await ctx.store.release_feed(FEED, "other-host:1:run")
        await jobs[f"feed:{FEED}"].func()
        assert woken == [1]


# ---- several processes on one PostgreSQL database -----------------------------------------


@pytest.mark.pg
async def test_delivery_feed_cursor_is_shared_by_two_workers(two_workers: Any, h: Any) -> None:
    a, b = two_workers
    (feed_a,), (feed_b,) = a.engine.feeds, b.engine.feeds
    await add_clients(h, a, ["P1", "P2"], b)
    done = await run_scheduled_feed(a, feed_a)
    assert done is not None and done.enqueued == 2
    assert await b.store.feed_cursor(FEED) == await a.store.feed_cursor(FEED)
    seen = await run_scheduled_feed(b, feed_b)
    assert seen is not None and seen.considered == 0, "b starts where a stopped"
    await add_clients(h, b, ["P3"], a)
    more = await run_scheduled_feed(b, feed_b)
    assert more is not None and more.enqueued == 1
    after = await run_scheduled_feed(a, feed_a)
    assert after is not None and after.considered == 0
    assert set((await audit_records(a)).values()) == {1}


@pytest.mark.pg
async def test_delivery_concurrent_runs_of_a_feed_do_the_work_once(
    two_workers: Any, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_workers
    values = [f"P{i:02d}" for i in range(30)]
    await add_clients(h, a, values, b)
    slowed(a, monkeypatch, 0.01)
    slowed(b, monkeypatch, 0.01)
    results = await asyncio.gather(
        run_scheduled_feed(a, a.engine.feeds[0], batch=4),
        run_scheduled_feed(b, b.engine.feeds[0], batch=4),
    )
    ran = [r for r in results if r is not None]
    assert len(ran) == 1, "one of the two found the feed running and did nothing"
    assert (ran[0].considered, ran[0].enqueued) == (30, 30)
    audit = await audit_records(a)
    assert len(audit) == 30 and set(audit.values()) == {1}, "no duplicate permit entries"
    assert await queued(b) == Counter({v: 1 for v in values})


@pytest.mark.pg
async def test_delivery_claims_of_one_feed_at_once_give_one_lease(two_workers: Any) -> None:
    a, b = two_workers
    claims = await asyncio.gather(
        *(ctx.store.claim_feed(FEED, f"w{i}", 30) for i, ctx in enumerate([a, b] * 5))
    )
    assert sum(c is not None for c in claims) == 1


@pytest.mark.pg
async def test_delivery_a_crashed_runs_lease_expires_and_another_takes_over(
    two_workers: Any, h: Any
) -> None:
    a, b = two_workers
    await add_clients(h, a, ["P1", "P2"], b)
    # a process claimed the feed and died without giving it back
    assert await a.store.claim_feed(FEED, "dead-host:99:run", 0.5) is not None
    assert await run_scheduled_feed(b, b.engine.feeds[0]) is None, "its lease is still live"
    await asyncio.sleep(0.6)
    took = await run_scheduled_feed(b, b.engine.feeds[0])
    assert took is not None and took.enqueued == 2
    # the dead run, were it to come back, can no longer move the cursor
    async with a.store.transaction() as tx:
        assert not await tx.advance_feed(FEED, "dead-host:99:run", FeedCursor("9999"), "9999")
    assert (await a.store.feed_cursor(FEED)).received_at < "9999"


@pytest.mark.pg
async def test_delivery_a_run_that_lost_its_lease_stops_without_duplicates(
    two_workers: Any, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_workers
    values = [f"P{i:02d}" for i in range(12)]
    await add_clients(h, a, values, b)
    real = a.store.transaction
    calls = 0
    paused, resume = asyncio.Event(), asyncio.Event()

    @asynccontextmanager
    async def stalling() -> AsyncIterator[Any]:
        nonlocal calls
        calls += 1
        if calls == 3:  # 1: the claim, 2: batch 1, 3: batch 2 (a stalls before it)
            paused.set()
            await resume.wait()
        async with real() as tx:
            yield tx

    monkeypatch.setattr(a.store, "transaction", stalling)
    stalled = asyncio.create_task(
        run_scheduled_feed(a, a.engine.feeds[0], lease_seconds=0.3, batch=5)
    )
    try:
        await asyncio.wait_for(paused.wait(), 10)
        await asyncio.sleep(0.4)
        took = await run_scheduled_feed(b, b.engine.feeds[0])
        assert took is not None and took.considered == 12 - 5
    finally:
        resume.set()
    # a resumes, finds the feed taken over, and stops (its next batch rolled back)
    result = await asyncio.wait_for(stalled, 10)
    assert result is not None and result.considered == 5, "only its first batch counts"
    audit = await audit_records(b)
    assert len(audit) == 12 and set(audit.values()) == {1}
    assert await queued(b) == Counter({v: 1 for v in values})


# ---- the old cursor file, and the migration -----------------------------------------------


async def test_delivery_old_cursor_file_is_imported_once(hub: Any, h: Any) -> None:
    hub.write(nightly(h))
    async with hub.open() as ctx:
        (feed,) = ctx.engine.feeds
        await h.add_clients(ctx, ["P1", "P2"])
        old = max(r.received_at for r in await records_of(ctx))
        await h.add_clients(ctx, ["P3"])
        path = legacy_cursor_file(ctx)
        path.write_bytes(orjson.dumps({FEED: old, "retired-feed": old}))
        run = await run_scheduled_feed(ctx, feed)
        assert run is not None and run.considered == 1, "P1 and P2 were sent before upgrade"
        assert (await queued(ctx)) == Counter({"P3": 1})
        assert not path.exists() and path.with_name(path.name + ".imported").exists()
        assert (await ctx.store.feed_cursor("retired-feed")).received_at == old
        # a second file (another machine's, behind the store) does not move it back
        path.write_bytes(orjson.dumps({FEED: "2000-01-01T00:00:00.000000+00:00"}))
        assert await import_legacy_cursors(ctx) == 0
        assert (await ctx.store.feed_cursor(FEED)).received_at > old


async def test_delivery_old_cursor_file_stays_while_its_feed_runs_elsewhere(
    hub: Any, h: Any
) -> None:
    hub.write(nightly(h))
    async with hub.open() as ctx:
        path = legacy_cursor_file(ctx)
        path.write_bytes(orjson.dumps({FEED: "2025-06-01T00:00:00.000000+00:00"}))
        assert await ctx.store.claim_feed(FEED, "another-machine", 30) is not None
        assert await import_legacy_cursors(ctx) == 0
        assert path.exists(), "kept: its cursor could not be taken yet"
        await ctx.store.release_feed(FEED, "another-machine")
        assert await import_legacy_cursors(ctx) == 1
        assert not path.exists()
        assert (await ctx.store.feed_cursor(FEED)).received_at.startswith("2025-06-01")


async def test_delivery_unreadable_old_cursor_file_stops_the_run(hub: Any, h: Any) -> None:
    hub.write(nightly(h))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1"])
        legacy_cursor_file(ctx).write_bytes(b"{not json")
        with pytest.raises(DeliveryError, match="feed cursor file is unreadable"):
            await run_scheduled_feed(ctx, ctx.engine.feeds[0])
        assert await queued(ctx) == Counter(), "nothing re-sent from the start"


SCHEMA_1_RECORD_COLUMNS = (
    "kind, source, source_id, owner, version, payload, payload_hash, source_system, "
    "received_at, deleted, sensitivity, restricted, client_source_id, person_id, "
    "client_source, raw_hash, flags"
)
"""The columns of ``records`` from schema 1 to 9."""


async def test_delivery_store_at_schema_2_is_migrated_with_its_data(
    tmp_path: Path, h: Any, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store_url:
        from hub.store.postgres import PostgresStore

        old: Any = PostgresStore(store_url)
    else:
        from hub.store.sqlite import SqliteStore

        old = SqliteStore(tmp_path / "old.db")
    await old.open()
    try:
        monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        assert await old.migrate() == [1, 2]
        row = record_to_row(h.client("P1"))
        async with old.transaction() as tx:
            # Written as schema 2 stores it (its columns), not with today's upsert, which
            # writes columns later migrations add (``deleted_at``, schema 10).
            columns = [c.strip() for c in SCHEMA_1_RECORD_COLUMNS.split(",")]
            await tx._c.execute(
                f"INSERT INTO records ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [int(v) if isinstance(v, bool) else v for v in (getattr(row, c) for c in columns)],
            )
        monkeypatch.undo()
        with pytest.raises(StoreError, match="run 'hub migrate'"):
            await old.check_schema()
        assert await old.migrate() == [v for v, _, _ in schema.MIGRATIONS[2:]]
        await old.check_schema()
        async with old.transaction() as tx:
            assert await tx.get_record("client", row.source, row.source_id) == row
        changes = await old.feed_changes(["client"], FeedCursor(""), 10)
        assert changes == [FeedCursor(row.received_at, ("client", row.source, row.source_id))]
        assert await old.claim_feed(FEED, "w", 30) == FeedCursor("")
        assert await old.claim_feed(FEED, "other", 30) is None
    finally:
        await old.close()
