"""The batched send-time path: one re-check transaction per chunk (its decisions audited and
its withholdings settled together), settling many entries at once under the lease, the
batched store look-ups it relies on, and the webhook sink's bounded parallelism."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import orjson
import pytest

from consent.parsing import parse_consent_file
from hub.audit import verify_store
from hub.core.gate import AuditWriter
from hub.core.ports import Delivery, RecordHead
from hub.core.records import Client
from hub.core.rows import row_meta
from hub.core.serialize import record_from_payload
from hub.delivery import RECORD_GONE, DeliveryWorker, collect_sinks
from hub.sinks.webhook import WebhookSink
from hub.store.sql import SqlTransaction


async def revoke(ctx: Any, h: Any, value: str) -> None:
    """Revoke a client's consent (as an import of the revoked consent)."""
    text = json.dumps([h.consent_json(value, revoked_on="2025-02-01")])
    await ctx.import_consents(
        parse_consent_file(text, agencies=ctx.config.agencies, policy=ctx.config.consent_policy)
    )


async def audit_bodies(ctx: Any) -> list[dict[str, Any]]:
    """Every audit entry's body, in order."""
    return [orjson.loads(a.body) async for batch in ctx.store.iter_audit() for a in batch]


async def lose_record(ctx: Any, outbox_id: int) -> None:
    """Remove the record an outbox entry was queued for (as if it were purged)."""
    async with ctx.store.transaction() as tx:
        await tx._c.execute(
            "DELETE FROM records WHERE (kind, source, source_id) IN (SELECT record_kind, "
            "record_source, record_source_id FROM outbox WHERE id=?)",
            (outbox_id,),
        )


async def test_delivery_chunk_recheck_audits_each_decision_and_withholds(
    hub: Any, receiver: Any, h: Any
) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1", "P2", "P3", "P4"])
        queued = {r.record_source_id: r for r in await ctx.store.list_outbox(limit=10)}
        await revoke(ctx, h, "P2")
        await lose_record(ctx, queued["P3"].id)
        before = len(await audit_bodies(ctx))
        worker = DeliveryWorker(ctx, collect_sinks(ctx), "w")
        try:
            assert await worker.run_once() == 4
        finally:
            for s in worker.sinks.values():
                await s.close()
        rows = {r.id: r for r in await ctx.store.list_outbox(limit=10)}
        assert rows[queued["P1"].id].status == "delivered"
        assert rows[queued["P4"].id].status == "delivered"
        assert rows[queued["P2"].id].status == "withheld"
        assert "CONSENT_REVOKED" in rows[queued["P2"].id].last_error
        assert rows[queued["P3"].id].status == "withheld"
        assert rows[queued["P3"].id].last_error == RECORD_GONE
        # one decision per entry whose record exists, each audited (permit or deny)
        fresh = (await audit_bodies(ctx))[before:]
        by_person = {e["client"]: e["decision"] for e in fresh}
        assert len(fresh) == 3
        assert by_person[queued["P2"].person_id] == "deny"
        assert by_person[queued["P1"].person_id] in ("permit", "permit-redacted")
        assert queued["P3"].person_id not in by_person
        sent = sorted(s.json["record"]["identifiers"][0]["value"] for s in receiver.requests)
        assert sent == ["P1", "P4"]
        assert (await verify_store(ctx.store, ctx.keys)).ok


async def test_delivery_withholding_and_its_audit_entry_commit_together(
    hub: Any, receiver: Any, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", receiver.url))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1", "P2"])
        await revoke(ctx, h, "P2")
        before = len(await audit_bodies(ctx))

        original = SqlTransaction.settle_outbox
        calls = {"n": 0}

        async def broken_once(self: SqlTransaction, *args: Any, **kw: Any) -> set[int]:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("store failed while settling")
            return await original(self, *args, **kw)

        monkeypatch.setattr(SqlTransaction, "settle_outbox", broken_once)
        worker = DeliveryWorker(ctx, collect_sinks(ctx), "w")
        try:
            await worker.run_once()
        finally:
            for s in worker.sinks.values():
                await s.close()
        # the transaction that would have withheld P2 rolled back with its decisions
        assert len(await audit_bodies(ctx)) == before
        assert receiver.requests == []
        statuses = Counter(r.status for r in await ctx.store.list_outbox(limit=10))
        assert statuses == Counter({"retry": 2})


async def test_delivery_redisclose_many_answers_per_entry_in_order(hub: Any, h: Any) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", "http://127.0.0.1:9/hook"))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1", "P2", "P3"])
        items = sorted(await ctx.store.list_outbox(limit=10), key=lambda r: r.id)
        await revoke(ctx, h, "P2")
        await lose_record(ctx, items[2].id)
        items[2] = (await ctx.store.get_outbox(items[2].id)) or items[2]
        async with ctx.store.transaction() as tx:
            audit = AuditWriter(tx, batch=True)
            got = await ctx.engine.redisclose_many(tx, audit, items, "coordination", None)
            await audit.flush()
        first, second, third = got
        assert third is None
        assert first is not None and second is not None
        permit, meta = first
        assert permit.payload == orjson.loads(items[0].payload)
        assert meta.version == items[0].record_version
        async with ctx.store.transaction() as tx:
            stored = await tx.get_record("client", items[0].record_source, "P1")
        assert stored is not None
        assert meta == row_meta(stored, items[0].record_version)
        record = record_from_payload(meta, permit.payload)
        assert isinstance(record, Client)
        assert record.identifiers[0].value == "P1"
        deny, _meta = second
        assert deny.payload is None
        assert "CONSENT_REVOKED" in deny.decision.reasons
        assert deny.audit.seq == permit.audit.seq + 1


async def test_delivery_settling_many_needs_the_lease(hub: Any, h: Any) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", "http://127.0.0.1:9/hook"))
    async with hub.open() as ctx:
        await h.add_clients(ctx, ["P1", "P2", "P3"])
        claimed = await ctx.store.claim_outbox("owner", 10, 30.0)
        assert len(claimed) == 3
        a, b, c = (r.id for r in claimed)
        entries = [
            (a, "delivered", "", None),
            (b, "retry", "HTTP 503" + "x" * 600, "2999-01-01T00:00:00.000000+00:00"),
            (c, "dead", "HTTP 410 (not retried)", None),
        ]
        assert await ctx.store.finish_outbox_many(entries, worker="someone-else") == set()
        assert {r.status for r in await ctx.store.list_outbox(limit=10)} == {"leased"}
        assert await ctx.store.finish_outbox_many(entries, worker="owner") == {a, b, c}
        rows = {r.id: r for r in await ctx.store.list_outbox(limit=10)}
        assert rows[a].status == "delivered" and rows[a].delivered_at is not None
        assert rows[b].status == "retry" and rows[b].delivered_at is None
        assert rows[b].next_attempt_at.startswith("2999-01-01")
        assert len(rows[b].last_error) == 500
        assert (rows[c].status, rows[c].last_error) == ("dead", "HTTP 410 (not retried)")
        # settled entries are no longer leased: settling them again changes nothing
        assert await ctx.store.finish_outbox_many(entries, worker="owner") == set()
        assert await ctx.store.finish_outbox_many([]) == set()


async def _lookups_match(ctx: Any, h: Any) -> None:
    await h.add_clients(ctx, ["P1", "P2"])
    items = await ctx.store.list_outbox(limit=10)
    keys = [(i.record_kind, i.record_source, i.record_source_id) for i in items]
    async with ctx.store.transaction() as tx:
        heads = await tx.record_heads([*keys, ("client", "hmis:1", "missing")])
        assert set(heads) == set(keys)
        for key in keys:
            full = await tx.get_record(*key)
            assert full is not None and full.payload
            assert heads[key] == RecordHead(
                full.owner,
                full.source_system,
                full.received_at,
                full.raw_hash,
                full.deleted,
                full.sensitivity,
                full.restricted,
                full.flags,
            )
        persons = [i.person_id for i in items]
        facts = await tx.persons_facts([*persons, "no-such-person"])
        assert set(facts) == set(persons)
        for person in persons:
            assert facts[person] == await tx.person_facts(person)
            assert facts[person][0] == "1980-01-01"


async def test_delivery_batched_lookups_match_the_single_ones(hub: Any, h: Any) -> None:
    hub.write(h.webhook_feed("partner-clients", "partner", "http://127.0.0.1:9/hook"))
    async with hub.open() as ctx:
        await _lookups_match(ctx, h)


@pytest.mark.pg
async def test_delivery_batched_store_operations_on_postgresql(
    hub: Any, h: Any, pg_url: str
) -> None:
    hub.store_url = pg_url
    hub.write(h.webhook_feed("partner-clients", "partner", "http://127.0.0.1:9/hook"))
    async with hub.open() as ctx:
        await _lookups_match(ctx, h)
        claimed = await ctx.store.claim_outbox("owner", 10, 30.0)
        ids = {r.id for r in claimed}
        done = [(i, "delivered", "", None) for i in ids]
        assert await ctx.store.finish_outbox_many(done, worker="other") == set()
        assert await ctx.store.finish_outbox_many(done, worker="owner") == ids
        assert (await ctx.store.outbox_depth()) == {"delivered": len(ids)}


async def test_delivery_webhook_sink_bounds_requests_in_flight_and_keeps_order(
    receiver: Any,
) -> None:
    state = {"now": 0, "peak": 0}

    async def behaviour(seen: Any) -> tuple[int, dict[str, str]]:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.02)
        state["now"] -= 1
        return (503, {}) if seen.key.endswith("7") else (200, {})

    receiver.behaviour = behaviour
    options = {"url": receiver.url, "secret_envs": ["S"], "max_in_flight": 3}
    sink = WebhookSink(environ={"S": "x"})
    meta = _meta()
    deliveries = [
        Delivery(i, "feed-a", "partner", f"key-{i}", Client(meta=meta), {"sex": "Female"}, options)
        for i in range(20)
    ]
    try:
        outcomes = await sink.deliver(deliveries)
    finally:
        await sink.close()
    assert len(receiver.requests) == 20
    assert state["peak"] == 3
    assert [o.ok for o in outcomes] == [not str(i).endswith("7") for i in range(20)]
    assert all(o.retry and o.error == "HTTP 503" for o in outcomes if not o.ok)


def _meta() -> Any:
    from datetime import UTC, datetime

    from hub.core.records import Provenance, RecordMeta, SourceKey

    return RecordMeta(
        "client", SourceKey("hmis:1", "A"), "shelter", Provenance("t", datetime.now(UTC), ""), "1"
    )
