"""Administering identity links: the review list, resolving items, undoing links."""

from __future__ import annotations

from typing import Any

from hub.cli_support import fail
from hub.context import HubContext
from hub.core.identity import match_keys
from hub.core.records import Client
from hub.core.refs import split_record_ref
from hub.core.rows import row_to_record


async def list_reviews(ctx: HubContext) -> list[dict[str, Any]]:
    """Open review items (record references and candidate person ids only)."""
    async with ctx.store.transaction() as tx:
        items = await tx.list_reviews("open")
    return [
        {
            "id": i.id,
            "record": i.record,
            "candidates": list(i.candidates),
            "reason": i.reason,
            "created_at": i.created_at,
        }
        for i in items
    ]


async def resolve_review(ctx: HubContext, review_id: int, link_to: str | None) -> bool:
    """Close an open item; with ``link_to``, link the item's record to that person first."""
    async with ctx.store.transaction() as tx:
        items = {i.id: i for i in await tx.list_reviews("open")}
        item = items.get(review_id)
        if item is None:
            return False
        if link_to is not None:
            kind, source, source_id = split_record_ref(item.record)
            row = await tx.get_record(kind, source, source_id)
            if row is None:
                return False
            record = row_to_record(row)
            keys = match_keys(record, ctx.keys.blind).all() if isinstance(record, Client) else ()
            await tx.link_record(kind, source, source_id, link_to, keys)
            # Every running hub re-reads its persons' consents (this one at once).
            await tx.bump_consent_generation()
            ctx.gate.forget_person(link_to)
        await tx.set_review_status(review_id, "resolved")
    return True


def record_ref(record: str) -> tuple[str, str, str]:
    """A record reference typed by an administrator (``client/hmis:1/42``) as (kind, source,
    id); one that is not kind/source/id is a one-line CLI error (exit 2)."""
    try:
        return split_record_ref(record)
    except ValueError as exc:
        fail(f"{exc} (e.g. client/hmis:1/42)")


async def unlink(ctx: HubContext, record: str) -> str | None:
    """Undo a record's link: it gets a person of its own; the old link goes to review."""
    kind, source, source_id = record_ref(record)
    async with ctx.store.transaction() as tx:
        old = await tx.unlink_record(kind, source, source_id)
        if old is None:
            return None
        row = await tx.get_record(kind, source, source_id)
        person = await tx.create_person()
        keys: tuple[str, ...] = ()
        if row is not None:
            rec = row_to_record(row)
            if isinstance(rec, Client):
                keys = match_keys(rec, ctx.keys.blind).all()
        await tx.link_record(kind, source, source_id, person, keys)
        await tx.add_review(record, [old, person], "link undone by an administrator")
        # Every running hub re-reads its persons' consents: a consent that came with the
        # unlinked record no longer speaks for the person it left.
        await tx.bump_consent_generation()
    ctx.gate.forget_person(old)
    return old
