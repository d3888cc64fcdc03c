"""Writes: creating and updating resources in a batch that commits in one store transaction.

A :class:`Batch` plans every write first — checks references, ownership, the Task status
machine — collecting the records to store; nothing is written until :meth:`Batch.commit`,
which hands them all to ``ctx.engine.ingest`` at once (one store transaction). A single REST
create or update is a batch of one; a transaction Bundle is a batch of many, so one bad entry
stores nothing.

A batch Bundle plans each entry as a *part* (:meth:`Batch.begin_part` …
:meth:`Batch.end_part`; a part that fails is undone alone with :meth:`Batch.undo_part`) and
commits with :meth:`Batch.commit_parts`: every part in a savepoint of its own (one store
transaction, batched statements while nothing fails), so a part that fails when stored is
rolled back alone. Parts that write the same record, or that build on what another part
planned, are stored together.

What is stored: Patients become canonical Client records (source ``fhir:<agency>``, id the
resource id or its first identifier); Tasks, ServiceRequests, Consents and Procedures become
``fhir.<Type>`` records (see :mod:`plugins.fhir.repo`); each Task with its ServiceRequest
also becomes a canonical Referral (kind ``referral``, key ``fhir/<task id>``, owner the
requester) linked to the patient's Client record. Consents the MPA can express are also
imported into the gate (``ctx.import_consents``).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from consent import ConsentRecord
from hub.core.engine import IngestRequest, IngestResult
from hub.core.serialize import record_from_payload
from hub.plugin_api import (
    Provenance,
    Record,
    RecordMeta,
    SourceKey,
    payload_hash,
)
from plugins.fhir import codes
from plugins.fhir.access import Viewer, reference_id
from plugins.fhir.canonical import client_record
from plugins.fhir.mapping import patient_to_client, referral_from_fhir
from plugins.fhir.outcome import FhirError, Issue, not_found
from plugins.fhir.patients import (
    patient_matches,
    resolve_patient,
    search_patients,
)
from plugins.fhir.prepare import PREPARE
from plugins.fhir.queries import search_stored
from plugins.fhir.repo import SOURCE, Stored, kind_of, record_token, resource_record, stamp
from plugins.fhir.search import Query, parse_query, stored_params
from plugins.fhir.systems import canonical_system

WRITE_LOCK = "fhir_write_lock"


def write_lock(ctx: Any) -> asyncio.Lock:
    """The lock that serialises FHIR writes of one hub process (read-check-write of
    versions and Task status must not interleave)."""
    lock = ctx.extras.get(WRITE_LOCK)
    if lock is None:
        lock = ctx.extras[WRITE_LOCK] = asyncio.Lock()
    return lock  # type: ignore[no-any-return]


_ETAG = re.compile(r'\s*(?:W/)?"?(\d+)"?\s*')
_MISSING = object()

RecordKey = tuple[str, str, str]
"""(kind, source, source id) of a planned record."""


def parse_etag(value: str, where: str = "If-Match") -> int:
    """The version number in an ETag (``W/"3"``, ``"3"`` or ``3``)."""
    match = _ETAG.fullmatch(value)
    if match is None:
        raise FhirError.of(400, "invalid", f'{where}: expected a version ETag such as W/"1"')
    return int(match.group(1))


@dataclass(frozen=True, slots=True)
class Match:
    """An existing resource that conditional criteria found."""

    id: str
    stored: Stored | None = None
    patient: dict[str, Any] | None = None


@dataclass(slots=True)
class Outcome:
    """What one write did (resolved fully after :meth:`Batch.commit`)."""

    resource_type: str
    status: int
    stored: Stored | None = None
    patient_key: SourceKey | None = None
    person: str | None = None
    consent_note: str = ""
    patient: dict[str, Any] | None = None


@dataclass(slots=True)
class Part:
    """What one entry of a batch Bundle planned (see :meth:`Batch.begin_part`)."""

    index: int
    keys: list[RecordKey] = field(default_factory=list)
    """The records it writes."""
    after: set[int] = field(default_factory=set)
    """Earlier parts whose records it overwrites or whose planned resources it read."""
    outcomes: list[Outcome] = field(default_factory=list)
    consents: list[ConsentRecord] = field(default_factory=list)


StoredGroup = tuple[tuple[int, ...], Exception | None]
"""The indices of parts stored together, and what their storing raised (None: stored)."""


@dataclass
class Batch:
    """Writes planned for one caller, committed together."""

    viewer: Viewer
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    _records: dict[tuple[str, str, str], Record] = field(default_factory=dict)
    _pending: dict[tuple[str, str], Stored] = field(default_factory=dict)
    _patients: dict[str, SourceKey] = field(default_factory=dict)
    patient_payloads: dict[SourceKey, dict[str, Any]] = field(default_factory=dict)
    _outcomes: list[Outcome] = field(default_factory=list)
    consents: list[ConsentRecord] = field(default_factory=list)
    _now_version: str | None = None
    _part: Part | None = None
    _undo: list[tuple[dict[Any, Any], Any, Any]] | None = None
    _marks: tuple[int, int] = (0, 0)
    _record_by: dict[RecordKey, int] = field(default_factory=dict)

    @property
    def ctx(self) -> Any:
        """The hub context."""
        return self.viewer.ctx

    @property
    def agency(self) -> str:
        """The calling agency."""
        return self.viewer.agency

    @property
    def source_system(self) -> str:
        """Provenance of what this batch stores."""
        return f"fhir:{self.agency}"

    # ---- lookups (what this batch wrote first) --------------------------------------------

    async def find(self, resource_type: str, resource_id: str) -> Stored | None:
        """A resource as this batch would leave it."""
        pending = self._pending.get((resource_type, resource_id))
        if pending is not None:
            self._depend_on(pending)
            return pending
        return await self.viewer.repo.get(resource_type, resource_id)

    async def find_all(self, resource_type: str) -> list[Stored]:
        """Every resource of a type as this batch would leave it."""
        stored = {s.id: s for s in await self.viewer.repo.all(resource_type)}
        for (rtype, rid), s in self._pending.items():
            if rtype == resource_type:
                stored[rid] = s
        return list(stored.values())

    async def readable(self, resource_type: str, ref: Any, where: str) -> Stored:
        """The resource a reference names, if the caller may see it (else 422 at ``where``)."""
        rid = reference_id(ref, resource_type)
        found = await self.find(resource_type, rid) if rid else None
        if found is None or not await self.viewer.can_read(found):
            raise FhirError.of(422, "not-found", f"{where}: unknown reference", where)
        return found

    def agency_of(self, ref: Any, where: str) -> str:
        """The configured agency an Organization reference names (literal ``Organization/<id>``
        or by identifier), else 422 at ``where``."""
        agencies = self.ctx.config.agencies
        agency = reference_id(ref, "Organization")
        if (
            agency is None
            and isinstance(ref, Mapping)
            and isinstance(ref.get("identifier"), Mapping)
        ):
            ident = ref["identifier"]
            pair = (str(ident.get("system", "")), str(ident.get("value", "")))
            for a in agencies.values():
                if pair == (codes.AGENCY_SYSTEM, a.id) or pair in a.identifiers:
                    agency = a.id
        if agency is None or agency not in agencies:
            raise FhirError.of(422, "not-found", f"{where}: unknown reference", where)
        return agency

    async def link_patient(
        self, resource: dict[str, Any], element: str, path: str, purpose: str
    ) -> tuple[SourceKey, str | None]:
        """Resolve a resource's patient reference: (client record key, person id or None for
        a Patient created in this batch). The reference is rewritten to ``Patient/<person>``
        (or, before the person exists, to the client record's opaque identifier)."""
        where = f"{path}.{element}"
        ref = resource.get(element)
        if ref is None:
            raise FhirError.of(422, "required", f"{where}: required", where)
        literal = ref.get("reference") if isinstance(ref, Mapping) else None
        if isinstance(literal, str) and literal in self._patients:
            client = self._patients[literal]
            person = None
        else:
            person, client = await resolve_patient(self.viewer, ref, where, purpose)
        if person is not None:
            resource[element] = {"reference": f"Patient/{person}"}
        else:
            resource[element] = {
                "identifier": {"system": codes.RECORD_SYSTEM, "value": record_token(client)}
            }
        return client, person

    async def keep_patient(
        self, resource: dict[str, Any], old: Stored, element: str, path: str
    ) -> None:
        """An update may not move a resource to another patient."""
        where = f"{path}.{element}"
        new_ref = resource.get(element)
        if new_ref is not None:
            person = await self.viewer.person_of(old)
            given = reference_id(new_ref, "Patient")
            if given is not None and given != person:
                raise FhirError.of(422, "business-rule", f"{where}: cannot be changed", where)
            if given is None and new_ref != old.resource.get(element):
                raise FhirError.of(422, "business-rule", f"{where}: cannot be changed", where)
        resource[element] = old.resource.get(element)

    # ---- parts (the entries of a batch Bundle) --------------------------------------------

    def begin_part(self, index: int) -> None:
        """Start planning the writes of batch entry ``index`` (undone alone if it fails)."""
        self._part = Part(index)
        self._undo = []
        self._marks = (len(self._outcomes), len(self.consents))

    def end_part(self) -> Part:
        """The writes the entry begun last planned."""
        part = self._part
        assert part is not None, "no part begun"
        outcomes, consents = self._marks
        part.outcomes = self._outcomes[outcomes:]
        part.consents = self.consents[consents:]
        self._part = self._undo = None
        return part

    def undo_part(self) -> None:
        """Forget everything the entry begun last planned (it failed)."""
        for table, key, old in reversed(self._undo or ()):
            if old is _MISSING:
                table.pop(key, None)
            else:
                table[key] = old
        outcomes, consents = self._marks
        del self._outcomes[outcomes:]
        del self.consents[consents:]
        self._part = self._undo = None

    def _assign(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """``table[key] = value``, undoable while a part is planned."""
        if self._undo is not None:
            self._undo.append((table, key, table.get(key, _MISSING)))
        table[key] = value

    def _write(self, key: RecordKey, rec: Record) -> None:
        """Plan a record (the part planned now owns it; an earlier owner joins its group)."""
        part = self._part
        if part is not None:
            owner = self._record_by.get(key)
            if owner is not None and owner != part.index:
                part.after.add(owner)
            if owner != part.index:
                part.keys.append(key)
            self._assign(self._record_by, key, part.index)
        self._assign(self._records, key, rec)

    def _depend_on(self, stored: Stored) -> None:
        """The part planned now builds on a resource planned (not stored) by another part."""
        part = self._part
        if part is not None:
            owner = self._record_by.get((kind_of(stored.type), SOURCE, stored.id))
            if owner is not None and owner != part.index:
                part.after.add(owner)

    # ---- records ---------------------------------------------------------------------------

    def _put(self, stored: Stored) -> None:
        self._assign(self._pending, (stored.type, stored.id), stored)
        rec = resource_record(stored, source_system=self.source_system, received_at=self.now)
        self._write((rec.meta.kind, rec.meta.key.source, rec.meta.key.id), rec)

    def _referral(self, task: Stored, sr: Stored) -> None:
        client = {"source": task.client.source, "id": task.client.id} if task.client else None
        payload = referral_from_fhir(sr.resource, task.resource, client=client)
        meta = RecordMeta(
            kind="referral",
            key=SourceKey("fhir", task.id),
            owner=task.owner,
            provenance=Provenance(
                self.source_system, self.now, payload_hash(orjson.dumps(payload))
            ),
            version=f"{task.version:012d}.{sr.version:012d}",
        )
        self._write(("referral", "fhir", task.id), record_from_payload(meta, payload))

    async def _referrals_of_request(self, sr: Stored) -> None:
        for task in await self.find_all("Task"):
            if reference_id(task.resource.get("focus"), "ServiceRequest") == sr.id:
                self._referral(task, sr)

    # ---- Patients ----------------------------------------------------------------------------

    def _patient_key(self, resource: Mapping[str, Any], path: str) -> SourceKey:
        rid = resource.get("id")
        if isinstance(rid, str) and rid:
            return SourceKey(self.source_system, rid)
        for ident in resource.get("identifier") or ():
            if isinstance(ident, Mapping) and ident.get("value"):
                system = canonical_system(str(ident.get("system") or ""))
                value = str(ident["value"])
                return SourceKey(self.source_system, f"{system}|{value}" if system else value)
        raise FhirError.of(422, "required", f"{path}: a Patient needs an id or an identifier", path)

    def _patient_version(self, resource: Mapping[str, Any]) -> str:
        meta = resource.get("meta")
        stamp_text = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
        if not isinstance(stamp_text, str):
            if self._now_version is None:
                self._now_version = self.now.astimezone(UTC).isoformat(timespec="microseconds")
            return self._now_version
        try:
            at = datetime.fromisoformat(stamp_text.replace("Z", "+00:00"))
        except ValueError:
            at = self.now
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return at.astimezone(UTC).isoformat(timespec="microseconds")

    def create_patient(
        self, resource: Mapping[str, Any], path: str, local_url: str | None = None
    ) -> Outcome:
        """Plan a Patient as a canonical Client record owned by the caller."""
        key = self._patient_key(resource, path)
        record_key = ("client", key.source, key.id)
        if record_key in self._records:
            raise FhirError.of(400, "duplicate", f"{path}: the same Patient twice", path)
        payload = patient_to_client(resource)
        meta = RecordMeta(
            kind="client",
            key=key,
            owner=self.agency,
            provenance=Provenance(
                self.source_system, self.now, payload_hash(orjson.dumps(resource))
            ),
            version=self._patient_version(resource),
        )
        self._write(record_key, client_record(meta, payload))
        self._assign(self.patient_payloads, key, payload)
        if local_url:
            self._assign(self._patients, local_url, key)
        outcome = Outcome("Patient", 201, patient_key=key)
        self._outcomes.append(outcome)
        return outcome

    async def _existing_patients(self, query_string: str, where: str) -> list[Match]:
        query = self._query("Patient", query_string, where)
        found = await search_patients(self.viewer, query)
        return [Match(str(p["id"]), patient=p) for p in found if patient_matches(p, query)]

    # ---- conditional operations ---------------------------------------------------------

    def _query(self, resource_type: str, query_string: str, where: str) -> Query:
        allowed = (
            {"identifier", "name", "family", "given", "birthdate"}
            if resource_type == "Patient"
            else stored_params(resource_type)
        )
        params = parse_qsl(query_string.lstrip("?"), keep_blank_values=True)
        try:
            query = parse_query(params, allowed, default_count=2, max_count=2, strict=True)
        except FhirError as exc:
            raise exc.with_prefix(where) from None
        if not query.criteria:
            raise FhirError.of(400, "invalid", f"{where}: no search criteria", where)
        return query

    async def create(
        self,
        resource: dict[str, Any],
        path: str,
        *,
        if_none_exist: str | None = None,
        local_url: str | None = None,
        new_id: str | None = None,
    ) -> Outcome:
        """Plan a create (conditional on ``if_none_exist`` search criteria)."""
        rtype = str(resource["resourceType"])
        if if_none_exist:
            existing = await self._conditional_matches(
                rtype, if_none_exist, f"{path}(If-None-Exist)"
            )
            if len(existing) > 1:
                raise FhirError.of(
                    412, "multiple-matches", f"{path}: If-None-Exist matches several resources"
                )
            if existing:
                found = existing[0]
                outcome = Outcome(
                    rtype, 200, stored=found.stored, person=found.id, patient=found.patient
                )
                self._outcomes.append(outcome)
                return outcome
        if rtype == "Patient":
            return self.create_patient(resource, path, local_url)
        return await self._create_stored(rtype, dict(resource), path, new_id)

    async def _conditional_matches(self, rtype: str, query_string: str, where: str) -> list[Match]:
        if rtype == "Patient":
            return await self._existing_patients(query_string, where)
        query = self._query(rtype, query_string, where)
        found = await search_stored(self.viewer, rtype, query, await self.find_all(rtype))
        for s in found:
            if self._pending.get((s.type, s.id)) is s:
                self._depend_on(s)
        return [Match(s.id, stored=s) for s in found]

    async def conditional_update(
        self,
        resource: dict[str, Any],
        query_string: str,
        path: str,
        *,
        if_match: str | None = None,
    ) -> Outcome:
        """``PUT Type?criteria``: update the one match (``If-Match`` checked when given),
        create when none, 412 when several."""
        rtype = str(resource["resourceType"])
        existing = await self._conditional_matches(rtype, query_string, path)
        if len(existing) > 1:
            raise FhirError.of(
                412, "multiple-matches", f"{path}: the criteria match several resources"
            )
        if rtype == "Patient":
            return self.create_patient(resource, path)
        if existing:
            return await self.update(rtype, existing[0].id, resource, path, if_match=if_match)
        return await self._create_stored(rtype, dict(resource), path, None)

    # ---- stored resources -------------------------------------------------------------------

    async def _create_stored(
        self, rtype: str, resource: dict[str, Any], path: str, new_id: str | None
    ) -> Outcome:
        if rtype not in PREPARE:
            raise FhirError.of(405, "not-supported", f"{path}: {rtype} cannot be created here")
        rid = new_id or str(uuid.uuid4())
        resource["id"] = rid
        owner, client, note = await PREPARE[rtype](self, resource, path, None)
        stamp(resource, 1, self.now)
        stored = Stored(rtype, rid, 1, owner, resource, client, self.now)
        self._put(stored)
        await self._after_write(stored, path)
        outcome = Outcome(rtype, 201, stored=stored, consent_note=note)
        self._outcomes.append(outcome)
        return outcome

    async def update(
        self,
        rtype: str,
        rid: str,
        resource: dict[str, Any],
        path: str,
        *,
        if_match: str | None = None,
    ) -> Outcome:
        """Plan an update of an existing resource (``If-Match`` checked when given)."""
        if rtype not in PREPARE:
            raise FhirError.of(405, "not-supported", f"{path}: {rtype} cannot be updated here")
        old = await self.find(rtype, rid)
        if old is None or not await self.viewer.can_read(old):
            raise not_found()
        if if_match is not None and parse_etag(if_match) != old.version:
            raise FhirError(
                412,
                [
                    Issue(
                        "conflict",
                        f'{path}: version conflict, the current version is W/"{old.version}"',
                    )
                ],
                {"ETag": old.etag},
            )
        given_id = resource.get("id")
        if given_id is not None and given_id != rid:
            raise FhirError.of(
                400, "invalid", f"{path}.id: must be the id in the URL", f"{path}.id"
            )
        resource = dict(resource)
        resource["id"] = rid
        owner, client, note = await PREPARE[rtype](self, resource, path, old)
        version = old.version + 1
        stamp(resource, version, self.now)
        stored = Stored(rtype, rid, version, owner, resource, client, self.now)
        self._put(stored)
        await self._after_write(stored, path)
        outcome = Outcome(rtype, 200, stored=stored, consent_note=note)
        self._outcomes.append(outcome)
        return outcome

    async def _after_write(self, stored: Stored, path: str) -> None:
        if stored.type == "Task":
            sr_id = reference_id(stored.resource.get("focus"), "ServiceRequest")
            sr = await self.find("ServiceRequest", sr_id) if sr_id else None
            if sr is not None:
                self._referral(stored, sr)
        elif stored.type == "ServiceRequest" and stored.version > 1:
            # A new request has a fresh id: no Task can focus it yet (a Task's focus must be
            # an existing request, and creates of Tasks run after those of requests), so
            # only an update needs the scan of the Tasks.
            await self._referrals_of_request(stored)

    # ---- commit -----------------------------------------------------------------------------

    async def commit(self, confirm: Callable[[], Awaitable[None]] | None = None) -> list[Outcome]:
        """Store everything planned in one transaction; resolve Patient ids; apply consents.

        ``confirm`` (the Bundle's validation, when it runs alongside) is awaited before
        anything commits; what it raises leaves nothing stored.
        """
        records = list(self._records.values())
        if records:
            result = await self.ctx.engine.ingest(records, before_commit=confirm)
            by_key = dict(zip(self._records, result.outcomes, strict=True))
            await self._resolve_patients(self._outcomes, result.persons, by_key)
        elif confirm is not None:
            await confirm()
        await self._after_commit(self.consents)
        return self._outcomes

    async def commit_parts(
        self,
        parts: Sequence[Part],
        check: Callable[[tuple[int, ...]], Awaitable[None]] | None = None,
    ) -> list[StoredGroup]:
        """Store the parts of a batch Bundle: each group of parts that must be stored
        together (:func:`part_groups`) in a savepoint of its own, all in one transaction with
        batched statements while nothing fails (``ctx.engine.ingest_many``), so a group that
        fails is rolled back alone. ``check(indices)`` (the entries' validation, when it runs
        alongside) is awaited before a group commits; what it raises leaves that group
        unstored. Consents of stored parts are applied. One answer per group, in order."""
        answers: list[StoredGroup] = []
        requests: list[IngestRequest] = []
        storing: list[tuple[tuple[int, ...], list[RecordKey], list[Part]]] = []
        stored: list[Part] = []
        for group in part_groups(parts):
            indices = tuple(p.index for p in group)
            keys = list(dict.fromkeys(k for p in group for k in p.keys))
            if not keys:  # nothing to write (a conditional create that found its match)
                answers.append((indices, None))
                stored.extend(group)
                continue
            before = _bound(check, indices) if check is not None else None
            requests.append(IngestRequest([self._records[k] for k in keys], before_commit=before))
            storing.append((indices, keys, group))
        results = await self._ingest_many(requests)
        for (indices, keys, group), result in zip(storing, results, strict=True):
            if isinstance(result, Exception):
                answers.append((indices, result))
                continue
            answers.append((indices, None))
            stored.extend(group)
            by_key = dict(zip(keys, result.outcomes, strict=True))
            outcomes = [o for p in group for o in p.outcomes]
            await self._resolve_patients(outcomes, result.persons, by_key)
        await self._after_commit([c for p in stored for c in p.consents])
        return answers

    async def _ingest_many(self, requests: list[IngestRequest]) -> list[IngestResult | Exception]:
        """``ctx.engine.ingest_many``, with the exception of a lone request as its answer."""
        if not requests:
            return []
        try:
            return list(await self.ctx.engine.ingest_many(requests))
        except Exception as exc:
            if len(requests) == 1:
                return [exc]
            raise

    async def _after_commit(self, consents: list[ConsentRecord]) -> None:
        """Apply the stored Consents to the gate; drop what this request read before."""
        if consents:
            await self.ctx.import_consents(consents)
        self.viewer.repo.forget()
        self.viewer.key_persons.clear()

    async def _resolve_patients(
        self,
        planned: Sequence[Outcome],
        persons: Mapping[str, str],
        outcomes: Mapping[tuple[str, str, str], str],
    ) -> None:
        wanted = [o for o in planned if o.patient_key is not None]
        missing = [
            o.patient_key
            for o in wanted
            if o.patient_key is not None and str(o.patient_key) not in persons
        ]
        looked_up = await self.viewer.repo.persons_of(missing) if missing else {}
        for o in wanted:
            key = o.patient_key
            assert key is not None
            o.person = persons.get(str(key)) or looked_up.get(key)
            o.status = 201 if outcomes.get(("client", key.source, key.id)) == "inserted" else 200


def _bound(
    check: Callable[[tuple[int, ...]], Awaitable[None]], indices: tuple[int, ...]
) -> Callable[[], Awaitable[None]]:
    """``check(indices)`` as a ``before_commit`` of one group of parts."""

    async def before() -> None:
        """The group's check."""
        await check(indices)

    return before


def part_groups(parts: Sequence[Part]) -> list[list[Part]]:
    """The parts in groups that must be stored together: a part joins the group of every
    earlier part whose records it overwrites or whose planned resources it read (in order of
    their first part; each group in entry order)."""
    parent = {p.index: p.index for p in parts}

    def root(i: int) -> int:
        """The representative of part ``i``'s group."""
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for part in parts:
        for other in part.after:
            if other in parent:
                parent[root(other)] = root(part.index)
    groups: dict[int, list[Part]] = {}
    for part in parts:
        groups.setdefault(root(part.index), []).append(part)
    return list(groups.values())
