"""Outbound delivery: feeds on a schedule, the outbox workers, and retention of the outbox.

The flow after the engine has queued a permitted record (``outbox``, status ``pending``):

1. a :class:`DeliveryWorker` claims due entries under a lease (``SKIP LOCKED`` on
   PostgreSQL, so several ``hub worker`` processes share one outbox);
2. the consent gate runs again with the time of sending (``Engine.redisclose_many``, a few
   entries per transaction, each decision audited): a revocation or an expiry since queueing
   marks the entry ``withheld`` in the transaction that audits the denial, and nothing is
   sent;
3. what the gate released goes to the feed's sink; each outcome settles its entry:
   ``delivered``, ``retry`` (exponential backoff with jitter, ``Retry-After`` honoured) or
   ``dead`` (not retryable, or out of attempts). Dead letters can be replayed.

Feeds with a crontab ``schedule`` are queued by :class:`DeliveryScheduler`: at each run the
records of the feed's kinds received since the feed's cursor pass the gate and are queued
(:func:`run_scheduled_feed`). The cursor lives in the store (``feed_cursors``), shared by
every process; a run holds the feed's lease there, so one process at a time runs a feed,
and each batch moves the cursor in the transaction that audits and queues it. Retention
deletes settled outbox rows in small batches.

Delivery is at least once: a worker that dies mid-send leaves a lease that expires, and the
entry is sent again with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from hub.context import HubContext
from hub.core.gate import AuditWriter
from hub.core.ports import (
    Delivery,
    DeliveryOutcome,
    FeedCursor,
    LazyDelivery,
    OutboxRow,
    RecordRow,
    Sink,
    Transaction,
)
from hub.core.records import Record, record_client
from hub.core.routing import FeedSpec
from hub.core.rows import record_to_row, row_to_record
from hub.core.serialize import record_from_payload
from hub.feed_backlog import newly_qualified, record_key, taken_back
from hub.plugin_api import ScheduledJob
from hub.sinks.signing import MAX_RETRY_AFTER

log = logging.getLogger("hub.delivery")

DEFAULT_FEED_CONCURRENCY = 2
PRUNE_INTERVAL_SECONDS = 3600.0
PRUNE_BATCH = 500
LEGACY_CURSOR_FILE = "hub-data/feed-cursors.json"
"""Where hubs before the store's ``feed_cursors`` kept the cursors (imported once, renamed)."""
FEED_LEASE_SECONDS = 300.0
"""How long a scheduled run holds its feed without committing a batch (renewed per batch);
the lease of a process that died frees the feed after this long."""
FEED_BATCH = 500
FEED_SCAN = 10_000
RECORD_GONE = "RECORD_GONE"
FEED_RECIPIENT_CHANGED = "FEED_RECIPIENT_CHANGED"
"""Why an entry queued for one recipient is not sent after its feed was pointed at another:
the feed's endpoint is the new recipient's, and the gate decided for the old one."""
RECHECK_BATCH = 250
"""Entries re-checked per transaction: enough to spread its fixed cost (the audit head,
the consent generation, a commit) thin, few enough that an intake transaction waiting for
the audit chain's head waits ~10 ms at most (about 40 µs per entry). Most of a commit's cost
is the audit log's index by person: each entry lands on a random page of it, and a commit
writes every page it changed. 250 per commit instead of 100 cut the hub's own delivery
work from about 79 to 66 µs per entry (``docs/performance.md``, session 8)."""


class DeliveryError(RuntimeError):
    """Delivery cannot start: a sink name clash or a feed schedule that is not valid."""


def _iso(at: datetime) -> str:
    """A time as the store writes it (sortable ISO text, microseconds, UTC)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


# ---- retries -------------------------------------------------------------------------------


def backoff_seconds(
    attempts: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rand: float = 0.5,
) -> float:
    """The wait before the next attempt after ``attempts`` failed ones.

    Exponential (``base * 2**(attempts-1)``, at most ``cap``) with "equal jitter": half of
    it fixed, half random (``rand`` in [0, 1)), so retries of many entries spread out but
    never come back at once. A partner's ``Retry-After`` is honoured even beyond ``cap``
    (up to :data:`MAX_RETRY_AFTER`).
    """
    exp = min(cap, base * 2.0 ** max(0, attempts - 1))
    delay = exp / 2 + exp / 2 * rand
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


# ---- queueing for a feed ---------------------------------------------------------------------


@dataclass(slots=True)
class EnqueueResult:
    """What one :func:`enqueue_for_feed` call did."""

    considered: int = 0
    enqueued: int = 0
    withheld: int = 0
    skipped: int = 0
    already_queued: int = 0

    def add(self, other: EnqueueResult) -> None:
        """Add another result's counts to this one."""
        self.considered += other.considered
        self.enqueued += other.enqueued
        self.withheld += other.withheld
        self.skipped += other.skipped
        self.already_queued += other.already_queued


async def _persons_of(tx: Transaction, records: Sequence[Record]) -> dict[str, str]:
    """Client key (``source/id``) → person, for the clients the records are about."""
    wanted: dict[str, list[str]] = {}
    for rec in records:
        client = record_client(rec)
        if client is not None:
            wanted.setdefault(client.source, []).append(client.id)
    persons: dict[str, str] = {}
    for source, ids in wanted.items():
        for cid, person in (await tx.persons_of_clients(source, ids)).items():
            persons[f"{source}/{cid}"] = person
    return persons


async def enqueue_for_feed(
    ctx: HubContext, feed: FeedSpec, records: Sequence[Record], *, at: datetime | None = None
) -> EnqueueResult:
    """Pass records through the feed's filter and the consent gate and queue the permitted.

    One store transaction: each decision's audit entry and the outbox entry commit together
    (``Engine.prepare_delivery``, as the engine does for on-change feeds). A record whose
    version and content are already queued for the feed is not queued twice (idempotency
    key). This is how scheduled feeds queue; on-change feeds are queued by the engine.
    """
    if not records:
        return EnqueueResult()
    now = at or ctx.engine.clock()
    async with ctx.store.transaction() as tx:
        return await _enqueue_in(ctx, tx, feed, records, now)


async def _enqueue_in(
    ctx: HubContext,
    tx: Transaction,
    feed: FeedSpec,
    records: Sequence[Record],
    now: datetime,
    run_start: FeedCursor | None = None,
) -> EnqueueResult:
    """:func:`enqueue_for_feed` in the caller's transaction.

    ``run_start`` is given by a scheduled run (the cursor it began at): records whose
    client is unknown are then noted to be taken when it arrives, and a ``person_has``
    feed also takes the earlier records of persons who qualify only now
    (:mod:`hub.feed_backlog`).
    """
    result = EnqueueResult()
    if not records:
        return result
    audit = AuditWriter(tx, batch=True)
    persons = await _persons_of(tx, records)
    held_rows: dict[str, list[RecordRow]] = {}

    async def held(person: str) -> list[RecordRow]:
        if person not in held_rows:
            held_rows[person] = await tx.records_of_person(person, sorted(feed.person_has))
        return held_rows[person]

    work: list[tuple[Record, str]] = []
    waiting: list[tuple[str, str, str]] = []
    for rec in records:
        client = record_client(rec)
        person = persons.get(str(client)) if client is not None else None
        if person is None:
            result.considered += 1
            result.skipped += 1
            if client is not None and run_start is not None and rec.meta.kind in feed.kinds:
                waiting.append(record_key(rec))
            continue
        work.append((rec, person))
    if run_start is not None:
        in_batch = {record_key(rec) for rec in records}
        work += await newly_qualified(tx, feed, work, held, in_batch, run_start)
    rows: list[OutboxRow] = []
    for rec, person in work:
        result.considered += 1
        person_kinds = [r.kind for r in await held(person)] if feed.person_has else []
        if not feed.wants(rec, person_kinds):
            result.skipped += 1
            continue
        data_hash = record_to_row(rec).payload_hash
        item = await ctx.engine.prepare_delivery(
            tx, audit, feed, rec, person, now, data_hash=data_hash
        )
        if item is None:
            result.withheld += 1
        else:
            rows.append(item)
    await audit.flush()
    if waiting:
        await tx.hold_for_client(feed.name, waiting)
    ids = await tx.enqueue(rows)
    result.enqueued = len(ids)
    result.already_queued = len(rows) - len(ids)
    return result


# ---- scheduled feeds -----------------------------------------------------------------------


def validate_schedule(schedule: str) -> str | None:
    """Why a feed ``schedule`` is not ``on-change`` or a 5-field crontab, or None."""
    if schedule == "on-change":
        return None
    from hub.schedules import checked_cron_trigger

    try:
        checked_cron_trigger(schedule)
    except ValueError as exc:
        return f"schedule {schedule!r} is neither 'on-change' nor a valid crontab: {exc}"
    return None


def legacy_cursor_file(ctx: HubContext) -> Path:
    """The cursor file earlier hubs kept in the data folder (one per machine)."""
    return ctx.config.resolve(LEGACY_CURSOR_FILE)


async def import_legacy_cursors(ctx: HubContext) -> int:
    """Take the cursors of the data folder's old cursor file into the store, once.

    Each file cursor says that everything received up to it was queued, so it replaces the
    store's when it is further on (and the feed is not running); the file is then renamed
    ``feed-cursors.json.imported`` and never read again — unless a feed was running
    elsewhere and its cursor could not be taken yet (then the file stays for the next run).
    Returns the cursors moved. Raises
    :class:`DeliveryError` when the file is unreadable (the runs wait until it is fixed or
    removed rather than re-send history).
    """
    path = legacy_cursor_file(ctx)
    if not path.exists():
        return 0
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return 0  # another process of this data folder imported it just now
    except (OSError, orjson.JSONDecodeError) as exc:
        raise DeliveryError(f"{path}: feed cursor file is unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise DeliveryError(f"{path}: feed cursor file is not a JSON object")
    moved = 0
    pending = False
    for name, value in data.items():
        if isinstance(value, str) and value:
            if await ctx.store.import_feed_cursor(str(name), value):
                moved += 1
            elif (await ctx.store.feed_cursor(str(name))).received_at < value:
                pending = True  # the feed is running elsewhere: try again at the next run
    if pending:
        return moved
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, path.with_name(f"{path.name}.imported"))
    log.info("imported the feed cursor file into the store", extra={"feeds": moved})
    return moved


class _LeaseLost(Exception):
    """Another process took the feed's run over (this run's lease had expired)."""


def _log_lease_lost(feed: FeedSpec) -> None:
    log.warning(
        "scheduled feed run lost its lease to another process; stopped", extra={"feed": feed.name}
    )


def _run_owner() -> str:
    """A lease owner naming this process and this run."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_scheduled_feed(
    ctx: HubContext,
    feed: FeedSpec,
    *,
    lease_seconds: float = FEED_LEASE_SECONDS,
    batch: int = FEED_BATCH,
) -> EnqueueResult | None:
    """One run of a scheduled feed: queue what changed since its cursor, moving the cursor.

    Returns None without doing anything while another process holds the feed's lease (it
    is running the feed). Otherwise the records of the feed's kinds after the cursor are
    taken in cursor order (``received_at``, then key), ``batch`` at a time; each batch is one
    transaction that moves the cursor past it and renews the lease (only while this run
    still holds it), writes the decisions' audit entries and queues the permitted. So a
    crash never moves the cursor past records not queued, a committed batch is never
    passed through the gate again, and a run that stalled past its lease and was taken over
    stops (its batch rolls back). The lease is given back at the end.
    """
    await import_legacy_cursors(ctx)
    owner = _run_owner()
    cursor = await ctx.store.claim_feed(feed.name, owner, lease_seconds)
    if cursor is None:
        log.info("scheduled feed is running in another process", extra={"feed": feed.name})
        return None
    total = EnqueueResult()
    try:
        await _run_claimed(ctx, feed, owner, cursor, lease_seconds, max(1, batch), total)
    finally:
        try:
            await ctx.store.release_feed(feed.name, owner)
        except Exception as exc:
            log.warning(
                "giving back a feed's lease failed; it expires",
                extra={"feed": feed.name, "error_type": type(exc).__name__},
            )
    log.info(
        "scheduled feed run",
        extra={
            "feed": feed.name,
            "considered": total.considered,
            "enqueued": total.enqueued,
            "withheld": total.withheld,
        },
    )
    return total


async def _run_claimed(
    ctx: HubContext,
    feed: FeedSpec,
    owner: str,
    cursor: FeedCursor,
    lease_seconds: float,
    batch: int,
    total: EnqueueResult,
) -> None:
    """The batches of a claimed run (counts added to ``total`` as each commits): the records
    received since the cursor, then those noted earlier as waiting for their client whose
    client has come (:mod:`hub.feed_backlog`). A ``person_has`` feed's run also reads the
    records of those kinds: a person's first one makes the person's earlier records due."""
    kinds = sorted(set(feed.kinds) | set(feed.person_has))
    run_start = cursor
    settled = _iso(datetime.now(UTC) - timedelta(seconds=ctx.config.delivery.feed_settle_seconds))
    while positions := await ctx.store.feed_changes(kinds, cursor, FEED_SCAN, settled):
        for start in range(0, len(positions), batch):
            part = positions[start : start + batch]
            end = part[-1]
            until = _iso(datetime.now(UTC) + timedelta(seconds=lease_seconds))
            try:
                async with ctx.store.transaction() as tx:
                    # First: the cursor row stays locked until this batch commits, so a
                    # claim by another process waits for it and then finds the lease renewed.
                    if not await tx.advance_feed(feed.name, owner, end, until):
                        raise _LeaseLost
                    found = await tx.records_by_keys([p.key for p in part if p.key])
                    records = [
                        row_to_record(row)
                        for p in part
                        if p.key
                        and (row := found.get(p.key)) is not None
                        # changed since the scan: a later position, a later run's
                        and row.received_at == p.received_at
                        and not row.deleted
                    ]
                    done = await _enqueue_in(ctx, tx, feed, records, ctx.engine.clock(), run_start)
            except _LeaseLost:
                _log_lease_lost(feed)
                return
            total.add(done)
            cursor = end
            await asyncio.sleep(0)
        if len(positions) < FEED_SCAN:
            break
    await _take_back_waiting(ctx, feed, owner, (run_start, cursor), lease_seconds, batch, total)


async def _take_back_waiting(
    ctx: HubContext,
    feed: FeedSpec,
    owner: str,
    cursors: tuple[FeedCursor, FeedCursor],
    lease_seconds: float,
    batch: int,
    total: EnqueueResult,
) -> None:
    """Decide on the records the feed noted as waiting for their client, now that it has
    come: ``batch`` per transaction, each renewing the run's lease. ``cursors``: where the
    run began and where it is (the cursor stays there)."""
    start, cursor = cursors
    while True:
        until = _iso(datetime.now(UTC) + timedelta(seconds=lease_seconds))
        try:
            async with ctx.store.transaction() as tx:
                if not await tx.advance_feed(feed.name, owner, cursor, until):
                    raise _LeaseLost
                count, records = await taken_back(tx, feed.name, batch)
                done = await _enqueue_in(ctx, tx, feed, records, ctx.engine.clock(), start)
        except _LeaseLost:
            _log_lease_lost(feed)
            return
        total.add(done)
        if count < batch:
            return
        await asyncio.sleep(0)


async def prune_delivered(ctx: HubContext, now: datetime | None = None) -> int:
    """Delete delivered and withheld outbox rows older than ``retention.delivered_days``."""
    current = now or datetime.now(UTC)
    cutoff = current - timedelta(days=ctx.config.retention.delivered_days)
    removed = await ctx.store.prune(delivered_before=_iso(cutoff), batch=PRUNE_BATCH)
    if removed:
        log.info("pruned settled outbox rows", extra={"removed": removed})
    return removed


async def prune_payloads(ctx: HubContext, now: datetime | None = None) -> int:
    """Delete dead letters and inbound de-duplication entries older than
    ``retention.payload_days``."""
    current = now or datetime.now(UTC)
    cutoff = current - timedelta(days=ctx.config.retention.payload_days)
    removed = await ctx.store.prune_payloads(before=_iso(cutoff), batch=PRUNE_BATCH)
    if removed:
        log.info("pruned old dead letters and inbound entries", extra={"removed": removed})
    return removed


def delivery_jobs(
    ctx: HubContext, on_enqueued: Callable[[int], None] | None = None
) -> list[ScheduledJob]:
    """The scheduler jobs of delivery: one per scheduled feed, and the outbox pruning.

    Every process runs the jobs; a feed's run is done by whichever claims its lease first.
    Raises :class:`DeliveryError` naming the feed when a schedule is not valid.
    """
    jobs: list[ScheduledJob] = []
    for feed in ctx.engine.feeds:
        if feed.on_change:
            continue
        problem = validate_schedule(feed.schedule)
        if problem is not None:
            raise DeliveryError(f"feed {feed.name!r}: {problem}")
        jobs.append(
            ScheduledJob(
                name=f"feed:{feed.name}",
                func=_feed_job(ctx, feed, on_enqueued),
                cron=feed.schedule,
            )
        )

    async def prune() -> None:
        await prune_delivered(ctx)
        await prune_payloads(ctx)

    jobs.append(
        ScheduledJob(name="outbox-retention", func=prune, interval_seconds=PRUNE_INTERVAL_SECONDS)
    )
    return jobs


def _feed_job(
    ctx: HubContext, feed: FeedSpec, on_enqueued: Callable[[int], None] | None
) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        try:
            result = await run_scheduled_feed(ctx, feed)
        except Exception as exc:
            ctx.metrics.errors.labels("scheduler", type(exc).__name__).inc()
            log.error(
                "scheduled feed run failed",
                extra={"feed": feed.name, "error_type": type(exc).__name__},
            )
            return
        if result is not None and result.enqueued and on_enqueued is not None:
            on_enqueued(result.enqueued)

    return job


class DeliveryScheduler:
    """An APScheduler ``AsyncIOScheduler`` running :func:`delivery_jobs` (times in UTC)."""

    def __init__(self, jobs: Sequence[ScheduledJob]) -> None:
        self.jobs = list(jobs)
        self._scheduler: AsyncIOScheduler | None = None

    def start(self) -> None:
        """Add the jobs and start; must be called with the event loop running.

        Crontab lines are read as crontab(5) does (day of week 0 or 7 = Sunday)."""
        from hub.schedules import cron_trigger

        scheduler = AsyncIOScheduler(timezone=UTC)
        for job in self.jobs:
            extra: dict[str, Any] = {}
            trigger: BaseTrigger
            if job.cron is not None:
                trigger = cron_trigger(job.cron)
            else:
                trigger = IntervalTrigger(seconds=job.interval_seconds or 3600.0, timezone=UTC)
                # interval jobs (retention) also run once shortly after start
                extra["next_run_time"] = datetime.now(UTC) + timedelta(seconds=1)
            scheduler.add_job(
                job.func,
                trigger,
                id=job.name,
                name=job.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=300,
                **extra,
            )
        scheduler.start()
        self._scheduler = scheduler

    def shutdown(self) -> None:
        """Stop firing jobs (a running job is not awaited)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None


# ---- the worker ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claimed:
    """A batch of claimed entries and when their lease runs out (monotonic clock)."""

    rows: list[OutboxRow]
    lease_deadline: float


_Settlement = tuple[OutboxRow, str, str, str | None]
"""How to settle a claimed entry: the entry, its new status, the error, when to retry."""


class DeliveryWorker:
    """Claims due outbox entries and delivers them through their feed's sink.

    Feeds are delivered concurrently; each feed has its own limit of sink calls in flight
    (``options.concurrency``, default 2) and each sink call a timeout
    (``options.send_timeout_seconds``, default half the lease), so a slow partner slows
    only its own feed. Nothing is sent that the gate does not permit at send time.
    """

    def __init__(
        self,
        ctx: HubContext,
        sinks: Mapping[str, Sink],
        worker_id: str,
        *,
        max_in_flight: int | None = None,
        stop_grace_seconds: float = 15.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.ctx = ctx
        self.sinks = dict(sinks)
        self.worker_id = worker_id
        self.settings = ctx.config.delivery
        self.feeds = {f.name: f for f in ctx.engine.feeds}
        self.max_in_flight = max_in_flight or 4 * self.settings.batch_size
        self.stop_grace_seconds = stop_grace_seconds
        self._rand = rand
        self._lanes: dict[str, asyncio.Semaphore] = {}
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self, _count: int = 0) -> None:
        """Claim at once instead of at the next poll (new entries were queued)."""
        self._wake.set()

    # ---- loop --------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim one batch and deliver it completely; returns how many entries it claimed."""
        claimed = await self._claim(self.settings.batch_size)
        if claimed.rows:
            self._in_flight += len(claimed.rows)
            await self._process(claimed)
        return len(claimed.rows)

    async def run(self, stop_event: asyncio.Event) -> None:
        """Claim and deliver until ``stop_event`` is set, then let in-flight work settle.

        Work still running after ``stop_grace_seconds`` is cancelled; its leases expire and
        the entries are delivered again later (same idempotency key).
        """
        log.info("delivery worker started", extra={"worker": self.worker_id})
        poll = self.settings.poll_seconds
        while not stop_event.is_set():
            room = self.max_in_flight - self._in_flight
            if room <= 0:
                self._room.clear()
                await _first_of(stop_event, self._room, seconds=poll)
                continue
            self._wake.clear()
            try:
                claimed = await self._claim(min(self.settings.batch_size, room))
            except Exception as exc:
                self.ctx.metrics.errors.labels("delivery", type(exc).__name__).inc()
                log.error(
                    "claiming outbox entries failed",
                    extra={"worker": self.worker_id, "error_type": type(exc).__name__},
                )
                await _first_of(stop_event, None, seconds=max(poll, 1.0) * 5)
                continue
            if not claimed.rows:
                await _first_of(stop_event, self._wake, seconds=poll)
                continue
            self._in_flight += len(claimed.rows)
            task = asyncio.create_task(self._process(claimed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await self._drain()
        log.info("delivery worker stopped", extra={"worker": self.worker_id})

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=self.stop_grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
            log.warning(
                "stopped with deliveries in flight; their leases will expire",
                extra={"worker": self.worker_id, "tasks": len(pending)},
            )

    async def _claim(self, limit: int) -> _Claimed:
        lease = self.settings.lease_seconds
        started = time.monotonic()
        # A feed whose lanes are all busy (a slow or hanging partner) gets no more entries
        # until one frees: claimed, they would only wait for the lane while taking up the
        # in-flight room every other feed shares.
        busy = [name for name, lane in self._lanes.items() if lane.locked()]
        if busy and len(busy) == len(self.feeds) and set(busy) == self.feeds.keys():
            # Every feed is busy: nothing could be claimed (asking would walk the due
            # entries only to skip them all). A lane that frees wakes the claiming.
            return _Claimed([], started + lease)
        rows = await self.ctx.store.claim_outbox(self.worker_id, limit, lease, busy)
        return _Claimed(rows, started + lease)

    async def _process(self, claimed: _Claimed) -> None:
        groups: dict[str, list[OutboxRow]] = {}
        for row in claimed.rows:
            groups.setdefault(row.feed, []).append(row)
        await asyncio.gather(
            *(self._process_feed(n, rows, claimed.lease_deadline) for n, rows in groups.items())
        )

    async def _process_feed(self, name: str, rows: list[OutboxRow], deadline: float) -> None:
        """One feed's share of a claimed batch; its entries leave the in-flight count as soon
        as they are settled, whatever the batch's other feeds are still waiting for."""
        try:
            await self._deliver_feed(name, rows, deadline)
        except Exception as exc:
            self.ctx.metrics.errors.labels("delivery", type(exc).__name__).inc()
            log.error(
                "delivery batch failed; leases will expire",
                extra={"worker": self.worker_id, "feed": name, "error_type": type(exc).__name__},
            )
        finally:
            self._in_flight -= len(rows)
            self._room.set()

    # ---- one feed ----------------------------------------------------------------------

    def _lane(self, feed: FeedSpec) -> asyncio.Semaphore:
        lane = self._lanes.get(feed.name)
        if lane is None:
            limit = feed.options.get("concurrency", DEFAULT_FEED_CONCURRENCY)
            ok = isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
            lane = asyncio.Semaphore(limit if ok else DEFAULT_FEED_CONCURRENCY)
            self._lanes[feed.name] = lane
        return lane

    def _send_timeout(self, feed: FeedSpec) -> float:
        value = feed.options.get("send_timeout_seconds")
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
        return self.settings.lease_seconds / 2

    async def _deliver_feed(self, name: str, rows: list[OutboxRow], deadline: float) -> None:
        feed = self.feeds.get(name)
        if feed is None:
            gone = DeliveryOutcome(ok=False, retry=False, error=f"feed {name!r} is not configured")
            await self._settle_all(name, None, rows, gone)
            return
        sink = self.sinks.get(feed.connector)
        if sink is None:
            missing = DeliveryOutcome(
                ok=False, retry=True, error=f"no installed sink is named {feed.connector!r}"
            )
            await self._settle_all(name, feed, rows, missing)
            return
        moved = [r for r in rows if r.recipient != feed.recipient]
        if moved:
            log.warning(
                "entries queued for another recipient than the feed's now are withheld",
                extra={"feed": name, "entries": len(moved)},
            )
            await self._finish(name, [(r, "withheld", FEED_RECIPIENT_CHANGED, None) for r in moved])
            rows = [r for r in rows if r.recipient == feed.recipient]
        size = max(1, feed.batch_size)
        lane = self._lane(feed)
        await asyncio.gather(
            *(
                self._deliver_chunk(feed, sink, lane, rows[i : i + size], deadline)
                for i in range(0, len(rows), size)
            )
        )

    async def _deliver_chunk(
        self,
        feed: FeedSpec,
        sink: Sink,
        lane: asyncio.Semaphore,
        rows: list[OutboxRow],
        deadline: float,
    ) -> None:
        try:
            async with lane:
                timeout = self._send_timeout(feed)
                if time.monotonic() + timeout + self.settings.lease_seconds * 0.05 > deadline:
                    # The lease would run out during the send: give the entries back now,
                    # unsent (no attempt counted), rather than risk another worker sending
                    # them at the same time.
                    await self._release(feed.name, rows)
                    return
                permitted: list[tuple[OutboxRow, Delivery]] = []
                withheld: set[int] = set()
                try:
                    await self._recheck(feed, rows, permitted, withheld)
                except Exception as exc:
                    self.ctx.metrics.errors.labels("delivery", type(exc).__name__).inc()
                    log.error(
                        "consent re-check failed; nothing sent",
                        extra={"feed": feed.name, "error_type": type(exc).__name__},
                    )
                    failed = DeliveryOutcome(
                        ok=False, retry=True, error=f"consent re-check failed: {type(exc).__name__}"
                    )
                    await self._settle_all(
                        feed.name, feed, [r for r in rows if r.id not in withheld], failed
                    )
                    return
                if permitted:
                    outcomes = await self._send(sink, feed, [d for _, d in permitted], timeout)
                    await self._finish(
                        feed.name,
                        [
                            self._settlement(feed.name, feed, row, outcome)
                            for (row, _), outcome in zip(permitted, outcomes, strict=True)
                        ],
                    )
        finally:
            # A lane is free again: a claim that skipped this feed (every lane busy) may
            # take its entries now rather than at the next poll.
            self._wake.set()

    async def _recheck(
        self,
        feed: FeedSpec,
        rows: Sequence[OutboxRow],
        permitted: list[tuple[OutboxRow, Delivery]],
        withheld: set[int],
    ) -> None:
        """The gate again, at send time: what may be sent goes to ``permitted``.

        In transactions of at most :data:`RECHECK_BATCH` entries (each holds the audit
        chain's head, which every intake transaction needs too). Each transaction writes the
        decisions' audit entries and settles the entries withheld now (their ids are added
        to ``withheld``), so a withholding commits together with the decision behind it.
        """
        options = dict(feed.options)
        engine = self.ctx.engine
        for start in range(0, len(rows), RECHECK_BATCH):
            part = rows[start : start + RECHECK_BATCH]
            held: list[_Settlement] = []
            async with self.ctx.store.transaction() as tx:
                audit = AuditWriter(tx, batch=True)
                checked = await engine.redisclose_many(
                    tx, audit, part, feed.purpose, feed.categories
                )
                await audit.flush()
                for item, got in zip(part, checked, strict=True):
                    if got is None:
                        held.append((item, "withheld", RECORD_GONE, None))
                        continue
                    disclosure, meta = got
                    released = disclosure.payload
                    if released is None:
                        decision = disclosure.decision
                        reasons = ",".join(decision.reasons) or decision.outcome
                        held.append((item, "withheld", reasons, None))
                        continue
                    delivery = LazyDelivery.of(
                        item.id,
                        feed.name,
                        item.recipient,
                        item.idempotency_key,
                        kind=meta.kind,
                        build=partial(record_from_payload, meta, released),
                        payload=released,
                        options=options,
                    )
                    permitted.append((item, delivery))
                settled = await self._settle_in(tx, held)
            withheld.update(r.id for r, *_ in held)
            self._count(feed.name, held, settled)
            # Let other lanes' requests and answers move between transactions: a re-check
            # never waits on I/O, so without this the loop would run it in one stretch.
            await asyncio.sleep(0)

    async def _send(
        self, sink: Sink, feed: FeedSpec, deliveries: list[Delivery], limit: float
    ) -> list[DeliveryOutcome]:
        """The sink's outcomes; a timeout, an exception or a wrong count is a retry for all."""
        n = len(deliveries)
        try:
            async with asyncio.timeout(limit):
                outcomes = await sink.deliver(deliveries)
        except TimeoutError:
            return [
                DeliveryOutcome(ok=False, retry=True, error=f"sink timed out after {limit:g}s")
            ] * n
        except Exception as exc:
            self.ctx.metrics.errors.labels("sink", type(exc).__name__).inc()
            log.error(
                "sink raised instead of answering outcomes",
                extra={"feed": feed.name, "sink": sink.name, "error_type": type(exc).__name__},
            )
            return [
                DeliveryOutcome(ok=False, retry=True, error=f"sink error: {type(exc).__name__}")
            ] * n
        if len(outcomes) != n:
            error = f"sink {sink.name!r} answered {len(outcomes)} outcomes for {n} deliveries"
            return [DeliveryOutcome(ok=False, retry=True, error=error)] * n
        return list(outcomes)

    # ---- settling ----------------------------------------------------------------------

    async def _settle_all(
        self, name: str, feed: FeedSpec | None, rows: Iterable[OutboxRow], outcome: DeliveryOutcome
    ) -> None:
        await self._finish(name, [self._settlement(name, feed, r, outcome) for r in rows])

    def _settlement(
        self, name: str, feed: FeedSpec | None, row: OutboxRow, outcome: DeliveryOutcome
    ) -> _Settlement:
        """Delivered; retry after a backoff; or dead (not retryable, or out of attempts)."""
        if outcome.ok:
            return (row, "delivered", "", None)
        max_attempts = feed.max_attempts if feed is not None else 0
        if outcome.retry and row.attempts < max_attempts:
            delay = backoff_seconds(
                row.attempts,
                self.settings.backoff_base_seconds,
                self.settings.backoff_max_seconds,
                outcome.retry_after,
                self._rand(),
            )
            retry_at = _iso(datetime.now(UTC) + timedelta(seconds=delay))
            return (row, "retry", outcome.error, retry_at)
        log.warning(
            "delivery dead-lettered",
            extra={"outbox_id": row.id, "feed": name, "attempts": row.attempts},
        )
        return (row, "dead", outcome.error, None)

    async def _settle_in(self, tx: Transaction, entries: Sequence[_Settlement]) -> set[int]:
        """Settle entries in the caller's transaction, while this worker holds their lease."""
        if not entries:
            return set()
        return await tx.settle_outbox(
            [(r.id, status, error, at) for r, status, error, at in entries], self.worker_id
        )

    async def _finish(self, name: str, entries: Sequence[_Settlement]) -> None:
        """Settle entries in one transaction (while this worker holds their lease)."""
        if not entries:
            return
        try:
            settled = await self.ctx.store.finish_outbox_many(
                [(r.id, status, error, at) for r, status, error, at in entries],
                worker=self.worker_id,
            )
        except Exception as exc:
            self.ctx.metrics.errors.labels("delivery", type(exc).__name__).inc()
            log.error(
                "settling outbox entries failed; their leases will expire",
                extra={"entries": len(entries), "error_type": type(exc).__name__},
            )
            return
        self._count(name, entries, settled)

    async def _release(self, name: str, rows: Sequence[OutboxRow]) -> None:
        """Give back claimed entries that were not sent (their attempt is not counted)."""
        try:
            released = await self.ctx.store.release_unsent(
                [r.id for r in rows], self.worker_id, "released unsent: the lease would run out"
            )
        except Exception as exc:
            self.ctx.metrics.errors.labels("delivery", type(exc).__name__).inc()
            log.error(
                "giving back unsent entries failed; their leases will expire",
                extra={"entries": len(rows), "error_type": type(exc).__name__},
            )
            return
        log.warning(
            "entries given back unsent: their lease would run out during the send",
            extra={"feed": name, "entries": len(released)},
        )

    def _count(self, name: str, entries: Sequence[_Settlement], settled: set[int]) -> None:
        """Count the settled entries by status; warn of each whose lease was lost."""
        counts: dict[str, int] = {}
        for row, status, _error, _at in entries:
            if row.id in settled:
                counts[status] = counts.get(status, 0) + 1
            else:
                log.warning(
                    "lease lost before settling; another worker owns the entry now",
                    extra={"outbox_id": row.id, "status": status},
                )
        for status, n in counts.items():
            self.ctx.metrics.records_out.labels(name, status).inc(n)


async def _first_of(stop: asyncio.Event, other: asyncio.Event | None, seconds: float) -> None:
    """Wait until ``stop`` or ``other`` is set, or ``seconds`` pass."""
    waits = [asyncio.ensure_future(stop.wait())]
    if other is not None:
        waits.append(asyncio.ensure_future(other.wait()))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


# ---- putting it together -------------------------------------------------------------------


def collect_sinks(ctx: HubContext) -> dict[str, Sink]:
    """Every installed sink by name: the built-ins and those of plugins (``hub_sinks``).

    Raises :class:`DeliveryError` when two sinks share a name.
    """
    from hub.sinks import plugin as builtin

    found: list[Sink] = []
    if not ctx.plugins.pm.is_registered(builtin):
        found.extend(builtin.builtin_sinks(ctx))
    try:
        results = ctx.plugins.hook.hub_sinks(ctx=ctx)
    except Exception as exc:
        raise DeliveryError(
            f"a plugin's hub_sinks hook failed: {type(exc).__name__}: {exc}"
        ) from None
    for result in results:
        found.extend(result or [])
    sinks: dict[str, Sink] = {}
    for sink in found:
        if sink.name in sinks:
            raise DeliveryError(f"two installed sinks are named {sink.name!r}")
        sinks[sink.name] = sink
    return sinks


def prepare_delivery(ctx: HubContext) -> dict[str, Sink]:
    """What a process checks before it says it delivers (``hub serve``, ``hub worker``):
    that it may deliver from this store, that the sinks load and every feed's connector is
    one of them, and that the schedules are valid. Returns the sinks (the caller closes
    them: :func:`close_sinks`). Raises :class:`DeliveryError` or ``StoreError`` in one line.
    """
    ctx.store.hold_delivery()
    sinks = collect_sinks(ctx)
    for feed in ctx.engine.feeds:
        if feed.connector not in sinks:
            known = ", ".join(sorted(sinks))
            raise DeliveryError(
                f"feed {feed.name!r} names connector {feed.connector!r}, which no installed "
                f"plugin provides (installed sinks: {known})"
            )
    delivery_jobs(ctx)
    return sinks


async def close_sinks(sinks: Mapping[str, Sink]) -> None:
    """Close sinks; one failing to close does not keep the others open."""
    for sink in sinks.values():
        try:
            await sink.close()
        except Exception as exc:
            log.warning(
                "closing a sink failed", extra={"sink": sink.name, "error_type": type(exc).__name__}
            )


def worker_count(ctx: HubContext) -> int:
    """``delivery.workers`` on PostgreSQL; exactly one on SQLite (one writer)."""
    if ctx.store.dialect == "postgresql":
        return max(1, ctx.config.delivery.workers)
    return 1


async def run_workers(
    ctx: HubContext,
    stop_event: asyncio.Event,
    *,
    with_scheduler: bool = True,
    sinks: Mapping[str, Sink] | None = None,
) -> None:
    """``hub worker``: the delivery workers, the feed scheduler and retention, until stopped.

    Workers are woken at once when the engine queues something in this process; otherwise
    they poll every ``delivery.poll_seconds``. Sinks collected here are closed on the way
    out; ``sinks`` given by the caller (:func:`prepare_delivery`) are the caller's to close.
    """
    owned = sinks is None
    installed = collect_sinks(ctx) if sinks is None else dict(sinks)
    ctx.store.hold_delivery()
    if ctx.store.dialect == "sqlite":
        # One process delivers on SQLite (hold_delivery made sure): leases left by a crashed
        # run are ours to take back now rather than after they expire.
        released = await ctx.store.release_leases()
        if released:
            log.info("took back leases of an earlier run", extra={"entries": released})
    prefix = f"{socket.gethostname()}:{os.getpid()}"
    workers = [DeliveryWorker(ctx, installed, f"{prefix}:{i}") for i in range(worker_count(ctx))]
    previous = ctx.engine.on_change

    def wake(count: int) -> None:
        for w in workers:
            w.wake(count)
        if previous is not None:
            previous(count)

    scheduler = DeliveryScheduler(delivery_jobs(ctx, on_enqueued=wake)) if with_scheduler else None
    ctx.engine.on_change = wake
    try:
        if scheduler is not None:
            scheduler.start()
        await asyncio.gather(*(w.run(stop_event) for w in workers))
    finally:
        if scheduler is not None:
            scheduler.shutdown()
        ctx.engine.on_change = previous
        if owned:
            await close_sinks(installed)
