"""The one store test suite, run against SQLite and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.context import HubContext
from hub.core.ports import OutboxRow, RecordRow
from hub.core.records import Client
from hub.core.rows import record_to_row, row_to_record
from hub.store import schema
from hub.store.base import StoreError
from hub.synthetic import client, enrollment
from tests.conftest import require_pg


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
    # Everything survives; the hub's received-at is the time it stored this version.
    stored_at = datetime.fromisoformat(row.received_at)
    assert stored_at >= rec.meta.provenance.received_at
    provenance = dataclasses.replace(rec.meta.provenance, received_at=stored_at)
    assert row_to_record(row) == dataclasses.replace(
        rec, meta=dataclasses.replace(rec.meta, provenance=provenance)
    )
    assert "ssn" in orjson.loads(row.payload)


# ---- large batches (PostgreSQL writes them through COPY; the results are the same) ----------

BULK = 150  # well above hub.store.pg_bulk.COPY_THRESHOLD
V1, V2, V3 = "2025-01-01T00:00:00", "2025-02-01T00:00:00", "2025-03-01T00:00:00"


def _rows(ids: range | list[int], version: str = V1, family: str = "Alvarez") -> list[RecordRow]:
    return [
        record_to_row(client(str(i), version=version, family=family, ssn=f"123-45-{i:04d}"))
        for i in ids
    ]


async def _stored(hub: HubContext, ids: range | list[int]) -> dict[str, tuple[str, str, bool]]:
    """(version, family name, deleted) of each stored client."""
    out: dict[str, tuple[str, str, bool]] = {}
    async with hub.store.transaction() as tx:
        for i in ids:
            row = await tx.get_record("client", "hmis:demo", str(i))
            assert row is not None, i
            rec = row_to_record(row)
            assert isinstance(rec, Client)
            out[str(i)] = (row.version, rec.names[0].family or "", row.deleted)
    return out


async def test_bulk_upsert_reimport_and_versions(any_hub: HubContext) -> None:
    first = _rows(range(BULK))
    async with any_hub.store.transaction() as tx:
        assert await tx.upsert_records(first) == ["inserted"] * BULK
    async with any_hub.store.transaction() as tx:
        assert await tx.upsert_records(_rows(range(BULK))) == ["unchanged"] * BULK
    # Even ids come newer (another name), odd ids older: only the newer ones replace.
    mixed = [
        *_rows(range(0, BULK, 2), version=V2, family="Brooks"),
        *_rows(range(1, BULK, 2), version="2024-12-01T00:00:00", family="Stale"),
    ]
    async with any_hub.store.transaction() as tx:
        outcomes = await tx.upsert_records(mixed)
    assert outcomes == ["updated"] * (BULK // 2) + ["stale"] * (BULK // 2)
    stored = await _stored(any_hub, range(BULK))
    assert all(stored[str(i)] == (V2, "Brooks", False) for i in range(0, BULK, 2))
    assert all(stored[str(i)] == (V1, "Alvarez", False) for i in range(1, BULK, 2))
    assert await any_hub.store.count_records("client") == {"client": BULK}
    async with any_hub.store.transaction() as tx:
        states = await tx.stored_states(mixed)
    assert len(states) == BULK
    assert states[("client", "hmis:demo", "2")].version == V2
    assert states[("client", "hmis:demo", "3")].version == V1


async def test_bulk_write_keeps_protected_fields_encrypted(any_hub: HubContext) -> None:
    rows = _rows(range(BULK))
    async with any_hub.store.transaction() as tx:
        await tx.write_records(rows)
    async with any_hub.store._reader() as c:
        raw = await c.fetch(
            "SELECT source_id, payload FROM records WHERE kind='client' ORDER BY source_id"
        )
    assert len(raw) == BULK
    for sid, payload in raw:
        assert f"123-45-{int(sid):04d}".encode() not in bytes(payload)
        assert b"enc1:" in bytes(payload)
    async with any_hub.store.transaction() as tx:
        back = await tx.get_record("client", "hmis:demo", "7")
    assert back is not None and back.payload == rows[7].payload


async def test_bulk_write_never_replaces_a_newer_version(any_hub: HubContext) -> None:
    # write_records itself (no classification first), as a concurrent writer would race.
    async with any_hub.store.transaction() as tx:
        await tx.write_records(_rows(range(100), version=V2, family="Kept"))
    async with any_hub.store.transaction() as tx:
        await tx.write_records(
            [
                *_rows(range(0, 40), version=V1, family="Older"),
                *_rows(range(40, 70), version=V2, family="Same"),
                *_rows(range(70, 100), version=V3, family="Newer"),
                *_rows(range(100, 130), version=V1, family="New"),
            ]
        )
    stored = await _stored(any_hub, range(130))
    assert all(stored[str(i)] == (V2, "Kept", False) for i in range(0, 40))
    assert all(stored[str(i)] == (V2, "Same", False) for i in range(40, 70))
    assert all(stored[str(i)] == (V3, "Newer", False) for i in range(70, 100))
    assert all(stored[str(i)] == (V1, "New", False) for i in range(100, 130))


async def test_bulk_write_with_a_record_twice_keeps_the_last_newest(any_hub: HubContext) -> None:
    rows = [
        *_rows([1000], version=V2, family="A"),
        *_rows([1001], version=V1, family="P"),
        *_rows(range(100)),
        *_rows([1000], version=V1, family="B"),
        *_rows([1001], version=V3, family="Q"),
        *_rows([1000], version=V2, family="C"),
        *_rows([1001], version=V2, family="R"),
    ]
    async with any_hub.store.transaction() as tx:
        await tx.write_records(rows)
    stored = await _stored(any_hub, [1000, 1001])
    assert stored == {"1000": (V2, "C", False), "1001": (V3, "Q", False)}


async def test_bulk_deleted_flags(any_hub: HubContext) -> None:
    async with any_hub.store.transaction() as tx:
        await tx.upsert_records(_rows(range(BULK)))
    gone = [
        dataclasses.replace(r, version=V2, deleted=i % 3 == 0)
        for i, r in enumerate(_rows(range(BULK)))
    ]
    async with any_hub.store.transaction() as tx:
        assert await tx.upsert_records(gone) == ["updated"] * BULK
    assert await any_hub.store.count_records("client") == {"client": BULK - BULK // 3}
    async with any_hub.store.transaction() as tx:
        assert await tx.upsert_records(gone) == ["unchanged"] * BULK
        states = await tx.stored_states(gone)
    assert sum(s.deleted for s in states.values()) == BULK // 3
    back = [dataclasses.replace(r, version=V3, deleted=False) for r in gone]
    async with any_hub.store.transaction() as tx:
        await tx.upsert_records(back)
    assert await any_hub.store.count_records("client") == {"client": BULK}


async def test_bulk_person_links_and_keys(any_hub: HubContext) -> None:
    ids = [str(i) for i in range(BULK)]
    persons = [f"p{i:04d}" for i in range(BULK)]
    async with any_hub.store.transaction() as tx:
        await tx.write_records(_rows(range(BULK)))
        await tx.insert_persons(persons)
        await tx.link_records(
            [
                ("client", "hmis:demo", sid, p, [f"k{sid}a", f"k{sid}b", "common", f"k{sid}a"])
                for sid, p in zip(ids, persons, strict=True)
            ]
        )
        await tx.set_birth_dates([(p, "1990-01-01") for p in persons])
    async with any_hub.store.transaction() as tx:
        assert await tx.persons_of_clients("hmis:demo", [*ids, "nobody"]) == dict(
            zip(ids, persons, strict=True)
        )
        found = await tx.persons_with_keys(["k5a", "common"])
        assert found["k5a"] == {"p0005"} and found["common"] == set(persons)
        assert await tx.person_keys("p0005") == {"k5a", "k5b", "common"}
        assert [r.source_id for r in await tx.records_of_person("p0005")] == ["5"]
        assert await tx.person_facts("p0149") == ("1990-01-01", False)
        few = await tx.persons_with_keys(["k7a"], capped=["common"])
        assert few == {"k7a": {"p0007"}, "common": {f"p{i:04d}" for i in range(8)}}
        few = await tx.persons_with_keys(["common", "k9b", "none"], limit_per_key=3)
        assert few == {"k9b": {"p0009"}, "common": {"p0000", "p0001", "p0002"}}
    # Re-linking adds keys; a record linked twice in one batch ends with the last person,
    # and a key row already held keeps its person.
    relinks: list[tuple[str, str, str, str, Sequence[str]]] = [
        ("client", "hmis:demo", sid, p, [f"k{sid}c"]) for sid, p in zip(ids, persons, strict=True)
    ]
    relinks += [("client", "hmis:demo", "5", "p0006", ["k5a", "k5d"])]
    async with any_hub.store.transaction() as tx:
        await tx.link_records(relinks)
    async with any_hub.store.transaction() as tx:
        assert (await tx.persons_of_clients("hmis:demo", ["4", "5"])) == {
            "4": "p0004",
            "5": "p0006",
        }
        assert await tx.person_keys("p0004") == {"k4a", "k4b", "k4c", "common"}
        assert await tx.person_keys("p0006") == {"k6a", "k6b", "k6c", "k5d", "common"}
        assert (await tx.persons_with_keys(["k5a"]))["k5a"] == {"p0005"}


async def test_bulk_insert_persons_refuses_an_existing_id(any_hub: HubContext) -> None:
    persons = [f"q{i:04d}" for i in range(BULK)]
    async with any_hub.store.transaction() as tx:
        await tx.insert_persons(persons)
    try:
        async with any_hub.store.transaction() as tx:
            await tx.insert_persons([f"r{i:04d}" for i in range(BULK)] + ["q0003"])
    except Exception as exc:  # sqlite3.IntegrityError / asyncpg.UniqueViolationError
        assert "unique" in str(exc).lower() or "duplicate" in str(exc).lower()
    else:
        raise AssertionError("a person id was inserted twice")
    async with any_hub.store.transaction() as tx:
        await tx.set_birth_dates([("r0001", "1990-01-01"), ("q0001", "1991-01-01")])
        assert await tx.person_facts("r0001") == (None, False)  # rolled back: no such person
        assert await tx.person_facts("q0001") == ("1991-01-01", False)


async def test_bulk_writes_twice_in_one_transaction_and_after_a_rollback(
    any_hub: HubContext,
) -> None:
    try:
        async with any_hub.store.transaction() as tx:
            await tx.write_records(_rows(range(500, 500 + BULK)))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    async with any_hub.store.transaction() as tx:
        await tx.write_records(_rows(range(BULK)))
        await tx.write_records(_rows(range(BULK, 2 * BULK)))
        await tx.link_records([("client", "hmis:demo", str(i), "pa", ["ka"]) for i in range(BULK)])
        await tx.link_records(
            [("client", "hmis:demo", str(i), "pb", ["kb"]) for i in range(BULK, 2 * BULK)]
        )
    assert await any_hub.store.count_records("client") == {"client": 2 * BULK}
    async with any_hub.store.transaction() as tx:
        assert await tx.get_record("client", "hmis:demo", "500") is None
        linked = await tx.persons_of_clients("hmis:demo", [str(i) for i in range(2 * BULK)])
        assert linked == {str(i): "pa" if i < BULK else "pb" for i in range(2 * BULK)}
        assert len(await tx.persons_with_keys(["ka", "kb"], limit_per_key=1000)) == 2


async def test_bulk_write_after_a_rolled_back_savepoint(any_hub: HubContext) -> None:
    async with any_hub.store.transaction() as tx:
        try:
            async with tx.savepoint():
                await tx.write_records(_rows(range(500, 500 + BULK)))
                await tx.link_records(
                    [("client", "hmis:demo", str(i), "pz", ["kz"]) for i in range(500, 600)]
                )
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        await tx.write_records(_rows(range(BULK)))
        await tx.link_records([("client", "hmis:demo", str(i), "pa", ["ka"]) for i in range(BULK)])
    assert await any_hub.store.count_records("client") == {"client": BULK}
    async with any_hub.store.transaction() as tx:
        assert await tx.get_record("client", "hmis:demo", "500") is None
        assert await tx.persons_with_keys(["ka", "kz"]) == {"ka": {"pa"}}


async def test_engine_bulk_ingest_links_and_reimports_unchanged(any_hub: HubContext) -> None:
    records = [
        *(client(str(i), given=f"G{i}", family=f"F{i}") for i in range(BULK)),
        *(enrollment(f"E{i}", str(i)) for i in range(BULK)),
    ]
    first = await any_hub.engine.ingest(records)
    assert first.outcomes == ["inserted"] * (2 * BULK)
    people = {first.persons[f"hmis:demo/{i}"] for i in range(BULK)}
    assert len(people) == BULK
    again = await any_hub.engine.ingest(records)
    assert again.outcomes == ["unchanged"] * (2 * BULK)
    async with any_hub.store.transaction() as tx:
        held = await tx.records_of_person(first.persons["hmis:demo/9"])
    assert sorted((r.kind, r.source_id) for r in held) == [("client", "9"), ("enrollment", "E9")]


async def store_at_schema(path: Path, version: int) -> Any:
    """An SQLite store migrated up to ``version`` only, as an earlier release left it."""
    from hub.store.sqlite import SqliteStore

    store = SqliteStore(path)
    await store.open()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:version])
        assert await store.migrate() == list(range(1, version + 1))
    return store


def insert_entries(store: Any, rows: Sequence[tuple[Any, ...]], *extra: str) -> None:
    """Outbox entries written as an earlier schema stores them, bypassing today's code:
    each row is (person, record id, status, *values of the ``extra`` columns)."""
    columns = ", ".join(("person_id", "record_source_id", "status", *extra))
    marks = ", ".join(f"?{n}" for n in range(1, 4 + len(extra)))
    store._raw().executemany(
        f"INSERT INTO outbox (feed, recipient, record_kind, record_source, record_version, "
        f"idempotency_key, next_attempt_at, created_at, payload, {columns}) VALUES ('f', 'r', "
        f"'client', 's', 'v', 'k' || ?2, '2026-01-01', '2026-01-01', x'00', {marks})",
        rows,
    )


FIRST_RECORD_COLUMNS = [
    "kind",
    "source",
    "source_id",
    "owner",
    "version",
    "payload",
    "payload_hash",
    "source_system",
    "received_at",
    "deleted",
    "sensitivity",
    "restricted",
    "client_source_id",
    "person_id",
    "client_source",
    "raw_hash",
    "flags",
]
"""The columns of ``records`` in schema 1 (today's code writes more: ``deleted_at``)."""


def insert_record_as_first_schema(store: Any, row: RecordRow) -> None:
    """A record written as schema 1 stores it (its columns only), bypassing today's code."""
    values = [getattr(row, c) for c in FIRST_RECORD_COLUMNS]
    store._raw().execute(
        f"INSERT INTO records ({', '.join(FIRST_RECORD_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(values))})",
        [int(v) if isinstance(v, bool) else v for v in values],
    )


async def test_a_store_at_an_older_schema_is_migrated_with_its_data(tmp_path: Path) -> None:
    # The store as the first release left it: migration 1 only.
    store = await store_at_schema(tmp_path / "old.db", 1)
    insert_record_as_first_schema(store, record_to_row(client("1")))
    with pytest.raises(StoreError, match="run 'hub migrate'"):
        await store.check_schema()
    assert await store.migrate() == [version for version, _, _ in schema.MIGRATIONS[1:]]
    await store.check_schema()
    async with store.transaction() as tx:
        row = await tx.get_record("client", "hmis:demo", "1")
    assert row is not None and row_to_record(row) == client("1")
    indexes = {r[0] for r in store._raw().execute("SELECT name FROM sqlite_master")}
    assert "records_received" not in indexes and "records_person" in indexes
    assert {"outbox_feed_heads", "outbox_open_order"} <= indexes
    assert not {"outbox_order", "outbox_open", "outbox_heads"} & indexes
    await store.close()


def outbox_entry(i: int, person: str, status: str = "pending", due: str = "") -> OutboxRow:
    """An outbox entry for ``person`` (recipient ``r``), due at ``due`` (default: long ago)."""
    due = due or "2026-01-01T00:00:00.000000+00:00"
    return OutboxRow(0, "f", "r", person, "client", "s", str(i), "v", f"k{i}", status, 0, due, due)


async def test_a_claim_walks_only_due_heads_without_sorting_them(tmp_path: Path) -> None:
    """A claim reads only the due first open entry of each recipient and person, in due
    order, and stops at its limit: no sort of every due entry (which made catching up on a
    large backlog quadratic), and nothing held back behind an earlier entry is walked."""
    from hub.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "claims.db")
    await store.open()
    await store.migrate()
    now = "2026-01-01T00:00:00.000000+00:00"
    plan = " ".join(
        str(step[3])
        for step in store._raw()
        .execute("EXPLAIN QUERY PLAN " + store._claim_sql(), ("w", now, "f", now, now, now, 50))
        .fetchall()
    )
    assert "USING INDEX outbox_feed_heads (feed=? AND next_attempt_at<?)" in plan
    assert "TEMP B-TREE" not in plan
    async with store.transaction() as tx:
        await tx.enqueue_many(
            [
                outbox_entry(i, f"p{i % 7}", "delivered" if i < 300 else "pending")
                for i in range(600)
            ]
        )
    heads = store._raw().execute(
        "SELECT record_source_id FROM outbox WHERE head=1 AND status='pending' ORDER BY id"
    )
    assert [r[0] for r in heads] == [str(i) for i in range(300, 307)]
    claimed = await store.claim_outbox("w", 50, 60)
    # Oldest open entry of each of the 7 persons; nothing delivered re-claimed.
    assert [c.record_source_id for c in claimed] == [str(i) for i in range(300, 307)]
    await store.close()


def feed_entry(i: int, feed: str, due: str) -> OutboxRow:
    """An entry of ``feed`` for its own person (recipient ``r``), due at ``due``."""
    return dataclasses.replace(outbox_entry(i, f"{feed}-p{i}", due=due), feed=feed)


async def test_a_claim_passes_a_busy_feed_by_without_walking_its_backlog(tmp_path: Path) -> None:
    """A claim that skips a feed whose partner is busy (every lane taken) costs the same
    whether that feed has 1 or 3,000 entries due before the others (counted in SQLite
    virtual machine steps): with a large backlog behind a hanging partner, walking it at
    every claim held the store, and every intake waiting for it, for ~100 ms."""
    from hub.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "claims.db")
    await store.open()
    await store.migrate()
    conn = store._raw()
    early, late = "2026-01-01T00:00:00.000000+00:00", "2026-01-02T00:00:00.000000+00:00"

    async def steps_to_claim(backlog: int) -> int:
        async with store.transaction() as tx:
            await tx._c.execute("DELETE FROM outbox")
            await tx.enqueue_many(
                [feed_entry(i, "hanging", early) for i in range(backlog)]
                + [feed_entry(10_000 + i, "healthy", late) for i in range(20)]
            )
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        conn.set_progress_handler(count, 1)
        claimed = await store.claim_outbox("w", 10, 60, skip_feeds=["hanging"])
        conn.set_progress_handler(None, 1)
        assert [c.feed for c in claimed] == ["healthy"] * 10
        return steps

    small, large = await steps_to_claim(1), await steps_to_claim(3_000)
    assert large < small * 1.5, (small, large)
    await store.close()


async def test_feeds_take_turns_so_a_backlog_does_not_hold_back_other_feeds(
    any_hub: HubContext,
) -> None:
    """A feed with a large backlog due long ago does not make another feed's newer entries
    wait until the backlog is drained: each claim starts at the next feed."""
    store = any_hub.store
    early, late = "2026-01-01T00:00:00.000000+00:00", "2026-01-02T00:00:00.000000+00:00"
    async with store.transaction() as tx:
        await tx.enqueue_many(
            [feed_entry(i, "backlog", early) for i in range(100)]
            + [feed_entry(1_000 + i, "fresh", late) for i in range(5)]
        )
    first = await store.claim_outbox("w", 10, 60)
    second = await store.claim_outbox("w", 10, 60)
    feeds = [c.feed for c in first + second]
    assert feeds.count("fresh") == 5
    assert feeds.count("backlog") == 15
    # Within a feed, entries still go in due order.
    backlog = [int(c.record_source_id) for c in first + second if c.feed == "backlog"]
    assert sorted(backlog) == list(range(15))
    # A skipped feed is passed by; the others are claimed.
    third = await store.claim_outbox("w", 10, 60, skip_feeds=["backlog"])
    assert third == []
    fourth = await store.claim_outbox("w", 10, 60, skip_feeds=["fresh"])
    assert [c.feed for c in fourth] == ["backlog"] * 10


async def test_settling_a_head_passes_the_turn_to_the_persons_next_entry(
    any_hub: HubContext,
) -> None:
    store = any_hub.store
    later = "2999-01-01T00:00:00.000000+00:00"
    async with store.transaction() as tx:
        await tx.enqueue_many([outbox_entry(i, "p1") for i in range(3)] + [outbox_entry(9, "p2")])

    async def claim() -> list[str]:
        return [c.record_source_id for c in await store.claim_outbox("w", 10, 60)]

    first = await claim()
    assert first == ["0", "9"]
    # A head waiting for a retry holds its person back; the other person is not held.
    ids = {c.record_source_id: c.id for c in await store.list_outbox(limit=10)}
    assert await store.finish_outbox_many(
        [(ids["0"], "retry", "503", later), (ids["9"], "delivered", "", None)]
    )
    assert await claim() == []
    # Dead-lettered: the next entry of the person is due.
    assert await store.finish_outbox(ids["0"], "dead", error="gave up")
    assert await claim() == ["1"]
    assert await store.finish_outbox_many([(ids["1"], "delivered", "", None)]) == {ids["1"]}
    assert await claim() == ["2"]
    # A dead letter replayed while the person's next entry is in flight waits for it (one
    # entry of a person in flight at a time), then is claimable again.
    assert await store.requeue_outbox(ids["0"])
    assert await claim() == []
    assert await store.finish_outbox_many([(ids["2"], "delivered", "", None)]) == {ids["2"]}
    assert await claim() == ["0"]


async def test_a_postgresql_claim_repairs_a_head_a_race_left_unmarked(hub_factory: Any) -> None:
    require_pg()
    async with hub_factory(store="postgresql") as ctx:
        store = ctx.store
        async with store.transaction() as tx:
            await tx.enqueue_many([outbox_entry(i, "p1") for i in range(2)])
            # As when the entry was enqueued while the one before it was being settled.
            await tx._c.execute("UPDATE outbox SET head=0")
        store._heads_checked_at = 0.0
        assert [c.record_source_id for c in await store.claim_outbox("w", 10, 60)] == ["0"]


async def test_migration_5_marks_the_heads_of_open_entries(tmp_path: Path) -> None:
    store = await store_at_schema(tmp_path / "old.db", 4)
    insert_entries(
        store, [(f"p{i % 2}", str(i), "delivered" if i < 2 else "pending") for i in range(6)]
    )
    assert await store.migrate() == list(range(5, schema.LATEST_VERSION + 1))
    heads = store._raw().execute("SELECT record_source_id FROM outbox WHERE head=1 ORDER BY id")
    assert [r[0] for r in heads] == ["2", "3"]
    await store.close()


async def test_a_claimed_entry_is_reported_leased_and_keeps_its_place(any_hub: HubContext) -> None:
    """A claim leases entries without changing their stored status: users still see them as
    ``leased`` (list, depth, one entry); a replay cannot take an entry a worker holds; and
    released leases give the entries back as they were (pending, or retry)."""
    store = any_hub.store
    async with store.transaction() as tx:
        await tx.enqueue_many([outbox_entry(0, "p1"), outbox_entry(1, "p2")])
    [a, b] = await store.claim_outbox("w1", 10, 600)
    assert (a.status, b.status) == ("leased", "leased")
    assert await store.outbox_depth() == {"leased": 2}
    assert {r.id for r in await store.list_outbox(status="leased")} == {a.id, b.id}
    assert await store.list_outbox(status="pending") == []
    # Settled to retry, due now, then claimed again: a claimed retry is not replayable.
    assert await store.finish_outbox(b.id, "retry", error="HTTP 503", retry_at="2000-01-01")
    assert [r.id for r in await store.list_outbox(status="retry")] == [b.id]
    assert [r.id for r in await store.claim_outbox("w2", 10, 600)] == [b.id]
    assert not await store.requeue_outbox(b.id)
    got = await store.get_outbox(b.id)
    assert got is not None and (got.status, got.attempts) == ("leased", 2)
    assert await store.outbox_depth() == {"leased": 2}
    # Leases taken back (a restart with one delivering process): each entry as it was.
    assert await store.release_leases() == 2
    assert await store.outbox_depth() == {"pending": 1, "retry": 1}
    assert {r.status for r in await store.list_outbox()} == {"pending", "retry"}
    assert await store.requeue_outbox(b.id)
    assert sorted(r.id for r in await store.claim_outbox("w3", 10, 600)) == [a.id, b.id]


async def test_a_claim_rewrites_the_entry_and_no_index(tmp_path: Path) -> None:
    """Claiming changes no indexed column (nor any column a partial index's condition
    reads): the statement writes the outbox table and no index. A claim that moved each
    entry in the (recipient, person) index cost more than half of every claim."""
    from hub.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "claims.db")
    await store.open()
    await store.migrate()
    conn = store._raw()
    names = {page: name for name, page in conn.execute("SELECT name, rootpage FROM sqlite_master")}

    def written(sql: str, args: tuple[Any, ...]) -> set[str]:
        program = conn.execute("EXPLAIN " + sql, args).fetchall()
        return {names[step[3]] for step in program if step[1] == "OpenWrite"}

    now = "2026-01-01T00:00:00.000000+00:00"
    assert written(store._claim_sql(), ("w", now, "f", now, now, now, 50)) == {"outbox"}
    # Settling does move the entry in the indexes (the check can see an index written).
    settle = written("UPDATE outbox SET status='delivered' WHERE id=?", (1,))
    assert {"outbox", "outbox_due", "outbox_open_order"} <= settle
    await store.close()


async def test_a_claim_does_not_read_the_backlog_behind_a_head(tmp_path: Path) -> None:
    """Claiming a person's head costs the same whether 1 or 500 entries wait behind it
    (counted in SQLite virtual machine steps, not time): only a replayed entry is checked
    against the person's other open entries."""
    from hub.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "claims.db")
    await store.open()
    await store.migrate()
    async with store.transaction() as tx:
        await tx.enqueue_many(
            [outbox_entry(0, "alone")] + [outbox_entry(i, "busy") for i in range(1, 502)]
        )
    conn = store._raw()
    now = "2999-01-01T00:00:00.000000+00:00"

    def steps_to_claim(person: str) -> int:
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        conn.execute("BEGIN IMMEDIATE")
        # The other person's head is out of the way (not due), so one head is claimed.
        conn.execute("UPDATE outbox SET next_attempt_at=? WHERE person_id<>?", (now, person))
        conn.set_progress_handler(count, 1)
        claimed = conn.execute(store._claim_sql(), ("w", now, "f", "2998", "2998", "2998", 10))
        got = [r[6] for r in claimed.fetchall()]
        conn.set_progress_handler(None, 1)
        conn.execute("ROLLBACK")
        assert len(got) == 1
        return steps

    alone, busy = steps_to_claim("alone"), steps_to_claim("busy")
    assert busy < alone * 1.5, (alone, busy)
    await store.close()


async def test_postgresql_a_replay_waits_for_a_claim_in_progress(hub_factory: Any) -> None:
    """A dead letter replayed while another worker's claim of the person's next entry is
    not yet committed: the replay waits for that claim, so a later claim sees the entry in
    flight and leaves the replayed one (one entry of a person in flight at a time)."""
    require_pg()
    async with hub_factory(store="postgresql") as ctx:
        store = ctx.store
        store._heads_checked_at = float("inf")
        async with store.transaction() as tx:
            await tx.enqueue_many([outbox_entry(0, "p1"), outbox_entry(1, "p1")])
        [dead] = await store.claim_outbox("w0", 10, 600)
        assert await store.finish_outbox(dead.id, "dead", error="gave up", worker="w0")
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        until = "2999-01-01T00:00:00.000000+00:00"
        claim_a = store.transaction()
        tx_a = await claim_a.__aenter__()
        try:
            got = await tx_a._c.fetch(store._claim_sql(), ("a", until, "f", now, now, now, 10))
            assert [r[6] for r in got] == ["1"]
            replay = asyncio.create_task(store.requeue_outbox(dead.id))
            await asyncio.sleep(0.3)
            waited = not replay.done()  # it waits for the claim in progress
        finally:
            await claim_a.__aexit__(None, None, None)
        assert await asyncio.wait_for(replay, 10)
        assert waited
        assert await store.claim_outbox("b", 10, 600) == []
        in_flight = await store.list_outbox(status="leased")
        assert [r.record_source_id for r in in_flight] == ["1"]


async def test_entries_claimed_by_an_earlier_release_are_given_back(
    any_hub: HubContext,
) -> None:
    """After the upgrade to schema 6, a process of the earlier release may still claim the
    old way (status 'leased'): such an entry is given back once its lease has run out (on
    PostgreSQL, by the periodic repair in claims) and by ``release_leases``."""
    store = any_hub.store
    async with store.transaction() as tx:
        await tx.enqueue_many([outbox_entry(0, "p1"), outbox_entry(1, "p2")])
        await tx._c.execute(
            "UPDATE outbox SET status='leased', lease_owner='old', lease_until=?",
            ("2000-01-01T00:00:00.000000+00:00",),
        )
    if store.dialect == "postgresql":
        store._heads_checked_at = 0.0
        claimed = await store.claim_outbox("new", 10, 600)
        assert sorted(r.record_source_id for r in claimed) == ["0", "1"]
    else:
        assert await store.release_leases() == 2
        assert await store.outbox_depth() == {"pending": 2}


async def test_migration_6_keeps_entries_claimed_under_schema_5_leased(tmp_path: Path) -> None:
    store = await store_at_schema(tmp_path / "old.db", 5)
    insert_entries(
        store,
        [
            ("p0", "0", "leased", 1, "old-worker", "2000-01-01T00:00:00"),  # lease expired
            ("p1", "1", "leased", 1, "old-worker", "2999-01-01T00:00:00"),
            ("p2", "2", "pending", 1, None, None),
        ],
        "head",
        "lease_owner",
        "lease_until",
    )
    assert await store.migrate() == list(range(6, schema.LATEST_VERSION + 1))
    assert await store.outbox_depth() == {"leased": 2, "pending": 1}
    # The expired lease is claimable again; the live one is not; the pending one is.
    claimed = await store.claim_outbox("new-worker", 10, 600)
    assert sorted(r.record_source_id for r in claimed) == ["0", "2"]
    await store.close()


async def test_the_same_data_under_another_owner_updates_the_owner(any_hub: HubContext) -> None:
    """A source's organisation mapping changed: re-sending unchanged data moves the record."""
    first = client("1", owner="shelter-a")
    moved = client("1", owner="hospital-x")
    async with any_hub.store.transaction() as tx:
        assert await tx.upsert_records([record_to_row(first)]) == ["inserted"]
        assert await tx.upsert_records([record_to_row(first)]) == ["unchanged"]
        assert await tx.upsert_records([record_to_row(moved)]) == ["updated"]
        row = await tx.get_record("client", "hmis:demo", "1")
    assert row is not None and row.owner == "hospital-x"


async def test_postgresql_an_enqueue_notes_only_entries_behind_another_transactions_head(
    hub_factory: Any,
) -> None:
    """After commit, only persons whose new entries wait behind a head this transaction did
    not write are checked again (the rest cannot have lost their head to a settle)."""
    require_pg()
    async with hub_factory(store="postgresql") as ctx:
        store = ctx.store
        async with store.transaction() as tx:
            await tx.enqueue_many([outbox_entry(0, "p1")])
        async with store.transaction() as tx:
            batch = [outbox_entry(1, "p1"), outbox_entry(2, "p2"), outbox_entry(3, "p2")]
            await tx.enqueue_many([*batch, outbox_entry(4, "p3")])
            assert tx.heads_behind == {("r", "p1")}
        async with store._reader() as c:
            heads = await c.fetch("SELECT record_source_id FROM outbox WHERE head=1 ORDER BY id")
        assert [r[0] for r in heads] == ["0", "2", "4"]


@pytest.mark.parametrize(
    "settle_commits_first", [True, False], ids=["settle-first", "enqueue-first"]
)
async def test_postgresql_an_enqueue_racing_a_settle_still_leaves_a_head(
    hub_factory: Any, settle_commits_first: bool
) -> None:
    """Under READ COMMITTED each side misses the other's uncommitted row; the side that
    commits second marks the head, with no wait for the periodic repair."""
    require_pg()
    async with hub_factory(store="postgresql") as ctx:
        store = ctx.store
        async with store.transaction() as tx:
            await tx.enqueue_many([outbox_entry(0, "p1")])
        [first] = await store.claim_outbox("w", 10, 600)
        store._heads_checked_at = float("inf")  # no repair: the race must be closed by itself
        enqueue = store.transaction()
        settle = store.transaction()
        t1 = await enqueue.__aenter__()
        t2 = await settle.__aenter__()
        await t2._c.execute("UPDATE outbox SET status='delivered' WHERE id=?", (first.id,))
        await t2.promote_next([first.id])  # the next entry is not committed: nothing to mark
        await t1.enqueue_many([outbox_entry(1, "p1")])  # the first still looks open
        for side in (settle, enqueue) if settle_commits_first else (enqueue, settle):
            await side.__aexit__(None, None, None)
        assert [c.record_source_id for c in await store.claim_outbox("w", 10, 600)] == ["1"]


async def test_migration_8_keeps_tokens_issued_before_it_unlimited(tmp_path: Path) -> None:
    store = await store_at_schema(tmp_path / "old.db", 7)
    store._raw().execute(
        "INSERT INTO access_tokens (token_hash, agency, role, client_id, expires_at) "
        "VALUES ('h1', 'hospital-x', 'partner', 'mercy', '2999-01-01T00:00:00+00:00')"
    )
    assert await store.migrate() == list(range(8, schema.LATEST_VERSION + 1))
    assert await store.find_access_token("h1") == (
        "hospital-x",
        "partner",
        "mercy",
        "system/*.read system/*.write",
    )
    await store.close()


async def test_mark_deleted_marks_only_those_live_records(any_hub: HubContext) -> None:
    rows = [record_to_row(client(str(i))) for i in range(4)]
    other = record_to_row(client("1", source="hmis:other"))
    async with any_hub.store.transaction() as tx:
        await tx.upsert_records([*rows, other])
        assert await tx.mark_deleted("client", "hmis:demo", ["1", "2", "2", "9"]) == 2
        assert await tx.mark_deleted("client", "hmis:demo", ["1"]) == 0, "deleted already"
    assert await any_hub.store.count_records("client") == {"client": 3}
