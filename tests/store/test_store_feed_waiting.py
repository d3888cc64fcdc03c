"""The store's list of records scheduled feeds wait to route (their client unknown when the
feed's run passed them), and its look-up of queued idempotency keys: both adapters."""

from __future__ import annotations

from hub.context import HubContext
from hub.synthetic import client, enrollment

E1 = ("enrollment", "hmis:demo", "E1")
E2 = ("enrollment", "hmis:demo", "E2")
E3 = ("enrollment", "hmis:demo", "E3")


async def test_store_a_noted_record_is_ready_once_its_client_has_a_person(
    any_hub: HubContext,
) -> None:
    store = any_hub.store
    await any_hub.engine.ingest([enrollment("E1", "1"), enrollment("E2", "2")])
    async with store.transaction() as tx:
        await tx.hold_for_client("nightly", [E1, E2, E1])
        await tx.hold_for_client("other", [E1])
        assert await tx.waiting_ready("nightly", 10) == []
    await any_hub.engine.ingest([client("1")])
    async with store.transaction() as tx:
        assert await tx.waiting_ready("nightly", 10) == [E1]
        assert await tx.waiting_ready("other", 10) == [E1]
        await tx.stop_waiting("nightly", [E1])
        assert await tx.waiting_ready("nightly", 10) == []
        assert await tx.waiting_ready("other", 10) == [E1], "each feed has its own list"


async def test_store_a_noted_record_deleted_or_never_stored_is_ready_to_drop(
    any_hub: HubContext,
) -> None:
    store = any_hub.store
    await any_hub.engine.ingest([enrollment("E1", "1"), enrollment("E2", "2")])
    async with store.transaction() as tx:
        await tx.hold_for_client("nightly", [E1, E2, E3])
        await tx.mark_deleted("enrollment", "hmis:demo", ["E2"])
        ready = await tx.waiting_ready("nightly", 10)
    assert sorted(ready) == [E2, E3]


async def test_store_queued_keys_names_the_idempotency_keys_in_the_outbox(
    any_hub: HubContext,
) -> None:
    from hub.core.ports import OutboxRow

    row = OutboxRow(
        id=0,
        feed="nightly",
        recipient="partner",
        person_id="p1",
        record_kind="client",
        record_source="hmis:demo",
        record_source_id="1",
        record_version="v1",
        idempotency_key="k-queued",
        status="pending",
        attempts=0,
        next_attempt_at="2025-01-01T00:00:00+00:00",
        created_at="2025-01-01T00:00:00+00:00",
        payload=b"{}",
    )
    async with any_hub.store.transaction() as tx:
        await tx.enqueue([row])
        assert await tx.queued_keys(["k-queued", "k-other", "k-queued"]) == {"k-queued"}
        assert await tx.queued_keys([]) == set()
