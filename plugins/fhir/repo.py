"""FHIR resources as hub records: how they are stored, versioned and read back.

A Task, ServiceRequest, Consent or Procedure is kept as a :class:`SourceRow` of kind
``fhir.<Type>`` keyed ``fhir/<id>``: its JSON text in field ``resource`` (category
``services``), ``version`` the zero-padded ``meta.versionId``, ``owner`` the agency that
owns it (the requester for a ServiceRequest or Task, the creator otherwise) and ``client``
the source key of the Client record of the patient it is about. The patient reference in
the JSON is rewritten on every read from ``client`` (the person the client record is
linked to *now*), so an identity merge never leaves a resource pointing at a stale person.

The store has no query on JSON fields: searches read the records of one kind in batches
(``iter_records``) and filter here. Records are written only through ``ctx.engine.ingest``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.core.rows import row_to_record
from hub.plugin_api import Provenance, RecordMeta, SourceKey, SourceRow, payload_hash
from plugins.fhir import codes

SOURCE = "fhir"
STORED_TYPES = ("Task", "ServiceRequest", "Consent", "Procedure")
CATEGORIES = {"resource": "services"}


def kind_of(resource_type: str) -> str:
    """The record kind of a stored FHIR resource type."""
    return f"fhir.{resource_type}"


def instant(at: datetime) -> str:
    """A FHIR instant (UTC, milliseconds, ``Z``)."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_token(key: SourceKey, kind: str = "client") -> str:
    """An opaque, stable token for a hub record (never its source id in clear): the
    ``urn:cie-hub:record`` identifier value partners see."""
    raw = f"{kind}|{key.source}|{key.id}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def sensitivity_of(resource: Mapping[str, Any]) -> frozenset[str]:
    """Sensitive consent categories named by ``meta.security`` labels (ETH, HIV, PSY, SDV)."""
    meta = resource.get("meta")
    found: set[str] = set()
    if isinstance(meta, Mapping):
        for label in meta.get("security") or ():
            if isinstance(label, Mapping):
                category = codes.LABEL_TO_CATEGORY.get(str(label.get("code", "")))
                if category is not None:
                    found.add(category)
    return frozenset(found)


@dataclass(slots=True)
class Stored:
    """A stored FHIR resource as the API sees it."""

    type: str
    id: str
    version: int
    owner: str
    resource: dict[str, Any]
    client: SourceKey | None = None
    received_at: datetime | None = None

    @property
    def last_updated(self) -> str:
        """``meta.lastUpdated`` of this version."""
        meta = self.resource.get("meta")
        value = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
        return str(value) if value else ""

    @property
    def etag(self) -> str:
        """The weak ETag of this version."""
        return f'W/"{self.version}"'


def resource_record(stored: Stored, *, source_system: str, received_at: datetime) -> SourceRow:
    """The record that keeps one version of a FHIR resource."""
    text = orjson.dumps(stored.resource).decode()
    return SourceRow(
        meta=RecordMeta(
            kind=kind_of(stored.type),
            key=SourceKey(SOURCE, stored.id),
            owner=stored.owner,
            provenance=Provenance(source_system, received_at, payload_hash(text)),
            version=f"{stored.version:012d}",
            sensitivity=sensitivity_of(stored.resource),
        ),
        fields={"resource": text},
        categories=CATEGORIES,
        client=stored.client,
    )


def stamp(resource: dict[str, Any], version: int, at: datetime) -> None:
    """Set ``meta.versionId`` and ``meta.lastUpdated`` (the server owns both)."""
    meta = resource.get("meta")
    meta = dict(meta) if isinstance(meta, Mapping) else {}
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(at)
    resource["meta"] = meta


def _stored_from_record(resource_type: str, rec: Any) -> Stored | None:
    text = rec.fields.get("resource") if isinstance(rec, SourceRow) else None
    if not text:
        return None
    resource = orjson.loads(text)
    return Stored(
        type=resource_type,
        id=rec.meta.key.id,
        version=int(rec.meta.version),
        owner=rec.meta.owner,
        resource=resource,
        client=rec.client,
        received_at=rec.meta.provenance.received_at,
    )


@dataclass
class Repository:
    """Reads of stored FHIR resources for one request (scans are cached per request)."""

    store: Any
    _scans: dict[str, list[Stored]] = field(default_factory=dict)

    async def get(self, resource_type: str, resource_id: str) -> Stored | None:
        """One live resource, or None."""
        if resource_type not in STORED_TYPES:
            return None
        async with self.store.transaction() as tx:
            row = await tx.get_record(kind_of(resource_type), SOURCE, resource_id)
        if row is None or row.deleted:
            return None
        return _stored_from_record(resource_type, row_to_record(row))

    async def all(self, resource_type: str) -> list[Stored]:
        """Every live resource of a type (read once per request)."""
        cached = self._scans.get(resource_type)
        if cached is not None:
            return cached
        found: list[Stored] = []
        async for rows in self.store.iter_records(kind_of(resource_type), SOURCE):
            for row in rows:
                if row.deleted:
                    continue
                stored = _stored_from_record(resource_type, row_to_record(row))
                if stored is not None:
                    found.append(stored)
        self._scans[resource_type] = found
        return found

    def forget(self) -> None:
        """Drop cached scans (after a write)."""
        self._scans.clear()

    async def persons_of(self, clients: list[SourceKey]) -> dict[SourceKey, str]:
        """The person each client record is linked to now (unlinked ones left out)."""
        by_source: dict[str, list[str]] = {}
        for c in clients:
            by_source.setdefault(c.source, []).append(c.id)
        out: dict[SourceKey, str] = {}
        if not by_source:
            return out
        async with self.store.transaction() as tx:
            for source, ids in by_source.items():
                for cid, person in (await tx.persons_of_clients(source, ids)).items():
                    out[SourceKey(source, cid)] = person
        return out
