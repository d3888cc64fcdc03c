"""Deliveries as the delivery worker hands them to a sink, built from fixture records."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from hub.core.engine import idempotency_key
from hub.core.ports import Delivery, LazyDelivery
from hub.core.records import Record
from hub.core.rows import record_to_row
from hub.core.serialize import record_from_payload, record_payload
from hub.testing import fixtures

FEED = "kit-feed"
"""The feed name of kit-made deliveries."""


def make_delivery(
    record: Record,
    options: dict[str, Any],
    *,
    outbox_id: int = 1,
    feed: str = FEED,
    recipient: str = fixtures.RECIPIENT,
) -> Delivery:
    """One delivery of ``record``, shaped as the worker shapes it.

    ``payload`` is the record's payload and ``record`` the plain canonical record rebuilt
    from it (what the gate releases when it releases everything), built when the sink first
    reads it (a :class:`~hub.core.ports.LazyDelivery`, as the worker hands out); the
    idempotency key is made the way the engine makes it. ``options`` is shared, not copied:
    a worker hands every delivery of one feed the same options object.
    """
    payload = record_payload(record)
    return LazyDelivery.of(
        outbox_id,
        feed,
        recipient,
        idempotency_key(record, feed, recipient, record_to_row(record).payload_hash),
        kind=record.meta.kind,
        build=partial(record_from_payload, record.meta, payload),
        payload=payload,
        options=options,
    )


def make_deliveries(
    records: Sequence[Record],
    options: dict[str, Any],
    *,
    first_id: int = 1,
    feed: str = FEED,
) -> list[Delivery]:
    """Deliveries of ``records`` (outbox ids counting from ``first_id``), one options object."""
    return [
        make_delivery(r, options, outbox_id=first_id + i, feed=feed) for i, r in enumerate(records)
    ]
