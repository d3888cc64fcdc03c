"""Administering identity links: the review list, resolving items, undoing links."""

from __future__ import annotations

from typing import Any

from hub.cli_support import fail
from hub.context import HubContext
from hub.core.identity import match_keys
from hub.core.ports import Transaction
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
    """Close an open item; with ``link_to``, link the item's record to that person first.

    False when there is no such open item. Linking to a person that does not exist is a
    one-line CLI error (exit 2) and changes nothing. The person linked to takes the record's
    birth date when it has none, so the consent gate's age rules still see it.
    """
    async with ctx.store.transaction() as tx:
        await _take_turns(tx)
        items = {i.id: i for i in await tx.list_reviews("open")}
        item = items.get(review_id)
        if item is None:
            return False
        if link_to is not None:
            known = await tx.persons_facts([link_to])
            if link_to not in known:
                fail(f"no person {link_to!r}: link to a candidate of item {review_id}")
            kind, source, source_id = split_record_ref(item.record)
            row = await tx.get_record(kind, source, source_id)
            if row is None:
                return False
            record = row_to_record(row)
            keys: tuple[str, ...] = ()
            if isinstance(record, Client):
                keys = match_keys(record, ctx.keys.blind).all()
                birth = record.birth_date_text()
                if birth is not None and known[link_to][0] is None:
                    await tx.set_birth_date(link_to, birth)
            await tx.link_record(kind, source, source_id, link_to, keys)
            ctx.gate.forget_person(link_to)
        await tx.set_review_status(review_id, "resolved")
    return True


async def _take_turns(tx: Transaction) -> None:
    """Make administrators' identity changes take turns, and every running hub re-read its
    persons' consents once this transaction commits (links may change).

    Bumping the consent generation locks its one row until commit (PostgreSQL; SQLite
    transactions take turns anyway), so two administrators resolving the same item, or
    unlinking the same record, at once are done one after the other: the second sees the
    item resolved (or the record unlinked) and is told so, instead of silently undoing the
    first's decision. It must come before anything is read.
    """
    await tx.bump_consent_generation()


def record_ref(record: str) -> tuple[str, str, str]:
    """A record reference typed by an administrator (``client/hmis:1/42``) as (kind, source,
    id); one that is not kind/source/id is a one-line CLI error (exit 2)."""
    try:
        return split_record_ref(record)
    except ValueError as exc:
        fail(f"{exc} (e.g. client/hmis:1/42)")


async def unlink(ctx: HubContext, record: str) -> str | None:
    """Undo a record's link: it gets a person of its own; the old link goes to review.

    The new person takes the record's birth date, so the consent gate's age rules apply to
    it as before (a minor does not become a client of unknown age, presumed adult).
    """
    kind, source, source_id = record_ref(record)
    async with ctx.store.transaction() as tx:
        # Every running hub re-reads its persons' consents: a consent that came with the
        # unlinked record no longer speaks for the person it left.
        await _take_turns(tx)
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
                birth = rec.birth_date_text()
                if birth is not None:
                    await tx.set_birth_date(person, birth)
        await tx.link_record(kind, source, source_id, person, keys)
        await tx.add_review(record, [old, person], "link undone by an administrator")
    ctx.gate.forget_person(old)
    return old
