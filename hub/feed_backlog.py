"""What a scheduled feed's cursor passed before the feed could take it.

A scheduled run decides on the records received since the feed's cursor, then moves the
cursor past them. Two kinds of record are passed without a decision that should have one
later, as on-change feeds route them (``Engine._route``):

* a record whose client record is not stored yet (an enrollment that came first): there is
  no person to decide for. The run notes it in the store (``feed_waiting``) and a later run
  takes it once its client has a person (:func:`taken_back`);
* for a feed of persons holding a kind of record (``person_has``), a person's records passed
  before the person held such a record. A later run that sees the person's first such
  record takes them back (:func:`newly_qualified`).

Positions are the feed cursor's order: ``received_at``, then ``(kind, source, source_id)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence, Set

from hub.core.engine import idempotency_key
from hub.core.ports import FeedCursor, RecordRow, Transaction
from hub.core.records import Record
from hub.core.routing import FeedSpec
from hub.core.rows import row_to_record

HeldRows = Callable[[str], Awaitable[list[RecordRow]]]
"""A person's stored records of the kinds the feed's ``person_has`` asks about."""


def row_key(row: RecordRow) -> tuple[str, str, str]:
    """A stored record's key, ``(kind, source, source_id)``."""
    return (row.kind, row.source, row.source_id)


def record_key(record: Record) -> tuple[str, str, str]:
    """A record's key, ``(kind, source, source_id)``."""
    return (record.meta.kind, record.meta.key.source, record.meta.key.id)


def passed(row: RecordRow, cursor: FeedCursor) -> bool:
    """Whether a stored record's position is at or before ``cursor`` (an earlier run of the
    feed has seen it)."""
    if cursor.key is None:
        return row.received_at <= cursor.received_at
    return (row.received_at, *row_key(row)) <= (cursor.received_at, *cursor.key)


async def newly_qualified(
    tx: Transaction,
    feed: FeedSpec,
    work: Sequence[tuple[Record, str]],
    held: HeldRows,
    in_batch: Set[tuple[str, str, str]],
    start: FeedCursor,
) -> list[tuple[Record, str]]:
    """For a ``person_has`` feed, the records an earlier run passed of each person whose
    first record of those kinds is after ``start`` (the cursor this run began at).

    ``work`` is the batch's (record, person) pairs. A person who held such a record at or
    before ``start`` qualified at an earlier run, which routed their records then. Records
    already queued for the feed (same version and content) are left out, so a person whose
    every such record was updated since is not decided on again.
    """
    if not feed.person_has:
        return []
    persons = sorted({person for rec, person in work if rec.meta.kind in feed.person_has})
    found: list[tuple[Record, str, str]] = []
    for person in persons:
        holding = [r for r in await held(person) if r.kind in feed.person_has]
        if not holding or any(passed(r, start) for r in holding):
            continue
        for row in await tx.records_of_person(person, sorted(feed.kinds)):
            if row_key(row) not in in_batch and passed(row, start):
                record = row_to_record(row)
                key = idempotency_key(record, feed.name, feed.recipient, row.payload_hash)
                found.append((record, person, key))
    if not found:
        return []
    queued = await tx.queued_keys([key for _, _, key in found])
    return [(record, person) for record, person, key in found if key not in queued]


async def taken_back(tx: Transaction, feed: str, limit: int) -> tuple[int, list[Record]]:
    """Up to ``limit`` of the records ``feed`` noted as waiting for their client that no
    longer wait, no longer noted: how many, and the records to decide on (those whose
    client now has a person; records deleted or gone meanwhile are dropped). A record whose
    person is still unknown when decided on is noted again by the caller."""
    keys = await tx.waiting_ready(feed, limit)
    if not keys:
        return 0, []
    await tx.stop_waiting(feed, keys)
    found = await tx.records_by_keys(keys)
    records = [
        row_to_record(row)
        for key in keys
        if (row := found.get(key)) is not None and not row.deleted
    ]
    return len(keys), records
