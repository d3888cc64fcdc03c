"""The consent gate: the one function every disclosure passes.

Whenever any part of a record becomes available to an agency other than its owner — a feed
delivery (at enqueue and again at send time), an API read, an export file — the core calls
:meth:`ConsentGate.disclose`. It decides with the MPA policy (``consent``), redacts the payload
to what the decision releases, and appends the decision to the hash-chained audit log in the
caller's transaction. Plugins never call the policy themselves and cannot skip this: the
only way to get another agency's data out of the core is through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from consent import (
    Agency,
    ClientFacts,
    ConsentPolicy,
    ConsentRecord,
    Decision,
    DecisionRequest,
    evaluate,
    parse_consent,
    redact,
)
from consent.audit import AuditEntry, canonical_json, make_entry
from consent.categories import DEFAULT_CATEGORIES, SENSITIVE_CATEGORIES
from consent.decision import NOTHING_LEFT, VSP_RECORD
from consent.value_types import value_type
from hub.core.identity import BlindIndex, identifier_key, identifier_value_key
from hub.core.partial_dates import last_day, parse_iso
from hub.core.ports import AuditRow, Transaction
from hub.core.records import RECORD_TYPES, Record, RecordMeta, SourceRow, payload_hash
from hub.core.serialize import record_from_payload, record_payload

log = logging.getLogger("hub.gate")

QUEUED_FOR_DELIVERY = "QUEUED_FOR_DELIVERY"
"""A reason the audit entry of a permit given when a record is queued for a feed carries:
nothing has left the hub then. The send-time re-check's entry is the disclosure, so the
accounting of disclosures (``hub audit disclosures``) leaves queue-time permits out."""

_NON_CLINICAL = frozenset({"identity", "demographics"})
_WITHHELD = "__withheld__"
"""The category the clinical fields of a sensitive record get while its sensitive
categories are not released: no decision releases it, so they are left out."""
SHAPES_KEPT = 4096
"""At most this many record shapes are kept (see :meth:`ConsentGate.shape`); past it the
kept ones are dropped and worked out again as records need them."""


RECORD_RESTRICTED = "RECORD_RESTRICTED"
"""Reason code: the source restricted the record to its owner (HL7 ARV, a VSP's data)."""


@value_type
class Disclosure:
    """The outcome of one gate pass: the decision, what may be sent, and its audit entry."""

    decision: Decision
    payload: dict[str, Any] | None
    audit: AuditEntry

    @property
    def permitted(self) -> bool:
        """Whether anything may be released."""
        return self.payload is not None


@dataclass(frozen=True, slots=True)
class Shape:
    """What a gate pass needs of a record besides its data: the same for every record of one
    canonical type, sensitivity and kind of owner asked for the same categories.

    ``fields`` gives each data field's category; ``locations`` the fields that reveal where
    the person is; ``extra`` the sensitive categories the whole record carries; ``asked``
    the categories the decision is asked for; ``guarded`` the field categories to redact
    with while ``extra`` is not all released (the clinical fields withheld).
    """

    fields: Mapping[str, str]
    locations: frozenset[str]
    extra: frozenset[str]
    asked: frozenset[str]
    guarded: Mapping[str, str]

    def redaction(self, decision: Decision) -> Mapping[str, str]:
        """The field categories to redact with under ``decision``."""
        if self.extra and not self.extra <= decision.released:
            return self.guarded
        return self.fields


def client_facts(birth: str | None, fleeing_dv: bool) -> ClientFacts:
    """A person's facts from what the store keeps: the birth date as ISO 8601 at its
    precision (``1980-05-17``, or ``2008`` / ``2008-05`` when only the year or month is
    known: :meth:`hub.core.records.Client.birth_date_text`) and the DV flag.

    A partial birth date becomes the range it covers, which the rules read the way that
    fails closed. A value that is no date raises ``ValueError`` (never: presumed adult).
    """
    if not birth:
        return ClientFacts(None, fleeing_dv)
    if len(birth) == 10:
        return ClientFacts(date.fromisoformat(birth), fleeing_dv)
    parsed = parse_iso(birth)
    if parsed is None:
        raise ValueError("a person's stored birth date is not an ISO date")
    first, precision = parsed
    return ClientFacts(first, fleeing_dv, last_day(first, precision))


def fast_canonical_json(value: list[object]) -> bytes:
    """:func:`consent.audit.canonical_json`'s bytes, several times faster (every decision
    hashes one): orjson writes the same bytes whenever its output is ASCII without DEL,
    which ``json`` escapes and orjson does not; anything else goes the standard way."""
    try:
        fast = orjson.dumps(value)
    except orjson.JSONEncodeError:  # a lone surrogate, an integer beyond 64 bits
        return canonical_json(value)
    if fast.isascii() and b"\x7f" not in fast:
        return fast
    return canonical_json(value)


def audit_row(entry: AuditEntry) -> AuditRow:
    """The stored form of an audit entry: every field as JSON, in field order."""
    return AuditRow(entry.seq, orjson.dumps(entry), entry.prev_hash, entry.hash)


def released_payload(
    record: Record,
    categories: Mapping[str, str],
    decision: Decision,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The part of a record's payload a decision releases (empty when nothing is).

    A :class:`SourceRow` is released column by column; the reference to its client travels
    with whatever is released (it names a record, not a person). ``data`` is
    ``record_payload(record)`` when the caller has it already.
    """
    if isinstance(record, SourceRow):
        columns = redact(record.fields, categories, decision, record.location_fields())
        if not columns:
            return {}
        out: dict[str, Any] = {
            "fields": columns,
            "categories": {name: record.categories[name] for name in columns},
        }
        if record.client is not None:
            out["client"] = {"source": record.client.source, "id": record.client.id}
        return out
    if data is None:
        data = record_payload(record)
    return redact(data, categories, decision, record.location_fields())


class AuditWriter:
    """Chains audit entries inside one transaction (the head is read once, locked):
    :meth:`load` the head, :meth:`add` entries, :meth:`flush` them in one statement.

    With ``batch=True`` the caller flushes before the transaction ends (the engine does);
    otherwise the gate flushes after each pass, so every entry is written at once.
    """

    def __init__(self, tx: Transaction, *, batch: bool = False) -> None:
        self._tx = tx
        self._head: tuple[int, str] | None = None
        self.loaded = False
        """Whether the chain's head has been read (:meth:`load`)."""
        self.batch = batch
        """Whether entries wait for the caller's :meth:`flush` (else the gate flushes after
        each pass)."""
        self._pending: list[AuditRow] = []
        self._persons: list[str] = []

    async def load(self) -> None:
        """Read the chain's head (once: later calls do nothing)."""
        if not self.loaded:
            self._head = await self._tx.audit_head()
            self.loaded = True

    def add(
        self, person_id: str, build: Callable[[tuple[int, str] | None], AuditEntry]
    ) -> AuditEntry:
        """Chain the entry ``build(prev)`` returns, to be written at the next :meth:`flush`.

        The head must have been read (:meth:`load`); raises ``RuntimeError`` otherwise."""
        if not self.loaded:
            raise RuntimeError("AuditWriter.add before load(): the chain's head is not known")
        entry = build(self._head)
        self._head = (entry.seq, entry.hash)
        self._pending.append(audit_row(entry))
        self._persons.append(person_id)
        return entry

    async def flush(self) -> None:
        """Write the entries not yet written."""
        if self._pending:
            await self._tx.append_audit(self._pending, self._persons)
            self._pending, self._persons = [], []


PERSON_CACHE_LIMIT = 100_000
"""Persons whose consents the gate remembers at most (about 17 MB). The memory is emptied
whenever consents change; a hub that sees a million persons between two consent changes
would otherwise keep a million look-ups (about 165 MB) until the next change."""


class ConsentGate:
    """Decides and records every disclosure; holds consents in memory for the hot path."""

    def __init__(
        self,
        agencies: Mapping[str, Agency],
        policy: ConsentPolicy,
        blind: BlindIndex,
        on_decision: Callable[[str], None] | None = None,
    ) -> None:
        self.agencies = dict(agencies)
        self.policy = policy
        self._blind = blind
        self._on_decision = on_decision
        self._by_ref: dict[str, list[ConsentRecord]] = {}
        self._person_consents: dict[str, tuple[ConsentRecord, ...]] = {}
        self.person_cache_limit = PERSON_CACHE_LIMIT
        """Persons whose consent look-ups are kept in memory at most."""
        self._generation: int | None = None
        self._checked: Transaction | None = None
        self._shapes: dict[tuple[object, ...], Shape] = {}
        self._ambiguous_reported: set[str] = set()

    # ---- consents written by other processes ----------------------------------------------

    async def refresh(self, tx: Transaction) -> int:
        """Load the consents written (by any process) since this gate last looked; returns
        how many. A consent imported or revoked through the CLI, another ``hub serve`` or a
        ``hub worker`` on another machine takes effect here at the next transaction."""
        current = await tx.consent_generation()
        self._checked = tx
        if current == self._generation:
            return 0
        bodies = (
            await tx.all_consents()
            if self._generation is None
            else await tx.consents_since(self._generation)
        )
        self.load_consents([self.parse_stored(b) for b in bodies])
        self._generation = current
        return len(bodies)

    def parse_stored(self, body: bytes) -> ConsentRecord:
        """A stored consent's JSON body as a record."""
        # Checked against the agencies when imported; an agency that has left since does
        # not undo the consent (nor stop every decision of the hub).
        return parse_consent(
            orjson.loads(body), agencies=self.agencies, policy=self.policy, known_agencies=False
        )

    def consents_written(self, consents: Sequence[ConsentRecord], generation: int) -> None:
        """Use consents this process has just stored under ``generation`` (committed).

        When the gate held every earlier generation, it now holds this one too, so the next
        transaction does not read back and parse what it was handed here.
        """
        self.load_consents(consents)
        if self._generation is not None and self._generation == generation - 1:
            self._generation = generation

    async def _fresh(self, tx: Transaction) -> None:
        # Once per transaction: the first look at consents in a transaction checks for
        # changes (one small query), later ones in the same transaction do not.
        if tx is not self._checked:
            await self.refresh(tx)

    # ---- consent cache -------------------------------------------------------------------

    def ref_key(self, consent: ConsentRecord) -> str:
        """The blind match key a consent's client reference resolves through."""
        ref = consent.client
        if ref.system:
            return self._blind(identifier_key(ref.system, ref.value))
        return self._blind(identifier_value_key(ref.value))

    def load_consents(self, consents: Iterable[ConsentRecord]) -> None:
        """Replace or add consents (same id replaces) and forget cached person look-ups."""
        by_id = {c.id: c for refs in self._by_ref.values() for c in refs}
        for c in consents:
            by_id[c.id] = c
        self._by_ref = {}
        for c in by_id.values():
            self._by_ref.setdefault(self.ref_key(c), []).append(c)
        self._person_consents.clear()

    def forget_person(self, person_id: str) -> None:
        """Drop a cached consent look-up after a person's links changed."""
        self._person_consents.pop(person_id, None)

    def forget_people(self) -> None:
        """Drop every cached consent look-up (after a rollback: links may have been undone)."""
        self._person_consents.clear()

    def all_consents(self) -> list[ConsentRecord]:
        """Every consent the gate knows."""
        return [c for refs in self._by_ref.values() for c in refs]

    async def load_people(self, tx: Transaction, person_ids: Iterable[str]) -> None:
        """Look up the consents of many persons at once (one query), for the hot path."""
        await self._fresh(tx)
        if not self._by_ref:
            return
        wanted = [p for p in dict.fromkeys(person_ids) if p not in self._person_consents]
        if not wanted:
            return
        keys_of = await tx.keys_of_persons(wanted)
        found = {person: self._consents_of(keys_of.get(person, ())) for person in wanted}
        found = await self._unambiguous(tx, found)
        self._make_room(len(wanted))
        self._person_consents.update(found)

    def _make_room(self, count: int) -> None:
        """Forget every remembered person when ``count`` more would pass the limit (the
        cheapest bound on the hot path). A batch larger than the limit is still kept whole
        until the next look-up: its persons are decided on together."""
        if len(self._person_consents) + count > self.person_cache_limit:
            self._person_consents.clear()

    @property
    def remembered_persons(self) -> int:
        """How many persons' consent look-ups the gate holds in memory."""
        return len(self._person_consents)

    async def _unambiguous(
        self, tx: Transaction, found: dict[str, tuple[ConsentRecord, ...]]
    ) -> dict[str, tuple[ConsentRecord, ...]]:
        """``found`` without the consents that name their client by value alone (no system)
        when that value is now carried by more than one person.

        Such a consent matched one person when it was imported, but an identifier value
        can recur in another system (an MRN equal to an HMIS id): it cannot tell which
        person signed, so it applies to none of them (fail closed) until it is re-imported
        with ``client.system``. One query, only when such a consent matched.
        """
        value_keys = {
            self.ref_key(c): c.id
            for consents in found.values()
            for c in consents
            if c.client.system is None
        }
        if not value_keys:
            return found
        holders = await tx.persons_with_keys(list(value_keys))
        shared = {key for key, persons in holders.items() if len(persons) > 1}
        if not shared:
            return found
        for key in shared:
            if value_keys[key] not in self._ambiguous_reported:
                self._ambiguous_reported.add(value_keys[key])
                log.warning(
                    "a consent naming its client by value alone matches several persons; "
                    "it is not applied until it names client.system",
                    extra={"consent_id": value_keys[key]},
                )
        return {
            person: tuple(
                c for c in consents if c.client.system is not None or self.ref_key(c) not in shared
            )
            for person, consents in found.items()
        }

    def _consents_of(self, keys: Iterable[str]) -> tuple[ConsentRecord, ...]:
        """The consents whose client reference resolves through one of ``keys`` (each once)."""
        by_ref = self._by_ref
        return tuple({c.id: c for k in keys if (refs := by_ref.get(k)) for c in refs}.values())

    async def facts_of(self, tx: Transaction, person_ids: Iterable[str]) -> dict[str, ClientFacts]:
        """:meth:`facts` for many persons at once (one query)."""
        found = await tx.persons_facts(list(dict.fromkeys(person_ids)))
        return {person: client_facts(birth, fleeing) for person, (birth, fleeing) in found.items()}

    async def consents_for(self, tx: Transaction, person_id: str) -> tuple[ConsentRecord, ...]:
        """The consents of a person (memory after the first look-up of that person)."""
        await self._fresh(tx)
        cached = self._person_consents.get(person_id)
        if cached is not None:
            return cached
        found: tuple[ConsentRecord, ...] = ()
        if self._by_ref:
            found = self._consents_of(await tx.person_keys(person_id))
            found = (await self._unambiguous(tx, {person_id: found}))[person_id]
        self._make_room(1)
        self._person_consents[person_id] = found
        return found

    # ---- decisions -----------------------------------------------------------------------

    def decide(
        self,
        *,
        consents: Sequence[ConsentRecord],
        facts: ClientFacts,
        owner: str,
        recipient: str,
        purpose: str,
        categories: frozenset[str],
        at: datetime,
    ) -> Decision:
        """The MPA decision alone (no audit): used by ``hub consent check`` and the consult."""
        return evaluate(
            DecisionRequest(facts, owner, recipient, purpose, categories, at),
            consents,
            self.agencies,
            self.policy,
        )

    def decide_disclosure(
        self,
        *,
        consents: Sequence[ConsentRecord],
        facts: ClientFacts,
        owner: str,
        recipient: str,
        purpose: str,
        categories: frozenset[str],
        at: datetime,
    ) -> Decision:
        """The decision on disclosing these categories of a record ``owner`` holds, as a
        gate pass on such a record would make it (no audit): ``hub consent check``.

        A Part 2 program's record is ``substance_use`` whole, its identity too (see
        :meth:`_make_shape`): it is decided with that category, and nothing of it is
        released unless that category is.
        """
        holder = self.agencies.get(owner)
        part2 = holder is not None and holder.kind == "part2" and recipient != owner
        asked = categories | {"substance_use"} if part2 else categories
        decision = self.decide(
            consents=consents,
            facts=facts,
            owner=owner,
            recipient=recipient,
            purpose=purpose,
            categories=asked,
            at=at,
        )
        if part2 and decision.permitted and "substance_use" not in decision.released:
            return Decision(
                "deny",
                frozenset(),
                decision.released | decision.redacted,
                (*decision.reasons, NOTHING_LEFT),
                decision.consent_id,
            )
        return decision

    def shape(self, record: Record, categories: frozenset[str] | None) -> Shape:
        """The :class:`Shape` of a record asked for ``categories`` (None: the defaults).

        A record flagged sensitive (an ARV segment, a Part 2 program's data) releases its
        clinical fields only when every flagged category is released.
        """
        cls = type(record)
        if RECORD_TYPES.get(record.meta.kind) is cls:
            return self._kind_shape(cls, record.meta, categories)
        return self._make_shape(
            record.field_categories(), record.location_fields(), record.meta, categories
        )

    def _kind_shape(
        self, cls: type[Record], meta: RecordMeta, categories: frozenset[str] | None
    ) -> Shape:
        """The shape of a canonical type's record: its categories are the type's, so the
        shape is kept per (type, sensitivity, Part 2 owner or not, categories asked)."""
        # Only the sensitive categories among a record's labels shape a decision.
        sensitive = frozenset(meta.sensitivity) & SENSITIVE_CATEGORIES
        key = (cls, sensitive, self._part2(meta), categories)
        found = self._shapes.get(key)
        if found is None:
            if len(self._shapes) >= SHAPES_KEPT:
                self._shapes.clear()
            found = self._shapes[key] = self._make_shape(
                cls.FIELD_CATEGORIES, cls.LOCATION_FIELDS, meta, categories
            )
        return found

    def _part2(self, meta: RecordMeta) -> bool:
        """Whether a record's owner is a Part 2 program (asked each time: agencies can be
        added or change kind while the hub runs)."""
        owner = self.agencies.get(meta.owner)
        return owner is not None and owner.kind == "part2"

    def _make_shape(
        self,
        fields: Mapping[str, str],
        locations: frozenset[str],
        meta: RecordMeta,
        categories: frozenset[str] | None,
    ) -> Shape:
        """Work a :class:`Shape` out (see :meth:`shape`).

        Anything from a Part 2 program is ``substance_use`` (CONSENT.md), its identity too:
        that a person is its patient is what 42 CFR Part 2 protects. So while
        ``substance_use`` is not released, none of such a record's fields are; other
        sensitive records keep their identity and demographic fields."""
        extra = set(meta.sensitivity)
        part2 = self._part2(meta)
        if part2:
            extra.add("substance_use")
        sensitive = frozenset(extra & SENSITIVE_CATEGORIES)
        wanted = DEFAULT_CATEGORIES if categories is None else categories
        present = frozenset(fields.values()) | sensitive
        guarded = (
            {f: c if c in _NON_CLINICAL and not part2 else _WITHHELD for f, c in fields.items()}
            if sensitive
            else fields
        )
        return Shape(fields, locations, sensitive, (wanted & present) or wanted, guarded)

    async def disclose(
        self,
        tx: Transaction,
        audit: AuditWriter,
        *,
        record: Record,
        person_id: str,
        recipient: str,
        purpose: str,
        categories: frozenset[str] | None,
        at: datetime,
        record_ref: str,
        facts: ClientFacts | None = None,
        data: Mapping[str, Any] | None = None,
        queued: bool = False,
    ) -> Disclosure:
        """Decide, redact and audit one record for one recipient, in the caller's transaction.

        ``data`` is ``record_payload(record)`` when the caller has it already (the engine
        does: it encoded the record to store it). ``queued``: the record is being queued
        for a feed, not sent (its audit entry says so: :data:`QUEUED_FOR_DELIVERY`).
        """
        return await self._pass(
            tx,
            audit,
            record.meta,
            self.shape(record, categories),
            lambda fields, decision: released_payload(record, fields, decision, data),
            person_id,
            recipient,
            purpose,
            at,
            record_ref,
            facts,
            queued,
        )

    async def disclose_data(
        self,
        tx: Transaction,
        audit: AuditWriter,
        *,
        meta: RecordMeta,
        data: Mapping[str, Any],
        person_id: str,
        recipient: str,
        purpose: str,
        categories: frozenset[str] | None,
        at: datetime,
        record_ref: str,
        facts: ClientFacts | None = None,
    ) -> Disclosure:
        """:meth:`disclose` for a record given as its meta and payload (an outbox entry's).

        The same decision, released payload and audit entry as :meth:`disclose` of
        ``record_from_payload(meta, data)``, without building that record: a canonical type's
        categories are the type's. A :class:`SourceRow`'s travel in its payload, so it is
        built.
        """
        cls = RECORD_TYPES.get(meta.kind)
        if cls is None:
            return await self.disclose(
                tx,
                audit,
                record=record_from_payload(meta, data),
                person_id=person_id,
                recipient=recipient,
                purpose=purpose,
                categories=categories,
                at=at,
                record_ref=record_ref,
                facts=facts,
            )
        shape = self._kind_shape(cls, meta, categories)
        return await self._pass(
            tx,
            audit,
            meta,
            shape,
            lambda fields, decision: redact(data, fields, decision, shape.locations),
            person_id,
            recipient,
            purpose,
            at,
            record_ref,
            facts,
        )

    async def _pass(
        self,
        tx: Transaction,
        audit: AuditWriter,
        meta: RecordMeta,
        shape: Shape,
        release: Callable[[Mapping[str, str], Decision], dict[str, Any]],
        person_id: str,
        recipient: str,
        purpose: str,
        at: datetime,
        record_ref: str,
        facts: ClientFacts | None,
        queued: bool = False,
    ) -> Disclosure:
        """One gate pass: decide, ``release`` what the decision lets go (given the field
        categories to redact with), audit."""
        # Awaits only what is not known yet: a batch whose persons were looked up together
        # (``load_people``) passes here without suspending, once per record.
        if facts is None:
            facts = await self.facts(tx, person_id)
        consents = self._person_consents.get(person_id) if tx is self._checked else None
        if consents is None:
            consents = await self.consents_for(tx, person_id)
        decision = self._decision(meta, shape, consents, facts, recipient, purpose, at)
        payload: dict[str, Any] | None = None
        if decision.permitted:
            payload = release(shape.redaction(decision), decision) or None
            if payload is None:
                # Rule 11 on what the record holds: the categories released name none of
                # its fields (a sensitive record's guarded ones), so nothing is disclosed.
                decision = Decision(
                    "deny",
                    frozenset(),
                    decision.released | decision.redacted,
                    (*decision.reasons, NOTHING_LEFT),
                    decision.consent_id,
                )
        if not audit.loaded:
            await audit.load()
        disclosure = self._audited(
            audit, meta, decision, payload, person_id, recipient, purpose, at, record_ref, queued
        )
        if not audit.batch:
            await audit.flush()
        return disclosure

    def _decision(
        self,
        meta: RecordMeta,
        shape: Shape,
        consents: Sequence[ConsentRecord],
        facts: ClientFacts,
        recipient: str,
        purpose: str,
        at: datetime,
    ) -> Decision:
        """The decision on a record of this meta and shape (a restriction denies it)."""
        decision = self.decide(
            consents=consents,
            facts=facts,
            owner=meta.owner,
            recipient=recipient,
            purpose=purpose,
            categories=shape.asked,
            at=at,
        )
        if recipient == meta.owner:
            if decision.permitted and shape.extra:
                # Not a disclosure (rule 1): the owner reads its own record whole, its
                # sensitive labels (a Part 2 program's substance_use) included.
                decision = Decision(
                    decision.outcome,
                    decision.released | shape.extra,
                    decision.redacted - shape.extra,
                    decision.reasons,
                    decision.consent_id,
                    decision.location_withheld,
                )
        elif meta.restricted:
            owner = self.agencies.get(meta.owner)
            reason = VSP_RECORD if owner is not None and owner.kind == "vsp" else RECORD_RESTRICTED
            decision = Decision("deny", frozenset(), shape.asked, (reason,), decision.consent_id)
        return decision

    def _audited(
        self,
        audit: AuditWriter,
        meta: RecordMeta,
        decision: Decision,
        payload: dict[str, Any] | None,
        person_id: str,
        recipient: str,
        purpose: str,
        at: datetime,
        record_ref: str,
        queued: bool = False,
    ) -> Disclosure:
        """Chain a decision's audit entry (with the hash of what it releases) in ``audit``,
        whose head is loaded; a ``queued`` decision's entry says so."""
        if self._on_decision is not None:
            self._on_decision(decision.outcome)
        released_hash = None
        if payload is not None:
            released_hash = payload_hash(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
        audited = (
            Decision(
                decision.outcome,
                decision.released,
                decision.redacted,
                (*decision.reasons, QUEUED_FOR_DELIVERY),
                decision.consent_id,
                decision.location_withheld,
            )
            if queued and payload is not None
            else decision
        )
        entry = audit.add(
            person_id,
            lambda prev: make_entry(
                prev,
                at=at,
                client=person_id,
                owner=meta.owner,
                recipient=recipient,
                purpose=purpose,
                decision=audited,
                payload_hash=released_hash,
                record=record_ref,
                encode=fast_canonical_json,
            ),
        )
        return Disclosure(decision, payload, entry)

    async def facts(self, tx: Transaction, person_id: str) -> ClientFacts:
        """What the policy needs to know about the person (birth date, fleeing DV)."""
        found = await self.facts_of(tx, [person_id])
        return found.get(person_id) or ClientFacts(None, False)
