"""The delivery worker against a real loopback receiver: retries, dead letters, replay,
revocation between queueing and sending, backpressure."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import orjson

from hub.core.ports import Delivery, DeliveryOutcome
from hub.delivery import DeliveryWorker, collect_sinks
from hub.sinks.webhook import verify_signature


async def run_worker(
    ctx: Any, sinks: dict[str, Any] | None = None, **kw: Any
) -> tuple[DeliveryWorker, asyncio.Event, asyncio.Task[None]]:
    """A worker running in the background (stop with the event)."""
    worker = DeliveryWorker(
        ctx, sinks if sinks is not None else collect_sinks(ctx), "test-worker", **kw
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    return worker, stop, task


async def stop_worker(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, 10)


def records_out(ctx: Any, feed: str, status: str) -> float | None:
    """The hub_records_out_total counter as /metrics shows it."""
    labels = {"feed": feed, "status": status}
    return ctx.metrics.registry.get_sample_value("hub_records_out_total", labels)


async def statuses(ctx: Any) -> Counter[str]:
    return Counter(r.status for r in await ctx.store.list_outbox(limit=10_000))


async def test_delivery_receiver_recovers_everything_arrives_once_keyed(hub, receiver, h) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url))
    failing = {"left": 12}

    def flaky(_seen: Any) -> tuple[int, dict[str, str]]:
        if failing["left"] > 0:
            failing["left"] -= 1
            return 500, {}
        return 200, {}

    receiver.behaviour = flaky
    values = [f"P{i}" for i in range(20)]
    async with hub.open() as ctx:
        await h.add_clients(ctx, values)
        queued = await ctx.store.list_outbox(limit=100)
        assert len(queued) == 20
        expected = {r.idempotency_key for r in queued}
        worker, stop, task = await run_worker(ctx)
        try:
            await h.wait_until(lambda: set(receiver.delivered_keys()) == expected)
            await h.wait_until(lambda: _all_delivered(ctx))
        finally:
            await stop_worker(stop, task)
            for s in worker.sinks.values():
                await s.close()
        # each key delivered successfully exactly once; failed attempts carried the same key
        assert Counter(receiver.delivered_keys()) == Counter({k: 1 for k in expected})
        by_key: dict[str, set[bytes]] = {}
        for seen in receiver.requests:
            by_key.setdefault(seen.key, set()).add(seen.body)
            assert verify_signature(seen.headers["X-Hub-Signature"], seen.body, [h.secret])
            body = seen.json
            assert body["idempotency_key"] == seen.key
            assert body["feed"] == "partner-clients"
            assert body["recipient"] == "partner"
            assert body["kind"] == "client"
            assert body["record"]["sex"] == "Female"
        assert all(len(bodies) == 1 for bodies in by_key.values())
        assert len(receiver.requests) == 20 + 12
        retried = [k for k, n in Counter(s.key for s in receiver.requests).items() if n > 1]
        assert retried, "some keys must have been retried"
        assert (await statuses(ctx)) == Counter({"delivered": 20})
        assert records_out(ctx, "partner-clients", "delivered") == 20


async def _all_delivered(ctx: Any) -> bool:
    return set((await statuses(ctx)).keys()) == {"delivered"}


async def test_delivery_poison_message_dead_lettered_rest_flow_and_replay(hub, receiver, h) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url, max_attempts=3))
    poison: dict[str, Any] = {"key": None, "fixed": False}

    def behaviour(seen: Any) -> tuple[int, dict[str, str]]:
        if seen.json["record"]["identifiers"][0]["value"] == "P3" and not poison["fixed"]:
            return 503, {}
        return 200, {}

    receiver.behaviour = behaviour
    values = [f"P{i}" for i in range(10)]
    async with hub.open() as ctx:
        await h.add_clients(ctx, values)
        worker, stop, task = await run_worker(ctx)
        try:
            await h.wait_until(lambda: _counts(ctx, {"delivered": 9, "dead": 1}))
            dead = await ctx.store.list_outbox(status="dead")
            assert len(dead) == 1
            assert dead[0].attempts == 3
            assert dead[0].last_error == "HTTP 503"
            assert len(set(receiver.delivered_keys())) == 9
            # the partner is fixed: replay delivers it
            poison["fixed"] = True
            assert await ctx.store.requeue_outbox(dead[0].id)
            worker.wake()
            await h.wait_until(lambda: _counts(ctx, {"delivered": 10}))
        finally:
            await stop_worker(stop, task)
            for s in worker.sinks.values():
                await s.close()
        assert dead[0].idempotency_key in receiver.delivered_keys()


async def test_delivery_client_error_is_dead_at_once(hub, receiver, h) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url))
    receiver.behaviour = lambda _s: (400, {})
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1"])
        worker, stop, task = await run_worker(ctx)
        try:
            await h.wait_until(lambda: _counts(ctx, {"dead": 1}))
        finally:
            await stop_worker(stop, task)
            for s in worker.sinks.values():
                await s.close()
        (row,) = await ctx.store.list_outbox()
        assert row.attempts == 1
        assert row.last_error == "HTTP 400 (not retried)"


async def _counts(ctx: Any, want: dict[str, int]) -> bool:
    return dict(await statuses(ctx)) == want


async def test_delivery_revocation_between_queue_and_send_withholds(hub, receiver, h) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1", "P2"])
        assert len(await ctx.store.list_outbox(status="pending")) == 2
        revoked = h.consent_json("P1", revoked_on="2025-02-01")
        from consent.parsing import parse_consent_file

        await ctx.import_consents(
            parse_consent_file(
                json.dumps([revoked]),
                agencies=ctx.config.agencies,
                policy=ctx.config.consent_policy,
            )
        )
        worker, stop, task = await run_worker(ctx)
        try:
            await h.wait_until(lambda: _counts(ctx, {"delivered": 1, "withheld": 1}))
        finally:
            await stop_worker(stop, task)
            for s in worker.sinks.values():
                await s.close()
        (withheld,) = await ctx.store.list_outbox(status="withheld")
        assert "CONSENT_REVOKED" in withheld.last_error
        sent = [s.json["record"]["identifiers"][0]["value"] for s in receiver.requests]
        assert sent == ["P2"]
        entries = [
            orjson.loads(a.body)
            for batch in [b async for b in ctx.store.iter_audit()]
            for a in batch
        ]
        last_for_p1 = [e for e in entries if e["client"] == withheld.person_id][-1]
        assert last_for_p1["decision"] == "deny"
        assert "CONSENT_REVOKED" in last_for_p1["reasons"]
        assert records_out(ctx, "partner-clients", "withheld") == 1


async def test_delivery_a_feed_pointed_at_another_recipient_sends_nothing_queued_before(
    hub, receiver, h
) -> None:
    # Queued for "partner" (the gate decided for it); the operator then points the feed at
    # "clinic", whom the client's consent excludes. The entry must not go to the clinic.
    hub.write(h.webhook_feed("f", "partner", receiver.url + "/partner"))
    async with hub.open() as ctx:
        from consent.parsing import parse_consent_file

        await ctx.import_consents(
            parse_consent_file(
                json.dumps([h.consent_json("P1", exclude_agencies=["clinic"])]),
                agencies=ctx.config.agencies,
                policy=ctx.config.consent_policy,
            )
        )
        await ctx.engine.ingest([h.client("P1")])
        assert len(await ctx.store.list_outbox(status="pending")) == 1
    hub.write(h.webhook_feed("f", "clinic", receiver.url + "/clinic"))
    async with hub.open() as ctx:
        worker, stop, task = await run_worker(ctx)
        try:
            await h.wait_until(lambda: _counts(ctx, {"withheld": 1}))
        finally:
            await stop_worker(stop, task)
            for s in worker.sinks.values():
                await s.close()
        (withheld,) = await ctx.store.list_outbox(status="withheld")
        assert withheld.recipient == "partner"
        assert withheld.last_error == "FEED_RECIPIENT_CHANGED"
        assert receiver.requests == []


class SlowSink:
    """A sink that takes its time (a slow partner), recording when it finished."""

    name = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent: list[str] = []

    async def deliver(self, deliveries: list[Delivery]) -> list[DeliveryOutcome]:
        await asyncio.sleep(self.delay)
        self.sent.extend(d.idempotency_key for d in deliveries)
        return [DeliveryOutcome(ok=True) for _ in deliveries]

    async def close(self) -> None:
        return None


async def test_delivery_slow_partner_slows_only_its_own_feed(hub, receiver, h) -> None:
    feeds = h.webhook_feed("fast", "partner", receiver.url) + h.webhook_feed(
        "slow", "clinic", receiver.url, connector="slow", batch_size=5, options={"concurrency": 1}
    )
    hub.write(feeds)
    async with hub.open() as ctx:
        await h.add_clients(ctx, [f"P{i}" for i in range(20)])
        slow = SlowSink(0.5)
        sinks = {**collect_sinks(ctx), "slow": slow}
        loop = asyncio.get_running_loop()
        started = loop.time()
        _worker, stop, task = await run_worker(ctx, sinks)
        try:
            await h.wait_until(lambda: len(set(receiver.delivered_keys())) == 20, within=5)
            fast_done = loop.time() - started
            assert len(slow.sent) <= 5, "the slow feed is still at its first batch"
            await h.wait_until(lambda: len(slow.sent) == 20, within=10)
        finally:
            await stop_worker(stop, task)
            await sinks["webhook"].close()
        assert fast_done < 0.5


class TimeoutSink(SlowSink):
    """A sink that hangs."""

    name = "hang"


async def test_delivery_sink_timeout_is_retried(hub, h) -> None:
    hub.write(
        h.webhook_feed(
            "hang",
            "partner",
            "http://127.0.0.1:9/",
            connector="hang",
            options={"send_timeout_seconds": 0.2},
            max_attempts=2,
        )
    )
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1"])
        _worker, stop, task = await run_worker(ctx, {"hang": TimeoutSink(5)})
        try:
            await h.wait_until(lambda: _counts(ctx, {"dead": 1}), within=5)
        finally:
            await stop_worker(stop, task)
        (row,) = await ctx.store.list_outbox()
        assert row.attempts == 2
        assert row.last_error == "sink timed out after 0.2s"


async def test_delivery_a_hanging_partner_does_not_hold_the_others_back(hub, receiver, h) -> None:
    # The hanging feed's entries must not fill the worker's in-flight budget while they
    # wait for its one lane: the other feed goes on at its own pace.
    hub.write(
        h.webhook_feed(
            "hang",
            "clinic",
            "http://127.0.0.1:9/",
            connector="hang",
            batch_size=10,
            options={"concurrency": 1, "send_timeout_seconds": 5},
        )
        + h.webhook_feed("fast", "partner", receiver.url, batch_size=10),
        batch_size=10,
    )
    async with hub.open() as ctx:
        await h.add_clients(ctx, [f"P{i}" for i in range(60)])
        sinks = {**collect_sinks(ctx), "hang": TimeoutSink(30)}
        _worker, stop, task = await run_worker(ctx, sinks, max_in_flight=40, stop_grace_seconds=0.5)
        try:
            await h.wait_until(lambda: len(set(receiver.delivered_keys())) == 60, within=3)
        finally:
            await stop_worker(stop, task)
            await sinks["webhook"].close()


async def test_delivery_a_busy_feed_is_claimed_again_as_soon_as_a_lane_frees(hub, h) -> None:
    # Claims skip a feed whose lanes are all busy; the lane that frees must wake the
    # claiming, not leave the feed idle until the next poll (two seconds here).
    hub.write(
        h.webhook_feed(
            "busy",
            "partner",
            "http://127.0.0.1:9/",
            connector="slow",
            batch_size=5,
            options={"concurrency": 1},
        ),
        batch_size=5,
        poll_seconds=2.0,
    )
    async with hub.open() as ctx:
        await h.add_clients(ctx, [f"P{i}" for i in range(40)])
        sink = SlowSink(0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        _worker, stop, task = await run_worker(ctx, {"slow": sink}, max_in_flight=10)
        try:
            await h.wait_until(lambda: len(sink.sent) == 40, within=10)
        finally:
            await stop_worker(stop, task)
        assert loop.time() - started < 1.5, "eight batches of 50 ms, not a poll between them"


class CountingSink(SlowSink):
    """A slow sink that counts how often it saw each key."""

    name = "counting"


class FailingSink(SlowSink):
    """A slow sink whose partner answers 503 to everything."""

    name = "counting"

    async def deliver(self, deliveries: list[Delivery]) -> list[DeliveryOutcome]:
        await super().deliver(deliveries)
        return [DeliveryOutcome(ok=False, retry=True, error="HTTP 503") for _ in deliveries]


def slowish_feed(h: Any, **extra: Any) -> str:
    """One entry per batch, one lane, a send timeout half the one-second lease: entries
    waiting for the lane are given back unsent once their lease would run out."""
    return str(
        h.webhook_feed(
            "slowish",
            "partner",
            "http://127.0.0.1:9/",
            connector="counting",
            batch_size=1,
            options={"concurrency": 1, "send_timeout_seconds": 0.5},
            **extra,
        )
    )


async def test_delivery_rows_whose_lease_would_run_out_are_released_not_sent(
    hub, h, caplog
) -> None:
    hub.write(slowish_feed(h), lease_seconds=1.0)
    async with hub.open() as ctx:
        await h.add_clients(ctx, [f"P{i}" for i in range(4)])
        sink = CountingSink(0.2)
        _worker, stop, task = await run_worker(ctx, {"counting": sink})
        try:
            await h.wait_until(lambda: _counts(ctx, {"delivered": 4}), within=10)
        finally:
            await stop_worker(stop, task)
        rows = await ctx.store.list_outbox()
        assert sorted(Counter(sink.sent).values()) == [1, 1, 1, 1], "each sent once"
        assert "given back unsent" in caplog.text, "the last ones were given back once"
        assert [r.attempts for r in rows] == [1, 1, 1, 1], "only the sends count as attempts"


async def test_delivery_entries_given_back_unsent_keep_their_attempts(hub, h) -> None:
    # max_attempts = 2 means two sends before the dead letters, however often an entry
    # was given back unsent in between.
    hub.write(slowish_feed(h, max_attempts=2), lease_seconds=1.0)
    async with hub.open() as ctx:
        await h.add_clients(ctx, [f"P{i}" for i in range(4)])
        sink = FailingSink(0.2)
        _worker, stop, task = await run_worker(ctx, {"counting": sink})
        try:
            await h.wait_until(lambda: _counts(ctx, {"dead": 4}), within=20)
        finally:
            await stop_worker(stop, task)
        assert sorted(Counter(sink.sent).values()) == [2, 2, 2, 2]


async def test_delivery_missing_sink_retries_then_dead_letters(hub, h) -> None:
    hub.write(
        h.webhook_feed("nowhere", "partner", "http://127.0.0.1:9/", connector="fax", max_attempts=2)
    )
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1"])
        _worker, stop, task = await run_worker(ctx, {})
        try:
            await h.wait_until(lambda: _counts(ctx, {"dead": 1}), within=5)
        finally:
            await stop_worker(stop, task)
        (row,) = await ctx.store.list_outbox()
        assert (row.attempts, row.last_error) == (2, "no installed sink is named 'fax'")


async def test_delivery_entry_of_a_removed_feed_is_dead_lettered(hub, h) -> None:
    hub.write(h.webhook_feed("old-feed", "partner", "http://127.0.0.1:9/"))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1"])
        worker = DeliveryWorker(ctx, {}, "w")
        worker.feeds = {}  # the feed was removed from hub.toml since the entry was queued
        assert await worker.run_once() == 1
        (row,) = await ctx.store.list_outbox()
        assert (row.status, row.last_error) == ("dead", "feed 'old-feed' is not configured")


async def test_delivery_the_accounting_lists_what_was_sent_not_what_was_queued(
    hub, receiver, h
) -> None:
    import dataclasses
    from datetime import date

    from consent.parsing import parse_consent_file
    from hub.audit import disclosures

    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url))
    async with hub.open() as ctx:
        await ctx.import_consents(
            parse_consent_file(
                json.dumps([h.consent_json("P1"), h.consent_json("P2")]),
                agencies=ctx.config.agencies,
                policy=ctx.config.consent_policy,
            )
        )
        await ctx.engine.ingest([h.client("P1"), h.client("P2")])
        rows = {r.person_id: r for r in await ctx.store.list_outbox()}
        for person in rows:
            assert await disclosures(ctx.store, person) == [], "queued is not disclosed"
        [first] = [c for c in ctx.gate.all_consents() if c.id == "mpa-P1"]
        await ctx.import_consents([dataclasses.replace(first, revoked_on=date(2025, 2, 1))])
        worker = DeliveryWorker(ctx, {"webhook": collect_sinks(ctx)["webhook"]}, "w")
        try:
            await worker.run_once()
        finally:
            await worker.sinks["webhook"].close()
        status = {r.person_id: r.status for r in await ctx.store.list_outbox()}
        assert sorted(status.values()) == ["delivered", "withheld"]
        for person, state in status.items():
            listed = await disclosures(ctx.store, person)
            assert len(listed) == (1 if state == "delivered" else 0), state
            assert all(d["recipient"] == "partner" for d in listed)
