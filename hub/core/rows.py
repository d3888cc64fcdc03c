"""Canonical records to and from the store's row form."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from hub.core.ports import RecordRow
from hub.core.records import Provenance, Record, RecordMeta, SourceKey, payload_hash, record_client
from hub.core.serialize import record_from_payload, record_payload


def record_to_row(
    record: Record, data: dict[str, Any] | None = None, stored_at: datetime | None = None
) -> RecordRow:
    """The store row of a record; ``payload_hash`` covers the data only, so a re-sent payload
    that carries the same data is recognised as unchanged.

    ``data`` is ``record_payload(record)`` when the caller has it already; ``stored_at``, when
    given, is the row's ``received_at`` (the engine stamps the time it stores a version).
    ``deleted_at`` is left to the store: a deleted version gets the time the store writes it
    (a record deleted already keeps the time it was first marked).
    """
    meta = record.meta
    if data is None:
        data = record_payload(record)
    payload = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    client = record_client(record)
    sensitivity, flags = meta.sensitivity, meta.flags
    return RecordRow(
        kind=meta.kind,
        source=meta.key.source,
        source_id=meta.key.id,
        owner=meta.owner,
        version=meta.version,
        payload=payload,
        payload_hash=payload_hash(payload),
        source_system=meta.provenance.source_system,
        received_at=stamp_text(stored_at or meta.provenance.received_at),
        deleted=meta.deleted,
        sensitivity=",".join(sorted(sensitivity)) if sensitivity else "",
        restricted=meta.restricted,
        client_source_id=client.id if client is not None else None,
        client_source=client.source if client is not None else None,
        raw_hash=meta.provenance.payload_hash,
        flags=",".join(sorted(flags)) if flags else "",
    )


_last_stamp: tuple[datetime | None, str] = (None, "")


def stamp_text(at: datetime) -> str:
    """``at`` as stored text (``isoformat`` to microseconds), formatted once for the many
    rows and outbox entries of a batch, which share one clock reading."""
    global _last_stamp
    last_at, text = _last_stamp
    if at is not last_at:
        text = at.isoformat(timespec="microseconds")
        _last_stamp = (at, text)
    return text


def row_to_record(row: RecordRow) -> Record:
    """Rebuild the canonical record of a store row."""
    return record_from_payload(row_meta(row), orjson.loads(row.payload))


def row_meta(row: RecordRow, version: str | None = None) -> RecordMeta:
    """The meta of a store row's record (``version`` in place of the row's, when given)."""
    return RecordMeta(
        kind=row.kind,
        key=SourceKey(row.source, row.source_id),
        owner=row.owner,
        provenance=Provenance(
            row.source_system, datetime.fromisoformat(row.received_at), row.raw_hash
        ),
        version=row.version if version is None else version,
        deleted=row.deleted,
        sensitivity=frozenset(filter(None, row.sensitivity.split(","))),
        restricted=row.restricted,
        flags=frozenset(filter(None, row.flags.split(","))),
    )
