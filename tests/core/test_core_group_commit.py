"""Group commit: concurrent inbound messages share a transaction, each in its own savepoint."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
import pytest

from consent.parsing import parse_consent_file
from hub.context import HubContext
from hub.core.engine import Engine, InboundMessage, IngestResult
from hub.core.records import Record
from hub.synthetic import client
from tests.conftest import HubFactory, require_pg

ANY_STORE = pytest.mark.parametrize("any_hub", ["sqlite", "postgresql"], indirect=True)


def message(n: int, content: str = "") -> InboundMessage:
    return InboundMessage(sender="EHR|HOSP", control_id=f"C{n}", content_hash=content or f"h{n}")


async def stored_ids(ctx: HubContext) -> set[str]:
    async with ctx.store.transaction() as tx:
        rows = [await tx.get_record("client", "hmis:demo", str(n)) for n in range(20)]
    return {r.source_id for r in rows if r is not None}


@ANY_STORE
async def test_concurrent_messages_commit_together_and_each_gets_its_result(
    any_hub: HubContext,
) -> None:
    grouped = any_hub.engine.grouped
    results = await asyncio.gather(
        *(
            grouped.ingest([client(str(n))], message=message(n), response=f"ACK{n}".encode())
            for n in range(10)
        )
    )
    assert [r.response for r in results] == [f"ACK{n}".encode() for n in range(10)]
    assert all(r.counts() == {"inserted": 1} for r in results)
    assert await stored_ids(any_hub) == {str(n) for n in range(10)}
    # Ten callers, fewer transactions: they waited for one commit, not for ten.
    assert grouped.messages == 10
    assert grouped.groups < 10


@ANY_STORE
async def test_a_failing_message_is_rolled_back_alone(
    any_hub: HubContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Engine._ingest

    async def fail_after_writing(
        self: Engine, tx: object, records: Sequence[Record], result: IngestResult, *rest: object
    ) -> None:
        await real(self, tx, records, result, *rest)  # type: ignore[arg-type]
        if any(r.meta.key.id == "5" for r in records):
            raise RuntimeError("storage refused the message")

    monkeypatch.setattr(Engine, "_ingest", fail_after_writing)
    grouped = any_hub.engine.grouped
    outcomes = await asyncio.gather(
        *(grouped.ingest([client(str(n))], message=message(n)) for n in range(8)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[5], RuntimeError)
    assert all(isinstance(o, IngestResult) for i, o in enumerate(outcomes) if i != 5)
    # Message 5's writes (done before it failed) are gone; every other message is stored.
    assert await stored_ids(any_hub) == {str(n) for n in range(8) if n != 5}
    async with any_hub.store.transaction() as tx:
        assert await tx.seen_message("EHR|HOSP", "C5") is None
        assert await tx.seen_message("EHR|HOSP", "C4") is not None
    # The sender re-sends it once the cause is gone: stored then.
    monkeypatch.setattr(Engine, "_ingest", real)
    again = await grouped.ingest([client("5")], message=message(5))
    assert again.counts() == {"inserted": 1}


@ANY_STORE
async def test_a_resent_message_in_the_same_group_is_answered_as_before(
    any_hub: HubContext,
) -> None:
    grouped = any_hub.engine.grouped
    first, resent, reused = await asyncio.gather(
        grouped.ingest([client("1")], message=message(1), response=b"ACK-1"),
        grouped.ingest([client("1")], message=message(1), response=b"ACK-1b"),
        grouped.ingest([client("2")], message=message(1, "other"), response=b"ACK-2"),
    )
    assert not first.duplicate and first.response == b"ACK-1"
    assert resent.duplicate and resent.response == b"ACK-1"
    # Same control id, different content: processed as new, not swallowed.
    assert not reused.duplicate and reused.counts() == {"inserted": 1}
    assert await stored_ids(any_hub) == {"1", "2"}


FEEDS = """
[[feeds]]
name = "to-hospital"
recipient = "hospital-x"
kinds = ["client"]
purpose = "treatment"
connector = "webhook"
options = {url = "http://127.0.0.1:9/none"}
"""


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_each_message_of_a_group_is_counted_and_gated_on_its_own(
    hub_factory: HubFactory, store: str
) -> None:
    if store == "postgresql":
        require_pg()
    async with hub_factory(FEEDS, store=store) as ctx:
        await ctx.import_consents(
            parse_consent_file(
                orjson.dumps(
                    {
                        "id": "m1",
                        "client": {"system": "hmis:demo", "value": "1"},
                        "signed_on": "2024-01-01",
                        "networks": ["hmis", "cie"],
                        "purposes": ["treatment"],
                        "recorded_by": "shelter-a",
                    }
                ).decode(),
                agencies=ctx.config.agencies,
                policy=ctx.config.consent_policy,
            )
        )
        consented, unconsented = await asyncio.gather(
            ctx.engine.grouped.ingest([client("1")], message=message(1)),
            ctx.engine.grouped.ingest([client("2")], message=message(2)),
        )
        assert ctx.engine.grouped.groups == 1
        assert (consented.enqueued, consented.withheld) == (1, 0)
        assert (unconsented.enqueued, unconsented.withheld) == (0, 1)
        queued = await ctx.store.list_outbox()
        assert [(q.record_source_id, q.recipient) for q in queued] == [("1", "hospital-x")]


@ANY_STORE
async def test_two_versions_of_one_record_in_a_group_link_as_one_by_one(
    any_hub: HubContext,
) -> None:
    """The second version of a record keeps the link the first made, as when each message
    is written alone: no new person, no review, every key under one person."""
    ssn = "512-34-5671"
    await any_hub.engine.ingest([client("9", given="Bo", family="Berg", ssn=ssn)])
    first, second = await asyncio.gather(
        any_hub.engine.grouped.ingest([client("1")], message=message(1)),
        any_hub.engine.grouped.ingest(
            [client("1", ssn=ssn, version="2025-02-01T00:00:00")], message=message(2)
        ),
    )
    assert any_hub.engine.grouped.groups == 1
    assert first.persons == second.persons  # each sees its own record's person only
    async with any_hub.store.transaction() as tx:
        row = await tx.get_record("client", "hmis:demo", "1")
        reviews = await tx.list_reviews()
        holders = await tx.persons_with_keys(
            list(await tx.person_keys(first.persons["hmis:demo/1"]))
        )
    assert row is not None and row.person_id == first.persons["hmis:demo/1"]
    assert reviews == []
    assert row.person_id in set().union(*holders.values())


@ANY_STORE
async def test_callers_waiting_when_the_writer_stops_get_an_error_not_silence(
    any_hub: HubContext,
) -> None:
    grouped = any_hub.engine.grouped
    callers = [
        asyncio.ensure_future(grouped.ingest([client(str(n))], message=message(n)))
        for n in range(3)
    ]
    await asyncio.sleep(0)  # the callers queue; the writer task is created
    assert grouped._writer is not None
    grouped._writer.cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 5)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await stored_ids(any_hub) == set()  # nothing half-written
