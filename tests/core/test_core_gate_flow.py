"""The consent gate on the data path: enqueue, delivery re-check, reads, audit in the same
transaction as the outbox entry."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest

from consent.parsing import parse_consent_file
from hub.audit import entry_from_row, verify_store
from hub.context import HubContext
from hub.synthetic import client, enrollment, health_dv

FEEDS = """
[[feeds]]
name = "to-hospital"
recipient = "hospital-x"
kinds = ["client", "enrollment"]
purpose = "treatment"
categories = ["identity", "housing"]
connector = "webhook"
options = {url = "http://127.0.0.1:9/none"}
"""


def mpa(cid: str, pid: str, **extra: object) -> str:
    body = {
        "id": cid,
        "client": {"system": "hmis:demo", "value": pid},
        "signed_on": "2024-01-01",
        "networks": ["hmis", "cie"],
        "purposes": ["coordination", "treatment"],
        "recorded_by": "shelter-a",
    }
    body.update(extra)
    return orjson.dumps(body).decode()


async def consents(ctx: HubContext, *lines: str) -> None:
    cfg = ctx.config
    await ctx.import_consents(
        parse_consent_file("\n".join(lines), agencies=cfg.agencies, policy=cfg.consent_policy)
    )


async def audit_entries(ctx: HubContext) -> list:
    return [entry_from_row(r) async for b in ctx.store.iter_audit() for r in b]


async def test_permitted_records_are_queued_with_their_audit_entry(hub_factory) -> None:
    async with hub_factory(FEEDS) as ctx:
        await consents(ctx, mpa("m1", "1"))
        result = await ctx.engine.ingest([client("1"), enrollment("E1", "1")])
        assert result.enqueued == 2
        queued = await ctx.store.list_outbox()
        entries = {e.seq: e for e in await audit_entries(ctx)}
        for item in queued:
            entry = entries[item.audit_seq]
            assert entry.decision == "permit"
            assert entry.recipient == "hospital-x"
            payload = orjson.loads(item.payload)
            # minimum necessary: the feed asked identity + housing, nothing else leaves
            if item.record_kind == "client":
                assert "race" not in payload and "sex" not in payload
                assert payload["names"][0]["family"] == "Alvarez"


async def test_no_consent_means_nothing_queued_and_a_deny_audited(hub_factory) -> None:
    async with hub_factory(FEEDS) as ctx:
        result = await ctx.engine.ingest([client("2")])
        assert result.enqueued == 0 and result.withheld == 1
        assert await ctx.store.list_outbox() == []
        [entry] = await audit_entries(ctx)
        assert entry.decision == "deny" and entry.reasons == ("NO_CONSENT",)
        assert entry.payload_hash is None


async def test_excluded_agency_and_vsp_records_never_queued(hub_factory) -> None:
    async with hub_factory(FEEDS) as ctx:
        await consents(
            ctx,
            mpa("m3", "3", exclude_agencies=["hospital-x"]),
            mpa("m4", "4"),
        )
        await ctx.engine.ingest([client("3"), client("4", owner="safe-haven")])
        assert await ctx.store.list_outbox() == []
        reasons = sorted(r for e in await audit_entries(ctx) for r in e.reasons)
        assert reasons == ["AGENCY_EXCLUDED", "VSP_RECORD"]


async def test_restricted_record_never_leaves_even_from_a_non_vsp_owner(hub_factory) -> None:
    async with hub_factory(FEEDS) as ctx:
        await consents(ctx, mpa("m5", "5"))
        await ctx.engine.ingest([client("5", restricted=True)])
        assert await ctx.store.list_outbox() == []


async def test_dv_fleeing_client_location_is_withheld(hub_factory) -> None:
    async with hub_factory(FEEDS) as ctx:
        await consents(ctx, mpa("m6", "6"))
        await ctx.engine.ingest([client("6"), health_dv("D6", "6", fleeing=True)])
        await ctx.engine.ingest([client("6", version="2025-03-01T00:00:00")])
        items = [i for i in await ctx.store.list_outbox() if i.record_kind == "client"]
        latest = max(items, key=lambda i: i.record_version)
        payload = orjson.loads(latest.payload)
        assert "addresses" not in payload and "names" in payload


async def test_revocation_between_queue_and_delivery_withholds(hub_factory) -> None:
    async with hub_factory(FEEDS) as ctx:
        await consents(ctx, mpa("m7", "7"))
        await ctx.engine.ingest([client("7")])
        [item] = await ctx.store.list_outbox()
        c = ctx.gate.all_consents()[0]
        await ctx.import_consents([dataclasses.replace(c, revoked_on=date.today())])
        async with ctx.store.transaction() as tx:
            again = await ctx.engine.redisclose(tx, item, "treatment", frozenset({"identity"}))
        assert again.payload is None
        assert again.decision.reasons == ("CONSENT_REVOKED",)
        last = (await audit_entries(ctx))[-1]
        assert last.reasons == ("CONSENT_REVOKED",) and last.recipient == "hospital-x"


async def test_reads_by_another_agency_pass_the_gate(hub_factory) -> None:
    async with hub_factory() as ctx:
        await consents(ctx, mpa("m8", "8"))
        result = await ctx.engine.ingest([client("8"), client("9")])
        p8, p9 = result.persons["hmis:demo/8"], result.persons["hmis:demo/9"]
        seen = await ctx.engine.disclose_person(p8, recipient="hospital-x", purpose="treatment")
        assert [r.meta.kind for r, _ in seen] == ["client"]
        assert "ssn" not in seen[0][1] or seen[0][1]["ssn"]  # released fields only
        assert (
            await ctx.engine.disclose_person(p9, recipient="hospital-x", purpose="treatment") == []
        )
        own = await ctx.engine.disclose_person(p9, recipient="shelter-a", purpose="operations")
        assert len(own) == 1
        entries = await audit_entries(ctx)
        assert [e.decision for e in entries] == ["permit", "deny", "permit"]
        assert entries[2].reasons == ("SAME_AGENCY",)


async def test_audit_chain_verifies_and_names_the_first_tampered_entry(any_hub: HubContext) -> None:
    ctx = any_hub
    await consents(ctx, mpa("m10", "10"))
    r = await ctx.engine.ingest([client("10")])
    person = r.persons["hmis:demo/10"]
    for _ in range(4):
        await ctx.engine.disclose_person(person, recipient="hospital-x", purpose="treatment")
    assert (await verify_store(ctx.store, ctx.keys)).ok
    async with ctx.store.transaction() as tx:
        row = await tx._c.fetchrow("SELECT body FROM audit_log WHERE seq=3")
        body = orjson.loads(bytes(row[0]))
        body["recipient"] = "cie-211"
        await tx._c.execute("UPDATE audit_log SET body=? WHERE seq=3", (orjson.dumps(body),))
    report = await verify_store(ctx.store, ctx.keys)
    assert report.problem is not None and report.problem.seq == 3
    assert report.problem.kind == "altered"


async def test_at_time_of_delivery_expiry(hub_factory) -> None:
    async with hub_factory(FEEDS) as ctx:
        await consents(
            ctx, mpa("m11", "11", expires_on=(date.today() + timedelta(days=1)).isoformat())
        )
        await ctx.engine.ingest([client("11")])
        [item] = await ctx.store.list_outbox()
        ctx.engine.clock = lambda: datetime.now(UTC) + timedelta(days=2)
        async with ctx.store.transaction() as tx:
            again = await ctx.engine.redisclose(tx, item, "treatment", None)
        assert again.decision.reasons == ("CONSENT_EXPIRED",)


async def test_location_columns_of_source_rows_are_withheld_for_a_fleeing_client(
    hub_factory,
) -> None:
    from hub.core.records import SourceKey, SourceRow
    from hub.synthetic import meta

    feed = FEEDS.replace(
        'kinds = ["client", "enrollment"]', 'kinds = ["hmis.CurrentLivingSituation"]'
    )
    async with hub_factory(feed) as ctx:
        await consents(ctx, mpa("m12", "12"))
        await ctx.engine.ingest([client("12"), health_dv("D12", "12", fleeing=True)])
        row = SourceRow(
            meta=meta("hmis.CurrentLivingSituation", "hmis:demo", "CLS12", "shelter-a"),
            fields={"CurrentLivingSituation": "116", "LocationDetails": "behind the library"},
            categories={"CurrentLivingSituation": "housing", "LocationDetails": "housing"},
            client=SourceKey("hmis:demo", "12"),
            locations=frozenset({"LocationDetails"}),
        )
        await ctx.engine.ingest([row])
        [item] = await ctx.store.list_outbox()
        payload = orjson.loads(item.payload)
        assert payload["fields"] == {"CurrentLivingSituation": "116"}


async def test_audit_verify_streams_batch_by_batch(hub_factory) -> None:
    """The verdict is the same when the log is read two entries at a time."""

    class SmallBatches:
        def __init__(self, store) -> None:
            self._store = store

        def __getattr__(self, name: str):
            return getattr(self._store, name)

        def iter_audit(self, batch: int = 2):
            return self._store.iter_audit(batch=2)

    async with hub_factory() as ctx:
        await consents(ctx, mpa("m20", "20"))
        r = await ctx.engine.ingest([client("20")])
        for _ in range(6):
            await ctx.engine.disclose_person(
                r.persons["hmis:demo/20"], recipient="hospital-x", purpose="treatment"
            )
        store = SmallBatches(ctx.store)
        report = await verify_store(store, ctx.keys)
        assert report.ok and report.entries == 6 and report.head is not None
        async with ctx.store.transaction() as tx:
            await tx._c.execute("DELETE FROM audit_log WHERE seq=4")
        report = await verify_store(store, ctx.keys)
        assert report.problem is not None and report.problem.seq == 4


async def test_a_batched_audit_writer_chains_entries_and_writes_them_at_flush(
    any_hub: HubContext,
) -> None:
    from consent.audit import make_entry
    from consent.decision import Decision
    from hub.core.gate import AuditWriter

    ctx = any_hub
    decision = Decision("permit", frozenset({"identity"}), frozenset(), ("OK",), "m1")
    at = datetime(2026, 11, 24, 12, tzinfo=UTC)

    def build(prev: tuple[int, str] | None):
        return make_entry(
            prev,
            at=at,
            client="person-1",
            owner="shelter-a",
            recipient="hospital-x",
            purpose="treatment",
            decision=decision,
            payload_hash=None,
            record="client/hmis:demo/1",
        )

    async with ctx.store.transaction() as tx:
        audit = AuditWriter(tx, batch=True)
        with pytest.raises(RuntimeError, match=r"before load\(\)"):
            audit.add("person-1", build)
        await audit.load()
        first = audit.add("person-1", build)
        second = audit.add("person-1", build)
        assert await tx.audit_head() is None  # batched: nothing written before flush
        await audit.flush()
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_hash == first.hash
    stored = await audit_entries(ctx)
    assert [(e.seq, e.hash) for e in stored] == [(1, first.hash), (2, second.hash)]
    assert (await verify_store(ctx.store, ctx.keys)).ok
