"""The engine: the flow of a record from intake to the outbox, in one transaction.

``ingest`` stores records idempotently, links clients to persons, routes changed records to
the feeds that want them and passes each through the consent gate, writing the audit entry
and the outbox entry together. Inbound acknowledgement happens after ``ingest`` returns,
i.e. after the commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from consent import ClientFacts
from hub.core.gate import AuditWriter, ConsentGate, Disclosure
from hub.core.group_commit import GroupCommit
from hub.core.identity import BlindIndex, decide_link, match_keys
from hub.core.ids import new_person_id
from hub.core.ports import (
    OutboxRow,
    RecordRow,
    Store,
    StoredState,
    Transaction,
    UpsertOutcome,
    classify,
)
from hub.core.records import (
    FLAG_DV_UNSAID,
    FLAG_FLEEING_DV,
    FLAG_NOT_FLEEING_DV,
    Client,
    Provenance,
    Record,
    RecordMeta,
    SourceKey,
    record_client,
)
from hub.core.routing import FeedSpec
from hub.core.rows import record_to_row, row_to_record, stamp_text
from hub.core.serialize import record_from_payload, record_payload

log = logging.getLogger("hub.engine")

Clock = Callable[[], datetime]

WEAK_CANDIDATES = 8
"""At most this many persons are named as candidates by one weak match key (a common name)."""


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """Identity of an inbound message for de-duplication (sender, control id, content hash)."""

    sender: str
    control_id: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """One :meth:`Engine.ingest` call's arguments, for :meth:`Engine.ingest_many`."""

    records: Sequence[Record]
    message: InboundMessage | None = None
    response: bytes = b""
    before_commit: Callable[[], Awaitable[None]] | None = None
    """Awaited in the transaction once the records are written and routed; raising rolls
    them back (a check that ran alongside, such as a FHIR Bundle's validation). In a group
    whose joint attempt fails it is awaited again when the request is retried alone, so it
    must give the same answer each time (awaiting one future does)."""


@dataclass(slots=True)
class IngestResult:
    """What one ``ingest`` call did."""

    outcomes: list[UpsertOutcome] = field(default_factory=list)
    persons: dict[str, str] = field(default_factory=dict)
    enqueued: int = 0
    withheld: int = 0
    reviews: int = 0
    duplicate: bool = False
    response: bytes = b""

    def counts(self) -> dict[str, int]:
        """Outcomes counted by kind (inserted, updated, unchanged, stale)."""
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o] = out.get(o, 0) + 1
        return out


def idempotency_key(record: Record, feed: str, recipient: str, data_hash: str = "") -> str:
    """One key per (record version and content, recipient, feed): receivers de-duplicate on it.

    The content hash is part of it because senders re-send corrected data under the same
    version stamp (two ADT events in the same second).
    """
    m = record.meta
    raw = f"{m.kind}|{m.key.source}|{m.key.id}|{m.version}|{data_hash}|{recipient}|{feed}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def keep_restrictions(
    record: Record, row: RecordRow, state: StoredState
) -> tuple[Record, RecordRow]:
    """A restriction once placed on a record stays on its later versions (fail closed).

    A sender that restricted a record (an HL7 ARV segment, a VSP flag) and later sends an
    update without repeating it has not lifted the restriction; an administrator does.
    """
    old = frozenset(filter(None, state.sensitivity.split(",")))
    restricted = row.restricted or state.restricted
    sensitivity = record.meta.sensitivity | old
    if restricted == row.restricted and sensitivity == record.meta.sensitivity:
        return record, row
    meta = dataclasses.replace(record.meta, restricted=restricted, sensitivity=sensitivity)
    new_row = dataclasses.replace(
        row, restricted=restricted, sensitivity=",".join(sorted(sensitivity))
    )
    return dataclasses.replace(record, meta=meta), new_row  # type: ignore[type-var]


def record_ref(record: Record) -> str:
    """How the audit log names a record (kind/source/id: ids only, no client data)."""
    return f"{record.meta.kind}/{record.meta.key}"


class _HeldRecords:
    """The records each person holds of the kinds some feed's ``person_has`` asks about:
    looked up once per person in a routing pass (the batch's own writes included)."""

    def __init__(self, tx: Transaction, kinds: Sequence[str]) -> None:
        self._tx = tx
        self._kinds = kinds
        self._held: dict[str, list[tuple[str, str, str]]] = {}

    async def keys(self, person: str) -> list[tuple[str, str, str]]:
        """(kind, source, source id) of each such record of the person."""
        found = self._held.get(person)
        if found is None:
            rows = await self._tx.records_of_person(person, self._kinds) if self._kinds else []
            found = self._held[person] = [(r.kind, r.source, r.source_id) for r in rows]
        return found

    async def kinds(self, person: str) -> list[str]:
        """The kinds of those records."""
        return [kind for kind, _, _ in await self.keys(person)]


class Engine:
    """Intake, identity, routing and the gate, over one store."""

    def __init__(
        self,
        store: Store,
        gate: ConsentGate,
        blind: BlindIndex,
        feeds: Iterable[FeedSpec] = (),
        clock: Clock = utcnow,
        on_change: Callable[[int], None] | None = None,
        on_ingest: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.gate = gate
        self.blind = blind
        self.feeds = list(feeds)
        self.clock = clock
        self.on_change = on_change
        self.on_ingest = on_ingest
        self.grouped = GroupCommit(self)
        """``ingest`` for listeners with many connections: concurrent calls share a commit."""

    # ---- intake --------------------------------------------------------------------------

    async def ingest(
        self,
        records: Sequence[Record],
        *,
        message: InboundMessage | None = None,
        response: bytes = b"",
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> IngestResult:
        """Store, link, route and gate records in one transaction.

        With ``message``, a re-sent message (same sender, control id and content) changes
        nothing and returns the response given the first time; a control id reused for
        different content is processed as new (and logged). ``before_commit`` is awaited
        last inside the transaction: what it raises rolls everything back and is raised.
        """
        results = await self.ingest_many([IngestRequest(records, message, response, before_commit)])
        result = results[0]
        if isinstance(result, BaseException):
            raise result
        return result

    async def ingest_many(
        self, requests: Sequence[IngestRequest]
    ) -> list[IngestResult | Exception]:
        """Several :meth:`ingest` calls in one transaction; a result (or exception) each.

        First all together, as one batch of records (batched statements); if that fails,
        each alone in a savepoint of its own, so the request at fault is rolled back alone
        and its exception takes its place in the returned list while the others commit. An
        exception from the commit itself is raised (then nothing was stored). With one
        request there is no savepoint: its exception is raised.
        """
        results: list[IngestResult | Exception] = []
        try:
            async with self.store.transaction() as tx:
                if len(requests) == 1:
                    results.append(await self._ingest_request(tx, requests[0]))
                else:
                    together = None
                    try:
                        async with tx.savepoint():
                            together = await self._ingest_together(tx, requests)
                    except Exception:
                        # Find the message at fault: each alone, in a savepoint of its own.
                        self.gate.forget_people()
                    if together is not None:
                        results.extend(together)
                    else:
                        results.extend(await self._ingest_each(tx, requests))
        except BaseException:
            # Cached consent look-ups may have seen links that were just rolled back.
            self.gate.forget_people()
            raise
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, Exception):
                continue
            if self.on_ingest is not None:
                for rec, outcome in zip(request.records, result.outcomes, strict=False):
                    self.on_ingest(rec.meta.kind, outcome)
            if result.enqueued and self.on_change is not None:
                self.on_change(result.enqueued)
        return results

    async def _ingest_each(
        self, tx: Transaction, requests: Sequence[IngestRequest]
    ) -> list[IngestResult | Exception]:
        """Each request in a savepoint of its own: one that fails is rolled back alone."""
        results: list[IngestResult | Exception] = []
        for request in requests:
            try:
                async with tx.savepoint():
                    results.append(await self._ingest_request(tx, request))
            except Exception as exc:
                self.gate.forget_people()
                results.append(exc)
        return results

    async def _ingest_together(
        self, tx: Transaction, requests: Sequence[IngestRequest]
    ) -> list[IngestResult] | None:
        """Several messages as one batch of records (batched statements), each with its own
        result; None (nothing done) when two of them carry the same sender and control id,
        which only the one-by-one path orders correctly."""
        keys = [(m.sender, m.control_id) for r in requests if (m := r.message) is not None]
        if len(set(keys)) != len(keys):
            return None
        seen = await tx.seen_messages(keys) if keys else {}
        results: list[IngestResult] = []
        records: list[Record] = []
        tally: dict[int, IngestResult] = {}
        remember: list[tuple[str, str, str, bytes]] = []
        for request in requests:
            result = IngestResult()
            results.append(result)
            message = request.message
            if message is not None:
                before = seen.get((message.sender, message.control_id))
                if before is not None:
                    if before[0] == message.content_hash:
                        result.duplicate = True
                        result.response = before[1]
                        continue
                    log.info(
                        "control id reused for different content; processing as new",
                        extra={"sender": message.sender, "control_id": message.control_id},
                    )
                remember.append(
                    (message.sender, message.control_id, message.content_hash, request.response)
                )
                result.response = request.response
            for rec in request.records:
                tally[id(rec)] = result
                records.append(rec)
        group = IngestResult()
        await self._ingest(tx, records, group, tally)
        for request, result in zip(requests, results, strict=True):
            if not result.duplicate:
                # Each caller learns the persons of its own records only.
                refs = {str(c) for rec in request.records if (c := record_client(rec))}
                result.persons = {r: p for r in refs if (p := group.persons.get(r)) is not None}
        await tx.remember_messages(remember)
        for request in requests:
            if request.before_commit is not None:
                await request.before_commit()
        return results

    async def _ingest_request(self, tx: Transaction, request: IngestRequest) -> IngestResult:
        """One message (or batch of records) inside the caller's transaction, then its
        ``before_commit``."""
        result = await self._ingest_message(tx, request)
        if request.before_commit is not None:
            await request.before_commit()
        return result

    async def _ingest_message(self, tx: Transaction, request: IngestRequest) -> IngestResult:
        result = IngestResult()
        message = request.message
        if message is not None:
            seen = await tx.seen_message(message.sender, message.control_id)
            if seen is not None:
                if seen[0] == message.content_hash:
                    result.duplicate = True
                    result.response = seen[1]
                    return result
                log.info(
                    "control id reused for different content; processing as new",
                    extra={"sender": message.sender, "control_id": message.control_id},
                )
        await self._ingest(tx, request.records, result)
        if message is not None:
            await tx.remember_message(
                message.sender, message.control_id, message.content_hash, request.response
            )
            result.response = request.response
        return result

    async def _ingest(
        self,
        tx: Transaction,
        records: Sequence[Record],
        result: IngestResult,
        tally: dict[int, IngestResult] | None = None,
    ) -> None:
        """Store, link and route ``records``; what happened is counted on ``result``, or, for
        a record in ``tally`` (by ``id``), on the result of the message it came in."""
        datas = [record_payload(r) for r in records]
        # A version is stamped with the time it is stored (not the time its source says it
        # was received: an import stamps its start), so scheduled feeds, which read changes
        # in that order, never find a version stored behind their cursor.
        stored_at = self.clock()
        rows = [record_to_row(r, d, stored_at) for r, d in zip(records, datas, strict=True)]
        states = await tx.stored_states(rows)
        changed: list[tuple[Record, RecordRow]] = []
        linked: dict[str, str] = {}
        data_of: dict[int, dict[str, Any]] = {}
        inserted: set[tuple[str, str, str]] = set()
        for rec, row, data in zip(records, rows, datas, strict=True):
            key = (row.kind, row.source, row.source_id)
            state = states.get(key)
            outcome = classify(row, state)
            (tally[id(rec)] if tally else result).outcomes.append(outcome)
            if outcome not in ("inserted", "updated"):
                continue
            if state is not None:
                kept, row = keep_restrictions(rec, row, state)
                if tally and kept is not rec:
                    tally[id(kept)] = tally[id(rec)]
                rec = kept
                if state.person_id is not None:
                    linked[f"{row.source}/{row.source_id}"] = state.person_id
            states[key] = StoredState.written(row)
            changed.append((rec, row))
            data_of[id(rec)] = data
            if outcome == "inserted":
                inserted.add(key)
        if not changed:
            return
        clients: list[tuple[Client, RecordRow]] = []
        for rec, row in changed:
            if isinstance(rec, Client):
                clients.append((rec, row))
        # Links are decided before the write, so a new client row is written linked.
        persons, links = await self._link_clients(tx, clients, linked, result, tally)
        await tx.write_records(
            [row for _, row in changed],
            {link[:3]: link[3] for link in links if link[:3] in inserted},
        )
        links = await self._links_as_stored(tx, links, inserted, persons)
        await tx.link_records([link for link in links if link[:3] in inserted], keys_only=True)
        await tx.link_records([link for link in links if link[:3] not in inserted])
        await self._resolve_persons(tx, changed, persons)
        result.persons = persons
        await self._record_facts(tx, changed, persons)
        if any(f.on_change for f in self.feeds):
            await self._route(tx, changed, persons, result, data_of, tally, inserted)

    async def _link_clients(
        self,
        tx: Transaction,
        clients: Sequence[tuple[Client, RecordRow]],
        linked: dict[str, str],
        result: IngestResult,
        tally: dict[int, IngestResult] | None = None,
    ) -> tuple[dict[str, str], list[tuple[str, str, str, str, Sequence[str]]]]:
        """Decide the person of each client record, in batch: record-key → person, and the
        links (kind, source, source_id, person, blind keys) for the caller to write.

        Creates new persons, review items and birth dates. A record that is already linked
        keeps its link (links change only through review); its new match keys are added to
        its person.
        """
        persons: dict[str, str] = {}
        links: list[tuple[str, str, str, str, Sequence[str]]] = []
        if not clients:
            return persons, links
        keyed = [(rec, row, match_keys(rec, self.blind)) for rec, row in clients]
        undecided = [mk for _, row, mk in keyed if f"{row.source}/{row.source_id}" not in linked]
        decisive = [k for mk in undecided for k in mk.strong + mk.pair]
        weak = [k for mk in undecided for k in mk.weak]
        found: dict[str, set[str]] = {}
        if decisive or weak:
            found = await tx.persons_with_keys(decisive, capped=weak)
        fresh: list[str] = []
        facts: list[tuple[str, str]] = []
        reviews: list[tuple[str, Sequence[str], str]] = []
        for rec, row, mk in keyed:
            ref = f"{row.source}/{row.source_id}"
            person = linked.get(ref)
            if person is None:
                decision = decide_link(mk, found)
                person = decision.person
                if person is None:
                    person = new_person_id()
                    fresh.append(person)
                # A later version of the same record in this batch keeps this link.
                linked[ref] = person
                if decision.review_candidates:
                    reviews.append(
                        (f"{row.kind}/{ref}", decision.review_candidates, decision.reason)
                    )
                    (tally[id(rec)] if tally else result).reviews += 1
                for k in mk.all():
                    holders = found.setdefault(k, set())
                    if len(holders) < WEAK_CANDIDATES or k not in mk.weak:
                        holders.add(person)
            links.append((row.kind, row.source, row.source_id, person, mk.all()))
            persons[ref] = person
            birth = rec.birth_date_text()
            if birth is not None:
                facts.append((person, birth))
            self.gate.forget_person(person)
        await tx.insert_persons(fresh)
        await tx.add_reviews(reviews)
        await tx.set_birth_dates(facts)
        return persons, links

    async def _links_as_stored(
        self,
        tx: Transaction,
        links: list[tuple[str, str, str, str, Sequence[str]]],
        inserted: Set[tuple[str, str, str]],
        persons: dict[str, str],
    ) -> list[tuple[str, str, str, str, Sequence[str]]]:
        """The links of the client records this batch inserted, as the store holds them.

        Two transactions may insert the same new client at once (PostgreSQL, two senders):
        both link it, and the one that commits second finds the row written with the
        other's person. It takes that person (for the record's keys, its routing and its
        audit entries) instead of one nobody is linked to."""
        new = [link for link in links if link[0] == "client" and link[:3] in inserted]
        by_source: dict[str, list[str]] = {}
        for _kind, source, source_id, _person, _keys in new:
            by_source.setdefault(source, []).append(source_id)
        stored: dict[tuple[str, str], str] = {}
        for source, ids in by_source.items():
            for source_id, person in (await tx.persons_of_clients(source, ids)).items():
                stored[(source, source_id)] = person
        out = []
        for link in links:
            kind, source, source_id, person, keys = link
            now = stored.get((source, source_id), person) if kind == "client" else person
            if now != person:
                persons[f"{source}/{source_id}"] = now
                link = (kind, source, source_id, now, keys)
            out.append(link)
        return out

    async def _resolve_persons(
        self, tx: Transaction, changed: list[tuple[Record, RecordRow]], persons: dict[str, str]
    ) -> None:
        """Find the person of each non-client record through its client's link."""
        wanted: dict[str, list[str]] = {}
        for rec, _row in changed:
            client = record_client(rec)
            if client is not None and str(client) not in persons:
                wanted.setdefault(client.source, []).append(client.id)
        for source, ids in wanted.items():
            for cid, person in (await tx.persons_of_clients(source, ids)).items():
                persons[f"{source}/{cid}"] = person

    async def _record_facts(
        self, tx: Transaction, changed: list[tuple[Record, RecordRow]], persons: dict[str, str]
    ) -> None:
        """Keep each record's word on its client fleeing DV, dated (the word of a record
        deleted, or now saying nothing definite, is withdrawn); the client's status is the
        latest word of each source, and any source saying fleeing counts
        (:meth:`~hub.core.ports.Transaction.set_dv_status`)."""
        for rec, _row in changed:
            meta = rec.meta
            flags = meta.flags
            client = record_client(rec)
            if not flags or client is None:
                continue
            fleeing: bool | None
            if FLAG_FLEEING_DV in flags:
                fleeing = True
            elif FLAG_NOT_FLEEING_DV in flags:
                fleeing = False
            elif FLAG_DV_UNSAID in flags:
                fleeing = None
            else:
                continue
            if meta.deleted:
                fleeing = None
            said_by = f"{meta.kind}/{meta.key.id}"
            await tx.set_dv_status(client.source, client.id, fleeing, meta.as_of, said_by)
            person = persons.get(str(client))
            if person is not None:
                self.gate.forget_person(person)

    async def _route(
        self,
        tx: Transaction,
        changed: list[tuple[Record, RecordRow]],
        persons: dict[str, str],
        result: IngestResult,
        data_of: dict[int, dict[str, Any]],
        tally: dict[int, IngestResult] | None = None,
        inserted: Set[tuple[str, str, str]] = frozenset(),
    ) -> None:
        """Pass what the batch changed through the gate for every on-change feed that wants
        it, and queue what may be released.

        Two kinds of record the batch did not change are routed with it: records that
        arrived before their client record (their person was unknown then), once the
        client is stored; and a person's records for a feed asking for persons who hold a
        kind of record (``person_has``), once the person's first such record arrives.
        """
        audit = AuditWriter(tx, batch=True)
        now = self.clock()
        feeds = [f for f in self.feeds if f.on_change]
        routed = {kind for f in feeds for kind in f.kinds}
        # (record, row, person, the one feed it is for; None: every feed that wants it)
        work: list[tuple[Record, RecordRow, str, FeedSpec | None]] = []
        for rec, row in changed:
            client = record_client(rec)
            person = persons.get(str(client)) if client else None
            if person is not None:
                work.append((rec, row, person, None))
        in_batch = {(row.kind, row.source, row.source_id) for _, row in changed}
        work += await self._arrived_before_their_client(
            tx, changed, persons, routed, in_batch, inserted
        )
        held = _HeldRecords(tx, sorted({kind for f in feeds for kind in f.person_has}))
        work += await self._newly_qualified(tx, feeds, work, held, in_batch, inserted)
        work = [item for item in work if item[0].meta.kind in routed]
        people = {person for _, _, person, _ in work}
        # What the gate needs of every person in the batch, in two queries for all of them.
        facts_of = await self.gate.facts_of(tx, people)
        await self.gate.load_people(tx, people)
        queued: list[OutboxRow] = []
        for rec, row, person, only in work:
            for feed in feeds if only is None else (only,):
                if rec.meta.kind not in feed.kinds:
                    continue
                kinds = await held.kinds(person) if feed.person_has else ()
                if not feed.wants(rec, kinds):
                    continue
                if person not in facts_of:  # no persons row: nothing known of them
                    facts_of[person] = ClientFacts(None, False)
                item = await self.prepare_delivery(
                    tx,
                    audit,
                    feed,
                    rec,
                    person,
                    now,
                    facts_of[person],
                    row.payload_hash,
                    data_of.get(id(rec)),
                )
                counted = (tally.get(id(rec)) if tally else None) or result
                if item is None:
                    counted.withheld += 1
                else:
                    counted.enqueued += 1
                    queued.append(item)
        await audit.flush()
        await tx.enqueue_many(queued)

    async def _arrived_before_their_client(
        self,
        tx: Transaction,
        changed: list[tuple[Record, RecordRow]],
        persons: dict[str, str],
        routed: Set[str],
        in_batch: Set[tuple[str, str, str]],
        inserted: Set[tuple[str, str, str]],
    ) -> list[tuple[Record, RecordRow, str, FeedSpec | None]]:
        """Stored records about the client records this batch inserted (an enrollment or an
        encounter that came first): never routed, since their person was unknown."""
        new_clients = [
            (row.source, row.source_id)
            for _, row in changed
            if row.kind == "client" and (row.kind, row.source, row.source_id) in inserted
        ]
        kinds = sorted(routed - {"client"})
        if not new_clients or not kinds:
            return []
        out: list[tuple[Record, RecordRow, str, FeedSpec | None]] = []
        for row in await tx.records_of_clients(new_clients, kinds):
            person = persons.get(f"{row.client_source}/{row.client_source_id}")
            if person is not None and (row.kind, row.source, row.source_id) not in in_batch:
                out.append((row_to_record(row), row, person, None))
        return out

    async def _newly_qualified(
        self,
        tx: Transaction,
        feeds: Sequence[FeedSpec],
        work: Sequence[tuple[Record, RecordRow, str, FeedSpec | None]],
        held: _HeldRecords,
        in_batch: Set[tuple[str, str, str]],
        inserted: Set[tuple[str, str, str]],
    ) -> list[tuple[Record, RecordRow, str, FeedSpec | None]]:
        """For each ``person_has`` feed, the stored records of a person whose first record of
        the kinds it asks about is in this batch: the person qualifies only now, so what the
        feed takes of them was not routed to it when it arrived."""
        out: list[tuple[Record, RecordRow, str, FeedSpec | None]] = []
        routed_now = {(row.kind, row.source, row.source_id) for _, row, _, _ in work}
        for feed in feeds:
            if not feed.person_has:
                continue
            persons = {p for rec, _, p, _ in work if rec.meta.kind in feed.person_has}
            for person in sorted(persons):
                holding = [k for k in await held.keys(person) if k[0] in feed.person_has]
                if not holding or not all(k in inserted for k in holding):
                    continue  # held such a record before: routed to the feed as it came
                for row in await tx.records_of_person(person, sorted(feed.kinds)):
                    key = (row.kind, row.source, row.source_id)
                    if key not in in_batch and key not in routed_now:
                        out.append((row_to_record(row), row, person, feed))
        return out

    async def prepare_delivery(
        self,
        tx: Transaction,
        audit: AuditWriter,
        feed: FeedSpec,
        record: Record,
        person: str,
        now: datetime,
        facts: ClientFacts | None = None,
        data_hash: str = "",
        data: dict[str, Any] | None = None,
    ) -> OutboxRow | None:
        """Pass one record through the gate for one feed: the outbox row to queue (with its
        audit entry appended to ``audit``), or None when nothing may be released.

        ``data`` is ``record_payload(record)`` when the caller has it already."""
        disclosure = await self.gate.disclose(
            tx,
            audit,
            record=record,
            person_id=person,
            recipient=feed.recipient,
            purpose=feed.purpose,
            categories=feed.categories,
            at=now,
            record_ref=record_ref(record),
            facts=facts,
            data=data,
            queued=True,
        )
        if disclosure.payload is None:
            return None
        stamp = stamp_text(now)
        return OutboxRow(
            id=0,
            feed=feed.name,
            recipient=feed.recipient,
            person_id=person,
            record_kind=record.meta.kind,
            record_source=record.meta.key.source,
            record_source_id=record.meta.key.id,
            record_version=record.meta.version,
            idempotency_key=idempotency_key(record, feed.name, feed.recipient, data_hash),
            status="pending",
            attempts=0,
            next_attempt_at=stamp,
            created_at=stamp,
            audit_seq=disclosure.audit.seq,
            payload=orjson.dumps(disclosure.payload),
        )

    # ---- reads by another agency ----------------------------------------------------------

    async def disclose_person(
        self,
        person_id: str,
        *,
        recipient: str,
        purpose: str,
        kinds: Sequence[str] | None = None,
        categories: frozenset[str] | None = None,
        withheld: dict[str, int] | None = None,
    ) -> list[tuple[Record, dict[str, Any]]]:
        """Every record of a person the recipient may see, each decision audited: pairs of
        the record rebuilt from what was released (withheld fields empty) and that payload.

        This is the path for API reads, query answers and exports: a record owned by the
        recipient passes as ``SAME_AGENCY``; everything else needs a permit. ``withheld``,
        when given, counts the records withheld per source (counts only: nothing about a
        withheld record leaves the core).
        """
        released = await self.released_rows(
            person_id,
            recipient=recipient,
            purpose=purpose,
            kinds=kinds,
            categories=categories,
            withheld=withheld,
        )
        return [(rec, payload) for rec, payload, _row in released]

    async def released_rows(
        self,
        person_id: str,
        *,
        recipient: str,
        purpose: str,
        kinds: Sequence[str] | None = None,
        categories: frozenset[str] | None = None,
        withheld: dict[str, int] | None = None,
        keys: Sequence[tuple[str, str, str]] | None = None,
        keep: Callable[[RecordRow], bool] | None = None,
    ) -> list[tuple[Record, dict[str, Any], RecordRow]]:
        """As :meth:`disclose_person`, with each released record's stored row.

        For writers of a source's own format (a HUD CSV export) that keep columns the
        canonical record does not model; the writer must still blank every column whose
        category the released payload does not carry.

        With ``keys`` (kind, source, source id), the stored records of those keys are
        decided on instead of the person's live records: deleted ones too (a delta export
        tells a recipient of a deletion only as the gate releases the record as it stood).
        ``keep``, read in the deciding transaction, picks the rows decided on.
        """
        out: list[tuple[Record, dict[str, Any], RecordRow]] = []
        now = self.clock()
        async with self.store.transaction() as tx:
            audit = AuditWriter(tx, batch=True)
            if keys is None:
                rows = await tx.records_of_person(person_id, kinds)
            else:
                found = await tx.records_by_keys(keys)
                rows = [row for key in keys if (row := found.get(key)) is not None]
            for row in rows if keep is None else filter(keep, rows):
                rec = row_to_record(row)
                d = await self.gate.disclose(
                    tx,
                    audit,
                    record=rec,
                    person_id=person_id,
                    recipient=recipient,
                    purpose=purpose,
                    categories=categories,
                    at=now,
                    record_ref=record_ref(rec),
                )
                if d.payload is not None:
                    # Hand out only what was released: the record rebuilt from the payload.
                    out.append((record_from_payload(rec.meta, d.payload), d.payload, row))
                elif withheld is not None:
                    withheld[rec.meta.key.source] = withheld.get(rec.meta.key.source, 0) + 1
            await audit.flush()
        return out

    async def redisclose(
        self, tx: Transaction, item: OutboxRow, purpose: str, categories: Any
    ) -> Disclosure:
        """Re-check a queued delivery at send time against the consent in force now.

        Raises ``LookupError`` when the record is gone. See :meth:`redisclose_many`.
        """
        audit = AuditWriter(tx, batch=True)
        [checked] = await self.redisclose_many(tx, audit, [item], purpose, categories)
        await audit.flush()
        if checked is None:
            raise LookupError(
                f"record {item.record_kind}/{item.record_source}/{item.record_source_id} is gone"
            )
        return checked[0]

    async def redisclose_many(
        self,
        tx: Transaction,
        audit: AuditWriter,
        items: Sequence[OutboxRow],
        purpose: str,
        categories: Any,
    ) -> list[tuple[Disclosure, RecordMeta] | None]:
        """Re-check queued deliveries at send time (one gate pass and audit entry each).

        The entries go to ``audit``, which the caller flushes before its transaction ends.
        The data decided on is what was queued (that version, already minimised); the meta
        is the stored record's now (owner, restriction, sensitivity). Per item: None when the
        record is gone (not stored, or deleted since it was queued), else the decision and
        the meta it was made with: the record as it may be sent is
        ``record_from_payload(meta, disclosure.payload)`` (nothing may be sent when the
        payload is None). The record is not built here: a sink may not need it.
        """
        heads = await tx.record_heads(
            [(i.record_kind, i.record_source, i.record_source_id) for i in items]
        )
        people = [i.person_id for i in items]
        facts_of = await self.gate.facts_of(tx, people)
        await self.gate.load_people(tx, people)
        now = self.clock()
        out: list[tuple[Disclosure, RecordMeta] | None] = []
        for item in items:
            head = heads.get((item.record_kind, item.record_source, item.record_source_id))
            if head is None or head.deleted:
                # Deleted at its source since it was queued (entered in error, merged away):
                # gone, as for every other reader; nothing of it is sent.
                out.append(None)
                continue
            # Decide on what was queued (that version, already minimised) with the meta now.
            meta = RecordMeta(
                kind=item.record_kind,
                key=SourceKey(item.record_source, item.record_source_id),
                owner=head.owner,
                provenance=Provenance(
                    head.source_system, datetime.fromisoformat(head.received_at), head.raw_hash
                ),
                version=item.record_version,
                deleted=head.deleted,
                sensitivity=frozenset(filter(None, head.sensitivity.split(","))),
                restricted=head.restricted,
                flags=frozenset(filter(None, head.flags.split(","))),
            )
            disclosure = await self.gate.disclose_data(
                tx,
                audit,
                meta=meta,
                data=orjson.loads(item.payload),
                person_id=item.person_id,
                recipient=item.recipient,
                purpose=purpose,
                categories=categories,
                at=now,
                record_ref=f"{meta.kind}/{meta.key}",  # as record_ref() names it
                facts=facts_of.get(item.person_id) or ClientFacts(None, False),
            )
            out.append((disclosure, meta))
        return out
