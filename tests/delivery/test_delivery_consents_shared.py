"""Consents written by one process take effect in every other process at once: a revocation
through the CLI, another `hub serve` or a worker on another machine is honoured by a running
hub's next decision (queueing, send-time re-check, reads), without a restart."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest

from consent.parsing import parse_consent_file
from hub.context import HubContext
from hub.core.ports import OutboxRow


@pytest.fixture
async def two_processes(
    store_url: str, hub: Any, h: Any
) -> AsyncIterator[tuple[HubContext, HubContext]]:
    """Two hubs on one store, as two processes (or machines) would be."""
    hub.store_url = store_url
    hub.write(h.webhook_feed("to-partner", "partner", "http://127.0.0.1:9/none"))
    async with hub.open() as serving, hub.open() as admin:
        yield serving, admin


async def write_consents(ctx: HubContext, *bodies: dict[str, Any]) -> None:
    cfg = ctx.config
    await ctx.import_consents(
        parse_consent_file(
            json.dumps(list(bodies)), agencies=cfg.agencies, policy=cfg.consent_policy
        )
    )


async def person_of(ctx: HubContext, value: str) -> str:
    async with ctx.store.transaction() as tx:
        row = await tx.get_record("client", "hmis:1", value)
    assert row is not None and row.person_id is not None
    return row.person_id


async def queued(ctx: HubContext) -> list[OutboxRow]:
    return await ctx.store.list_outbox(recipient="partner")


async def test_a_consent_written_elsewhere_permits_here(
    two_processes: tuple[HubContext, HubContext], h: Any
) -> None:
    serving, admin = two_processes
    await write_consents(admin, h.consent_json("1"))
    result = await serving.engine.ingest([h.client("1")])
    assert result.enqueued == 1
    assert [q.record_source_id for q in await queued(serving)] == ["1"]


async def test_a_revocation_written_elsewhere_stops_queueing_sending_and_reads(
    two_processes: tuple[HubContext, HubContext], h: Any
) -> None:
    serving, admin = two_processes
    await write_consents(serving, h.consent_json("1"))
    await serving.engine.ingest([h.client("1")])
    person = await person_of(serving, "1")
    released = await serving.engine.disclose_person(
        person, recipient="partner", purpose="coordination"
    )
    assert len(released) == 1
    (entry,) = await queued(serving)

    # Another process revokes; the serving hub is not restarted or told.
    await write_consents(admin, h.consent_json("1", revoked_on=date.today().isoformat()))

    # Send time: the queued entry is re-decided against the revocation.
    async with serving.store.transaction() as tx:
        from hub.core.gate import AuditWriter

        audit = AuditWriter(tx, batch=True)
        (decided,) = await serving.engine.redisclose_many(tx, audit, [entry], "coordination", None)
        await audit.flush()
    assert decided is not None
    disclosure, _meta = decided
    assert not disclosure.permitted
    assert "CONSENT_REVOKED" in disclosure.decision.reasons
    # Reads and new versions: nothing released, nothing queued.
    assert (
        await serving.engine.disclose_person(person, recipient="partner", purpose="coordination")
        == []
    )
    newer = await serving.engine.ingest([h.client("1", version="2025-06-01T00:00:00")])
    assert (newer.enqueued, newer.withheld) == (0, 1)


async def test_a_revocation_made_elsewhere_survives_a_stale_re_import_here(
    two_processes: tuple[HubContext, HubContext], h: Any
) -> None:
    # The serving hub still holds the consent as it was before the other process revoked
    # it; importing that consent again (an old roster re-sent) keeps the revocation, and a
    # revocation made here through a stale view still reads what is stored.
    serving, admin = two_processes
    await write_consents(serving, h.consent_json("1"))
    revoked_on = date(2025, 3, 1)
    assert await admin.revoke_consent("mpa-1", revoked_on) == (revoked_on, True)
    await write_consents(serving, h.consent_json("1"))
    assert await serving.revoke_consent("mpa-1", date(2025, 6, 1)) == (revoked_on, False)
    for ctx in (serving, admin):
        await ctx.reload_consents()
        [stored] = [c for c in ctx.gate.all_consents() if c.id == "mpa-1"]
        assert stored.revoked_on == revoked_on
