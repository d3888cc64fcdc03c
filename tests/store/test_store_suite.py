"""The one store test suite, run against SQLite and the real PostgreSQL."""

from __future__ import annotations

from datetime import date

import orjson

from hub.context import HubContext
from hub.core.ports import OutboxRow
from hub.core.rows import record_to_row, row_to_record
from hub.store import schema
from hub.synthetic import client, enrollment


async def test_migrations_bring_schema_to_latest(any_hub: HubContext) -> None:
    assert await any_hub.store.schema_version() == schema.LATEST_VERSION
    assert await any_hub.store.migrate() == []  # idempotent


async def test_upsert_is_idempotent_and_never_goes_back_a_version(any_hub: HubContext) -> None:
    v1 = client("1", version="2025-01-01T00:00:00")
    v2 = client("1", version="2025-02-01T00:00:00", family="Brooks")
    async with any_hub.store.transaction() as tx:
        assert await tx.upsert_records([record_to_row(v1)]) == ["inserted"]
        assert await tx.upsert_records([record_to_row(v1)]) == ["unchanged"]
        assert await tx.upsert_records([record_to_row(v2)]) == ["updated"]
        assert await tx.upsert_records([record_to_row(v1)]) == ["stale"]
        row = await tx.get_record("client", "hmis:demo", "1")
    assert row is not None
    back = row_to_record(row)
    assert back == v2


async def test_same_id_in_two_sources_are_two_records(any_hub: HubContext) -> None:
    a = client("7", source="hmis:A")
    b = client("7", source="hmis:B")
    async with any_hub.store.transaction() as tx:
        assert await tx.upsert_records([record_to_row(a), record_to_row(b)]) == [
            "inserted",
            "inserted",
        ]
    counts = await any_hub.store.count_records("client")
    assert counts == {"client": 2}


async def test_transaction_rolls_back_on_error(any_hub: HubContext) -> None:
    try:
        async with any_hub.store.transaction() as tx:
            await tx.upsert_records([record_to_row(client("9"))])
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    async with any_hub.store.transaction() as tx:
        assert await tx.get_record("client", "hmis:demo", "9") is None


async def test_full_refresh_marks_only_missing_records_of_that_source(any_hub: HubContext) -> None:
    rows = [record_to_row(client(str(i))) for i in range(5)]
    other = record_to_row(client("0", source="hmis:other"))
    async with any_hub.store.transaction() as tx:
        await tx.upsert_records([*rows, other])
        gone = await tx.mark_deleted_except("client", "hmis:demo", keep=["0", "1"])
    assert gone == 3
    assert await any_hub.store.count_records("client") == {"client": 3}


async def test_iter_records_pages_in_key_order(any_hub: HubContext) -> None:
    async with any_hub.store.transaction() as tx:
        await tx.upsert_records([record_to_row(client(f"{i:03d}")) for i in range(25)])
    seen = [
        r.source_id async for batch in any_hub.store.iter_records("client", batch=10) for r in batch
    ]
    assert seen == [f"{i:03d}" for i in range(25)]


async def test_outbox_claim_keeps_order_per_person_and_skips_claimed(any_hub: HubContext) -> None:
    def row(i: int, person: str) -> OutboxRow:
        return OutboxRow(
            0,
            "f",
            "hospital-x",
            person,
            "client",
            "s",
            str(i),
            "v",
            f"k{i}",
            "pending",
            0,
            "2000-01-01T00:00:00",
            "2000-01-01T00:00:00",
            payload=b"{}",
        )

    async with any_hub.store.transaction() as tx:
        ids = await tx.enqueue([row(1, "p1"), row(2, "p1"), row(3, "p2")])
        assert await tx.enqueue([row(1, "p1")]) == []  # same idempotency key: ignored
    assert len(ids) == 3
    first = await any_hub.store.claim_outbox("w1", 10, 30)
    # p1's second entry waits for its first; p2's goes at once.
    assert [o.record_source_id for o in first] == ["1", "3"]
    assert await any_hub.store.claim_outbox("w2", 10, 30) == []
    await any_hub.store.finish_outbox(first[0].id, "dead", error="AR")
    second = await any_hub.store.claim_outbox("w2", 10, 30)
    assert [o.record_source_id for o in second] == ["2"]  # a dead letter does not block
    assert await any_hub.store.requeue_outbox(first[0].id)
    depth = await any_hub.store.outbox_depth()
    assert depth.get("pending") == 1


async def test_inbound_message_memory(any_hub: HubContext) -> None:
    async with any_hub.store.transaction() as tx:
        assert await tx.seen_message("APP|FAC", "MSG1") is None
        await tx.remember_message("APP|FAC", "MSG1", "h1", b"ACK1")
        assert await tx.seen_message("APP|FAC", "MSG1") == ("h1", b"ACK1")
        await tx.remember_message("APP|FAC", "MSG1", "h2", b"ACK2")
        assert await tx.seen_message("APP|FAC", "MSG1") == ("h2", b"ACK2")


async def test_engine_links_records_of_one_person_across_sources(any_hub: HubContext) -> None:
    shelter = client(
        "11", given="Cara", family="Chen", birth_date=date(1990, 3, 3), ssn="123-45-6780"
    )
    hospital = client(
        "MRN-5",
        given="Cara",
        family="Chen",
        birth_date=date(1990, 3, 3),
        owner="hospital-x",
        source="hl7:MERCY",
    )
    r1 = await any_hub.engine.ingest([shelter, enrollment("E1", "11")])
    r2 = await any_hub.engine.ingest([hospital])
    assert r1.persons["hmis:demo/11"] == r2.persons["hl7:MERCY/MRN-5"]
    person = r1.persons["hmis:demo/11"]
    async with any_hub.store.transaction() as tx:
        kinds = sorted(r.kind for r in await tx.records_of_person(person))
        assert kinds == ["client", "client", "enrollment"]
        assert await tx.list_reviews() == []


async def test_weak_match_goes_to_review_not_merged(any_hub: HubContext) -> None:
    a = client("21", given="Dan", family="Diaz", birth_date=date(1970, 1, 1))
    b = client(
        "X9", given="Dan", family="Diaz", birth_date=None, source="hl7:MERCY", owner="hospital-x"
    )
    ra = await any_hub.engine.ingest([a])
    rb = await any_hub.engine.ingest([b])
    assert ra.persons["hmis:demo/21"] != rb.persons["hl7:MERCY/X9"]
    assert rb.reviews == 1
    async with any_hub.store.transaction() as tx:
        reviews = await tx.list_reviews()
    assert reviews[0].record == "client/hl7:MERCY/X9"
    assert ra.persons["hmis:demo/21"] in reviews[0].candidates


async def test_resent_message_is_not_stored_twice(any_hub: HubContext) -> None:
    from hub.core.engine import InboundMessage

    msg = InboundMessage("APP|FAC", "C1", "hash-1")
    first = await any_hub.engine.ingest([client("31")], message=msg, response=b"AA")
    again = await any_hub.engine.ingest([client("31")], message=msg, response=b"other")
    assert not first.duplicate and again.duplicate
    assert again.response == b"AA"


async def test_record_payload_survives_storage(any_hub: HubContext) -> None:
    rec = client("41", ssn="123-45-6789")
    await any_hub.engine.ingest([rec])
    async with any_hub.store.transaction() as tx:
        row = await tx.get_record("client", "hmis:demo", "41")
    assert row is not None
    assert row_to_record(row) == rec
    assert "ssn" in orjson.loads(row.payload)
