"""Ingest and routing as an integration engineer runs them: versions, deletions, restrictions,
feed selection, idempotency, group commit and payload round trips (review of the engine)."""

from __future__ import annotations

import asyncio
import dataclasses
import typing
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.parsing import parse_consent_file
from hub.context import HubContext
from hub.core.engine import InboundMessage
from hub.core.gate import AuditWriter
from hub.core.records import (
    RECORD_TYPES,
    Client,
    Provenance,
    Record,
    RecordMeta,
    Referral,
    SourceKey,
    SourceRow,
)
from hub.core.routing import FeedSpec
from hub.core.rows import record_to_row, row_to_record
from hub.core.serialize import record_from_payload, record_payload
from hub.synthetic import client, enrollment, meta

HOOK = 'connector = "webhook"\noptions = {url = "http://127.0.0.1:9/none"}\n'

FEED = f"""
[[feeds]]
name = "to-hospital"
recipient = "hospital-x"
kinds = ["client", "enrollment"]
purpose = "treatment"
categories = ["identity", "housing"]
{HOOK}"""


def mpa(cid: str, pid: str) -> str:
    return orjson.dumps(
        {
            "id": cid,
            "client": {"system": "hmis:demo", "value": pid},
            "signed_on": "2024-01-01",
            "networks": ["hmis", "cie"],
            "purposes": ["coordination", "treatment"],
            "recorded_by": "shelter-a",
        }
    ).decode()


async def consents(ctx: HubContext, *lines: str) -> None:
    cfg = ctx.config
    await ctx.import_consents(
        parse_consent_file("\n".join(lines), agencies=cfg.agencies, policy=cfg.consent_policy)
    )


def deleted(record: Any, version: str) -> Any:
    return dataclasses.replace(
        record, meta=dataclasses.replace(record.meta, deleted=True, version=version)
    )


async def stored(ctx: HubContext, kind: str, source_id: str) -> Any:
    async with ctx.store.transaction() as tx:
        return await tx.get_record(kind, "hmis:demo", source_id)


# ---- versions ----------------------------------------------------------------------------


async def test_an_older_version_never_replaces_a_newer_one(any_hub: HubContext) -> None:
    ctx = any_hub
    await ctx.engine.ingest([client("1", version="2025-02-01T00:00:00", family="Newer")])
    result = await ctx.engine.ingest([client("1", version="2025-01-01T00:00:00", family="Old")])
    assert result.outcomes == ["stale"]
    row = await stored(ctx, "client", "1")
    assert row.version == "2025-02-01T00:00:00" and b"Newer" in row.payload


async def test_a_batch_with_two_versions_of_one_record_keeps_the_newer(
    any_hub: HubContext,
) -> None:
    ctx = any_hub
    old, new = "2025-01-01T00:00:00", "2025-02-01T00:00:00"
    result = await ctx.engine.ingest(
        [
            client("1", version=new, family="Newer"),
            client("1", version=old, family="Old"),
            client("2", version=old, family="Old"),
            client("2", version=new, family="Newer"),
        ]
    )
    assert result.outcomes == ["inserted", "stale", "inserted", "updated"]
    for pid in ("1", "2"):
        row = await stored(ctx, "client", pid)
        assert row.version == new and b"Newer" in row.payload
        assert row.person_id is not None


async def test_a_restriction_stays_on_later_versions_in_and_after_a_batch(
    any_hub: HubContext,
) -> None:
    ctx = any_hub
    await ctx.engine.ingest(
        [
            client("1", version="2025-01-01T00:00:00", restricted=True),
            client("1", version="2025-02-01T00:00:00", family="Second"),
        ]
    )
    assert (await stored(ctx, "client", "1")).restricted
    await ctx.engine.ingest([client("1", version="2025-03-01T00:00:00", family="Third")])
    row = await stored(ctx, "client", "1")
    assert row.restricted and b"Third" in row.payload


# ---- deletions ---------------------------------------------------------------------------


async def test_a_record_deleted_after_queueing_is_not_sent(any_hub: HubContext) -> None:
    """The queued version of a record its source has since deleted is gone at send time."""
    ctx = any_hub
    ctx.engine.feeds = [
        FeedSpec(
            name="to-211",
            recipient="cie-211",
            kinds=frozenset({"client", "enrollment"}),
            purpose="coordination",
            connector="webhook",
        )
    ]
    await consents(ctx, mpa("m1", "1"))
    await ctx.engine.ingest([client("1"), enrollment("E1", "1")])
    await ctx.engine.ingest([deleted(enrollment("E1", "1"), "2025-02-01T00:00:00")])
    items = await ctx.store.list_outbox()
    [queued] = [i for i in items if i.record_kind == "enrollment"]
    [live] = [i for i in items if i.record_kind == "client"]
    async with ctx.store.transaction() as tx:
        audit = AuditWriter(tx, batch=True)
        gone, kept = await ctx.engine.redisclose_many(
            tx, audit, [queued, live], "coordination", None
        )
        await audit.flush()
        assert gone is None
        assert kept is not None and kept[0].payload is not None
        with pytest.raises(LookupError):
            await ctx.engine.redisclose(tx, queued, "coordination", None)


async def test_a_deleted_record_re_sent_changes_nothing(any_hub: HubContext) -> None:
    ctx = any_hub
    await ctx.engine.ingest([client("1")])
    gone = deleted(client("1"), "2025-02-01T00:00:00")
    assert (await ctx.engine.ingest([gone])).outcomes == ["updated"]
    assert (await ctx.engine.ingest([gone])).outcomes == ["unchanged"]
    # an older live version arriving late does not bring it back
    assert (await ctx.engine.ingest([client("1")])).outcomes == ["stale"]
    assert (await stored(ctx, "client", "1")).deleted


# ---- feed selection ----------------------------------------------------------------------

TWO_PERSON_HAS = f"""
[[feeds]]
name = "a-with-encounter"
recipient = "hospital-x"
kinds = ["client"]
person_has = ["encounter"]
purpose = "treatment"
{HOOK}
[[feeds]]
name = "b-with-enrollment"
recipient = "cie-211"
kinds = ["client"]
person_has = ["enrollment"]
purpose = "coordination"
{HOOK}"""


async def test_each_feed_checks_its_own_person_has_kinds(hub_factory: Any) -> None:
    """Two feeds with different ``person_has``: the first feed's look-up must not answer
    for the second (the person has an enrollment, no encounter)."""
    async with hub_factory(TWO_PERSON_HAS) as ctx:
        await consents(ctx, mpa("m1", "1"))
        await ctx.engine.ingest([enrollment("E1", "1"), client("1")])
        assert [i.feed for i in await ctx.store.list_outbox()] == ["b-with-enrollment"]


WHERE_LIST = f"""
[[feeds]]
name = "food-referrals"
recipient = "cie-211"
kinds = ["referral"]
where = {{service_codes = ["food"]}}
purpose = "coordination"
{HOOK}"""


def referral(rid: str, *codes: str) -> Referral:
    return Referral(
        meta=meta("referral", "hmis:demo", rid, "shelter-a"),
        client=SourceKey("hmis:demo", "1"),
        status="active",
        service_codes=codes,
    )


async def test_where_on_a_list_field_matches_one_of_its_values(hub_factory: Any) -> None:
    async with hub_factory(WHERE_LIST) as ctx:
        await consents(ctx, mpa("m1", "1"))
        await ctx.engine.ingest(
            [client("1"), referral("R1", "housing", "food"), referral("R2", "legal")]
        )
        assert [i.record_source_id for i in await ctx.store.list_outbox()] == ["R1"]


async def test_where_on_a_scalar_field_and_a_filter_matching_nothing(hub_factory: Any) -> None:
    extra = f"""
[[feeds]]
name = "p1"
recipient = "hospital-x"
kinds = ["enrollment"]
where = {{project_id = ["P1"]}}
purpose = "treatment"
{HOOK}
[[feeds]]
name = "nothing"
recipient = "hospital-x"
kinds = ["enrollment"]
where = {{project_id = ["no-such-project"]}}
purpose = "treatment"
{HOOK}"""
    async with hub_factory(extra) as ctx:
        await consents(ctx, mpa("m1", "1"))
        result = await ctx.engine.ingest(
            [
                client("1"),
                enrollment("E1", "1", project_id="P1"),
                enrollment("E2", "1", project_id="P2"),
            ]
        )
        assert result.withheld == 0
        assert [(i.feed, i.record_source_id) for i in await ctx.store.list_outbox()] == [
            ("p1", "E1")
        ]


# ---- idempotency and group commit -----------------------------------------------------------


async def test_the_same_record_version_twice_is_one_outbox_row(hub_factory: Any) -> None:
    async with hub_factory(FEED) as ctx:
        await consents(ctx, mpa("m1", "1"))
        await ctx.engine.ingest([client("1"), client("1")])
        await ctx.engine.ingest([client("1")])
        assert len(await ctx.store.list_outbox()) == 1
        # the same version with corrected content is a new delivery with its own key
        await ctx.engine.ingest([client("1", family="Corrected")])
        keys = {i.idempotency_key for i in await ctx.store.list_outbox()}
        assert len(keys) == 2


async def test_a_failing_message_in_a_group_costs_only_itself(hub_factory: Any) -> None:
    async with hub_factory(FEED) as ctx:
        records: list[Client] = [client(str(i)) for i in range(8)]
        records[3] = dataclasses.replace(records[3], names=object())  # type: ignore[arg-type]

        async def send(i: int) -> Any:
            return await ctx.engine.grouped.ingest(
                [records[i]],
                message=InboundMessage("SENDER", f"ctl-{i}", f"hash-{i}"),
                response=f"ACK-{i}".encode(),
            )

        got = await asyncio.gather(*(send(i) for i in range(8)), return_exceptions=True)
        assert isinstance(got[3], Exception)
        for i, result in enumerate(got):
            if i != 3:
                assert result.response == f"ACK-{i}".encode()
                assert result.outcomes == ["inserted"]
        again = await asyncio.gather(*(send(i) for i in range(8) if i != 3))
        assert [r.response for r in again] == [f"ACK-{i}".encode() for i in range(8) if i != 3]
        assert all(r.duplicate for r in again)
        assert (await stored(ctx, "client", "3")) is None


# ---- serialisation round trips ------------------------------------------------------------

st.register_type_strategy(datetime, st.datetimes(timezones=st.none() | st.just(UTC)))


def _records(cls: type[Record]) -> st.SearchStrategy[Record]:
    record_meta = RecordMeta(
        cls.KIND,
        SourceKey("hmis:demo", "1"),
        "shelter-a",
        Provenance("test", datetime(2025, 1, 1, tzinfo=UTC), "0" * 64),
        "2025-01-01T00:00:00",
    )
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: st.from_type(hints[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name != "meta"
    }
    return st.builds(cls, meta=st.just(record_meta), **fields)


@settings(max_examples=400, deadline=None)
@given(st.one_of(*(_records(c) for c in (*RECORD_TYPES.values(), SourceRow))))
def test_a_record_comes_back_equal_from_its_payload_and_row(record: Record) -> None:
    payload = orjson.loads(orjson.dumps(record_payload(record)))
    assert record_from_payload(record.meta, payload) == record
    assert row_to_record(record_to_row(record)) == record


def test_an_empty_ssn_is_not_turned_into_none() -> None:
    empty = dataclasses.replace(client("1"), ssn="")
    assert record_from_payload(empty.meta, record_payload(empty)) == empty
    # an empty value that is the field's default stays out of the payload
    assert "ssn" not in record_payload(client("1"))
