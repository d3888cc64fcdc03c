"""The ``ndjson`` codec: canonical records as newline-delimited JSON, one record per line.

A line: ``{"kind", "id", "version", "deleted", "restricted", "sensitivity", "flags",
"record": <canonical payload>}``, plus ``idempotency_key`` when the sink writes it (ignored
when reading). Decoding keys every record in the caller's ``source`` and makes the caller's
``owner`` its owner; a bad line gives a :class:`CodecError` naming the line and field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from hub.plugin_api import (
    RECORD_TYPES,
    CodecError,
    Provenance,
    Record,
    RecordMeta,
    SourceKey,
    payload_hash,
    record_from_payload,
    record_payload,
)

ENVELOPE = frozenset({"key", "version", "deleted", "restricted", "sensitivity", "flags"})
"""The parts of the record envelope each line carries."""


def data_fields(kind: str) -> frozenset[str]:
    """The data fields of a record kind."""
    cls: Any = RECORD_TYPES[kind]
    return frozenset(f.name for f in dataclasses.fields(cls) if f.name != "meta")


class NdjsonCodec:
    """Canonical records as NDJSON lines (codec ``ndjson``)."""

    name = "ndjson"
    kinds = frozenset(RECORD_TYPES)
    carries: ClassVar[dict[str, frozenset[str]]] = {
        kind: data_fields(kind) | ENVELOPE for kind in RECORD_TYPES
    }

    def line(self, record: Record, *, idempotency_key: str | None = None) -> bytes:
        """One record as one line (ending in a newline)."""
        meta = record.meta
        data: dict[str, Any] = {
            "kind": meta.kind,
            "id": meta.key.id,
            "version": meta.version,
            "deleted": meta.deleted,
            "restricted": meta.restricted,
            "sensitivity": sorted(meta.sensitivity),
            "flags": sorted(meta.flags),
            "record": record_payload(record),
        }
        if idempotency_key is not None:
            data["idempotency_key"] = idempotency_key
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)

    def encode(self, records: Sequence[Record]) -> bytes:
        """Every record as one line."""
        for index, record in enumerate(records, start=1):
            if record.meta.kind not in self.kinds:
                raise CodecError(
                    f"kind {record.meta.kind} is not handled", location=f"record {index}"
                )
        return b"".join(self.line(r) for r in records)

    def decode(self, data: bytes, *, source: str, owner: str) -> list[Record]:
        """The records of NDJSON bytes."""
        received = datetime.now(UTC)
        records: list[Record] = []
        for number, raw in enumerate(data.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                item = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise CodecError("not a JSON object", location=f"line {number}") from None
            if not isinstance(item, Mapping):
                raise CodecError("not a JSON object", location=f"line {number}")
            records.append(self._record(item, number, source, owner, received, raw))
        return records

    def _record(
        self,
        item: Mapping[str, Any],
        number: int,
        source: str,
        owner: str,
        received: datetime,
        raw: bytes,
    ) -> Record:
        def where(name: str) -> str:
            return f"line {number} field {name}"

        kind = item.get("kind")
        if not isinstance(kind, str) or kind not in self.kinds:
            raise CodecError("unknown record kind", location=where("kind"))
        texts: dict[str, str] = {}
        for name in ("id", "version"):
            value = item.get(name)
            if not isinstance(value, str) or not value:
                raise CodecError("expected a non-empty string", location=where(name))
            texts[name] = value
        switches: dict[str, bool] = {}
        for name in ("deleted", "restricted"):
            value = item.get(name, False)
            if not isinstance(value, bool):
                raise CodecError("expected true or false", location=where(name))
            switches[name] = value
        labels: dict[str, frozenset[str]] = {}
        for name in ("sensitivity", "flags"):
            value = item.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise CodecError("expected a list of strings", location=where(name))
            labels[name] = frozenset(value)
        payload = item.get("record")
        if not isinstance(payload, Mapping):
            raise CodecError("expected a JSON object", location=where("record"))
        meta = RecordMeta(
            kind=kind,
            key=SourceKey(source, texts["id"]),
            owner=owner,
            provenance=Provenance(self.name, received, payload_hash(raw)),
            version=texts["version"],
            deleted=switches["deleted"],
            restricted=switches["restricted"],
            sensitivity=labels["sensitivity"],
            flags=labels["flags"],
        )
        try:
            return record_from_payload(meta, payload)
        except (TypeError, ValueError, KeyError, AttributeError):
            raise CodecError(
                f"cannot be read as a {kind} record", location=where("record")
            ) from None
