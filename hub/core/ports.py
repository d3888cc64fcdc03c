"""Ports: what the core needs from the outside world, as Protocols.

Adapters (``hub.store.sqlite``, ``hub.store.postgres``) implement them; the core and the
plugins use only these names, so the core knows no database driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from consent.value_types import value_type

UpsertOutcome = Literal["inserted", "updated", "unchanged", "stale"]


@dataclass(frozen=True, slots=True)
class RecordRow:
    """A record as the store keeps it: meta in columns, the data fields as a JSON payload.

    ``deleted_at`` is when the store marked the record deleted (UTC ISO text, as the store's
    other times): set by :meth:`Transaction.mark_deleted` and by a write of a deleted version
    over a live (or new) record, kept while the record stays deleted, cleared (None) when a
    live version is written. None for live records and for records deleted before the store
    kept the time (unknown: never to be guessed). A row given to a write may carry one (it
    is kept for a record written deleted); when it does not, the transaction's time is used.
    """

    kind: str
    source: str
    source_id: str
    owner: str
    version: str
    payload: bytes
    payload_hash: str
    source_system: str
    received_at: str
    deleted: bool = False
    sensitivity: str = ""
    restricted: bool = False
    client_source_id: str | None = None
    person_id: str | None = None
    client_source: str | None = None
    raw_hash: str = ""
    flags: str = ""
    seq: int | None = None
    deleted_at: str | None = None

    def __repr__(self) -> str:
        return f"<RecordRow {self.kind} {self.source}/{self.source_id} v{self.version}>"


@dataclass(slots=True)
class RecordHead:
    """The meta columns of a stored record as they are now: no version, no data.

    What a send-time re-check needs of the stored record (it brings the version and the
    data it queued). ``sensitivity`` and ``flags`` are comma-separated, as stored. Not
    frozen: one is made per entry on the delivery path, where a frozen dataclass's
    constructor costs about 3½ times a plain one's.
    """

    owner: str
    source_system: str
    received_at: str
    raw_hash: str
    deleted: bool
    sensitivity: str
    restricted: bool
    flags: str

    def __repr__(self) -> str:
        return f"<RecordHead owner={self.owner}>"


@dataclass(frozen=True, slots=True)
class StoredState:
    """What the store holds of a record already: enough to classify an incoming version."""

    version: str
    payload_hash: str
    deleted: bool
    restricted: bool
    sensitivity: str
    person_id: str | None
    owner: str | None = None
    """The owning agency stored (None: not known to the caller, not compared)."""

    @classmethod
    def written(cls, row: RecordRow) -> StoredState:
        """What the store holds once ``row`` is written (its person link not known here)."""
        return cls(
            row.version,
            row.payload_hash,
            row.deleted,
            row.restricted,
            row.sensitivity,
            None,
            row.owner,
        )


def classify(row: RecordRow, state: StoredState | None) -> UpsertOutcome:
    """Whether an incoming row is new, a newer version, the same, or older than what is stored.

    The same version with different data counts as an update (senders re-send corrected
    messages under the same timestamp), and so does the same data under another owner (the
    source's organisation mapping changed), and so does the same data with a restriction or
    a sensitive category the stored record does not carry yet (its organisation became a
    victim service provider: the mark must reach the store, or the record would leave as
    before); an older version never replaces a newer one. A row that carries less
    restriction than the stored record is not an update for that alone: restrictions are
    only lifted by an administrator (see ``hub.core.engine.keep_restrictions``).
    """
    if state is None:
        return "inserted"
    if row.version < state.version:
        return "stale"
    if (
        (row.version, row.payload_hash, row.deleted)
        == (state.version, state.payload_hash, state.deleted)
        and (state.owner is None or state.owner == row.owner)
        and (state.restricted or not row.restricted)
        and (
            row.sensitivity == state.sensitivity
            or not row.sensitivity
            or set(row.sensitivity.split(",")) <= set(state.sensitivity.split(","))
        )
    ):
        return "unchanged"
    return "updated"


@value_type
class AuditRow:
    """One stored audit entry (see ``consent.audit``); ``body`` is its canonical JSON.

    ``person_id`` is the person the store files the entry under, as read back (None on a
    row being written): it is outside the hash, so ``hub audit verify`` checks it against
    the body's ``client``."""

    seq: int
    body: bytes
    prev_hash: str
    hash: str
    person_id: str | None = None


OUTBOX_STATUSES = ("pending", "leased", "retry", "delivered", "withheld", "dead")
"""Every status an outbox entry is reported with (``leased``: a worker holds it now)."""


@dataclass(slots=True)
class OutboxRow:
    """One pending or finished delivery to one recipient.

    Not frozen, as :class:`RecordHead`: every claimed entry is one (17 fields: 1.7 µs to
    make frozen, 0.5 plain). Nothing changes one after it is read.
    """

    id: int
    feed: str
    recipient: str
    person_id: str
    record_kind: str
    record_source: str
    record_source_id: str
    record_version: str
    idempotency_key: str
    status: str
    attempts: int
    next_attempt_at: str
    created_at: str
    last_error: str = ""
    delivered_at: str | None = None
    audit_seq: int | None = None
    payload: bytes = b""

    def __repr__(self) -> str:
        return f"<OutboxRow {self.id} {self.feed}->{self.recipient} {self.status}>"


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A possible match that identity resolution would not decide on its own."""

    id: int
    record: str
    candidates: tuple[str, ...]
    reason: str
    status: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One permitted, redacted record on its way to a recipient through a sink.

    ``payload`` holds only the fields the consent gate released (a canonical record payload);
    ``record`` is the same data as a canonical record, for codecs that render records. A
    sink must not change ``payload``: the record may be built from it when first read.
    ``idempotency_key`` must travel with the delivery so the receiver can de-duplicate.
    The delivery workers hand sinks :class:`LazyDelivery` objects: the same, with the record
    built when first asked for.
    """

    outbox_id: int
    feed: str
    recipient: str
    idempotency_key: str
    record: Any
    payload: dict[str, Any]
    options: dict[str, Any]

    @property
    def kind(self) -> str:
        """The record's kind (``client``, ``encounter`` …); empty when there is no record."""
        return _kind_of(self.record)

    def __repr__(self) -> str:
        return f"<Delivery {self.outbox_id} {self.feed}->{self.recipient}>"


def _kind_of(record: Any) -> str:
    """A record's kind, or "" for anything that is not a record."""
    kind = getattr(getattr(record, "meta", None), "kind", "")
    return kind if isinstance(kind, str) else ""


_RECORD_SLOT: Any = Delivery.__dict__["record"]
"""Where a :class:`Delivery` keeps its record (the slot itself, under the property below)."""


class LazyDelivery(Delivery):
    """A :class:`Delivery` whose ``record`` is built from its payload when first asked for.

    A sink that sends the payload alone (the webhook) never pays for building the record; a
    sink that renders records gets the same record as an eager delivery would carry. Made
    with :meth:`of`; ``dataclasses.replace`` and the frozen fields work as for any
    :class:`Delivery` (as for any dataclass, it equals only deliveries of its own class).
    """

    __slots__ = ("_build", "_kind")
    _build: Callable[[], Any] | None
    _kind: str

    @classmethod
    def of(
        cls,
        outbox_id: int,
        feed: str,
        recipient: str,
        idempotency_key: str,
        *,
        kind: str,
        build: Callable[[], Any],
        payload: dict[str, Any],
        options: dict[str, Any],
    ) -> LazyDelivery:
        """A delivery of a ``kind`` record whose ``record`` is ``build()`` (called once)."""
        made = cls(outbox_id, feed, recipient, idempotency_key, None, payload, options)
        object.__setattr__(made, "_kind", kind)
        object.__setattr__(made, "_build", build)
        return made

    @property
    def record(self) -> Any:
        """The released data as a canonical record (built on the first look)."""
        build = self._build
        if build is not None:
            _RECORD_SLOT.__set__(self, build())
            object.__setattr__(self, "_build", None)
        return _RECORD_SLOT.__get__(self)

    @record.setter
    def record(self, value: Any) -> None:
        # Only the dataclass __init__ comes here (the class is frozen): an eager record.
        _RECORD_SLOT.__set__(self, value)
        object.__setattr__(self, "_build", None)
        object.__setattr__(self, "_kind", _kind_of(value))

    @property
    def kind(self) -> str:
        """The record's kind, known without building the record."""
        return self._kind


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one delivery went: ``ok``; else ``retry`` (transient) or not (dead-letter now)."""

    ok: bool
    retry: bool = True
    error: str = ""
    retry_after: float | None = None


class Sink(Protocol):
    """Delivers permitted records to partners in one format over one transport.

    Sinks get only what the gate released; they never see the outbox or the store.
    ``deliver`` must answer one outcome per delivery, in order, and must not raise for a
    partner's failure (that is an outcome with ``retry``).
    """

    name: str

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """Send a batch; one outcome per delivery."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Transaction(Protocol):
    """One unit of work: everything done through it commits together or not at all."""

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested unit: an exception inside rolls back what it did (and is re-raised);
        the rest of the transaction goes on."""
        ...

    # records
    async def stored_states(
        self, rows: Sequence[RecordRow]
    ) -> dict[tuple[str, str, str], StoredState]:
        """The stored state of each row's record that exists, by (kind, source, source_id)."""
        ...

    async def write_records(
        self, rows: Sequence[RecordRow], persons: Mapping[tuple[str, str, str], str] | None = None
    ) -> None:
        """Write new or newer versions (a concurrent newer version is never overwritten).

        ``persons`` names the person a row (by kind, source, source_id) is linked to, written
        with a new row; a stored row keeps its link (see :meth:`link_records`).
        """
        ...

    async def upsert_records(self, rows: Sequence[RecordRow]) -> list[UpsertOutcome]:
        """Insert or update records keyed on (kind, source, source_id); never go back a version.

        A row whose version is older than the stored one is ``stale`` and ignored; the same
        version with the same payload hash is ``unchanged``.
        """
        ...

    async def get_record(self, kind: str, source: str, source_id: str) -> RecordRow | None:
        """One record by its key, or None."""
        ...

    async def records_of_person(
        self, person_id: str, kinds: Sequence[str] | None = None
    ) -> list[RecordRow]:
        """Every live record linked to a person, oldest first."""
        ...

    async def records_of_clients(
        self, clients: Sequence[tuple[str, str]], kinds: Sequence[str]
    ) -> list[RecordRow]:
        """The live records of ``kinds`` about these client records ((source, id) pairs:
        enrollments, encounters, referrals naming them), oldest first."""
        ...

    async def mark_deleted_except(
        self, kind: str, source: str, keep: Iterable[str], scope_owner: str | None = None
    ) -> int:
        """Full refresh: mark deleted every record of (kind, source) not in ``keep`` (as
        :meth:`mark_deleted` does: with the time)."""
        ...

    async def mark_deleted(self, kind: str, source: str, source_ids: Iterable[str]) -> int:
        """Mark deleted these live records of (kind, source); returns how many were live.

        Each gets ``deleted_at`` = this transaction's time (one time for every record the
        transaction marks); their version, data and ``DateUpdated`` are kept. Records deleted
        already keep theirs."""
        ...

    # identity
    async def persons_with_keys(
        self,
        keys: Sequence[str],
        limit_per_key: int | None = None,
        capped: Sequence[str] = (),
    ) -> dict[str, set[str]]:
        """For each blind match key, the persons that carry it; keys in ``capped`` (or all
        keys, with ``limit_per_key``) name at most ``limit_per_key`` (default 8) persons."""
        ...

    async def create_person(self) -> str:
        """A new person id."""
        ...

    async def link_record(
        self, kind: str, source: str, source_id: str, person_id: str, keys: Sequence[str]
    ) -> None:
        """Link a record to a person and index its blind match keys under that person."""
        ...

    async def insert_persons(self, ids: Sequence[str]) -> None:
        """Create persons with ids the caller chose."""
        ...

    async def link_records(
        self, links: Sequence[tuple[str, str, str, str, Sequence[str]]], *, keys_only: bool = False
    ) -> None:
        """Link many records: (kind, source, source_id, person_id, blind keys) each.

        With ``keys_only`` the records were written linked already (``write_records`` with
        ``persons``): only their keys are added.
        """
        ...

    async def person_keys(self, person_id: str) -> set[str]:
        """Every blind match key indexed under a person."""
        ...

    async def keys_of_persons(self, person_ids: Sequence[str]) -> dict[str, set[str]]:
        """:meth:`person_keys` for many persons (persons without keys left out)."""
        ...

    async def persons_of_clients(self, source: str, client_ids: Sequence[str]) -> dict[str, str]:
        """The person each client record of a source is linked to."""
        ...

    async def unlink_record(self, kind: str, source: str, source_id: str) -> str | None:
        """Undo a record's link; returns the person it was linked to."""
        ...

    async def add_review(self, record: str, candidates: Sequence[str], reason: str) -> int:
        """Put an undecided match on the review list."""
        ...

    async def add_reviews(self, items: Sequence[tuple[str, Sequence[str], str]]) -> None:
        """:meth:`add_review` for many (record, candidates, reason) items."""
        ...

    async def list_reviews(self, status: str = "open") -> list[ReviewItem]:
        """Review items with that status."""
        ...

    async def set_review_status(self, review_id: int, status: str) -> bool:
        """Close or reopen a review item."""
        ...

    async def set_birth_date(self, person_id: str, birth_date: str) -> None:
        """The person's birth date as the consent gate should use it (age rules)."""
        ...

    async def set_birth_dates(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Birth dates of many persons: (person id, ISO date) each. The date is kept as text
        at its precision (``1980-05-17``, or ``2008`` / ``2008-05`` when only the year or
        month is known: :meth:`hub.core.records.Client.birth_date_text`); the gate reads a
        partial one as the range it covers (:func:`hub.core.gate.client_facts`)."""
        ...

    async def set_dv_status(
        self,
        source: str,
        client_id: str,
        fleeing: bool | None,
        as_of: str,
        said_by: str,
    ) -> None:
        """Keep the word of the record ``said_by`` (its kind and source id) on its client
        fleeing domestic violence, as of the ISO date ``as_of`` (``""``: unknown); ``fleeing``
        None withdraws that record's word (the record was deleted, or now says nothing
        definite).

        Each record keeps one word, filed under the client its latest version names (a
        word moves with its row), and the client's status, per source, is the word with the
        latest date, words of unknown date ranking below dated ones; of the words of the
        latest date, any saying fleeing wins (so the location is withheld). So neither the
        order in which rows are read nor a later correction of an older row can clear a
        newer "fleeing", and withdrawing the newest word brings the one before it back.
        :meth:`mark_deleted` withdraws the words of the records it deletes.
        """
        ...

    async def person_facts(self, person_id: str) -> tuple[str | None, bool]:
        """(birth date ISO or None, fleeing DV according to any source linked to the person)."""
        ...

    # consents
    async def put_consents(self, consents: Sequence[tuple[str, str | None, str, bytes]]) -> int:
        """Store consents as (id, client system, client value key, JSON body); replace by id.

        Returns the consent generation they were written under (the one this transaction
        set; 0 when there was nothing to write)."""
        ...

    async def all_consents(self) -> list[bytes]:
        """Every consent JSON body (the gate caches them in memory)."""
        ...

    async def stored_consents(self, consent_ids: Sequence[str]) -> list[bytes]:
        """The JSON bodies of the stored consents with these ids, locked for this
        transaction's :meth:`put_consents` (no other writer changes them meanwhile)."""
        ...

    async def consent_generation(self) -> int:
        """A number that grows with every committed write of consents, and with every change
        of identity links made by an administrator (by any process)."""
        ...

    async def bump_consent_generation(self) -> None:
        """Make every process drop what it cached of persons' consents (links changed)."""
        ...

    async def consents_since(self, generation: int) -> list[bytes]:
        """The JSON bodies of consents written after ``generation``."""
        ...

    # audit
    async def audit_head(self) -> tuple[int, str] | None:
        """The last audit entry's (seq, hash), locked for this transaction's append."""
        ...

    async def append_audit(self, rows: Sequence[AuditRow], person_ids: Sequence[str]) -> None:
        """Append chained entries (with the person each is about) after :meth:`audit_head`."""
        ...

    # outbox
    async def enqueue(self, rows: Sequence[OutboxRow]) -> list[int]:
        """Add deliveries; a duplicate idempotency key is ignored. Returns new ids."""
        ...

    async def enqueue_many(self, rows: Sequence[OutboxRow]) -> None:
        """Add deliveries in one statement (ids not returned); duplicate keys are ignored."""
        ...

    # inbound de-duplication
    async def seen_messages(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, bytes]]:
        """:meth:`seen_message` for many (sender, control id) pairs; unseen ones left out."""
        ...

    async def remember_messages(self, messages: Sequence[tuple[str, str, str, bytes]]) -> None:
        """:meth:`remember_message` for many (sender, control id, content hash, response)."""
        ...

    async def seen_message(self, sender: str, control_id: str) -> tuple[str, bytes] | None:
        """A message already taken from this sender under this control id: (hash, response)."""
        ...

    async def remember_message(
        self, sender: str, control_id: str, content_hash: str, response: bytes
    ) -> None:
        """Remember a taken message and what was answered, to answer a re-send the same way."""
        ...

    # delivery at send time
    async def record_heads(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], RecordHead]:
        """The meta columns of records by (kind, source, source_id) (see :class:`RecordHead`).

        For a caller that needs the meta in force now (owner, restriction, sensitivity) and
        brings the data itself, as the outbox re-check at send time does. Records that do not
        exist are left out.
        """
        ...

    async def persons_facts(self, person_ids: Sequence[str]) -> dict[str, tuple[str | None, bool]]:
        """:meth:`person_facts` of many persons at once, by person (unknown ones left out)."""
        ...

    async def settle_outbox(
        self, entries: Sequence[tuple[int, str, str, str | None]], worker: str | None = None
    ) -> set[int]:
        """Settle claimed deliveries, each ``(id, status, error, retry_at)``; the ids settled.

        As :meth:`Store.finish_outbox` for many entries, in this transaction (so a withheld
        entry settles together with the audit entry of the decision that withheld it). With
        ``worker``, only entries whose lease that worker still holds.
        """
        ...

    async def records_by_keys(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], RecordRow]:
        """Whole records (payload included) by ``(kind, source, source_id)``; records that
        do not exist are left out."""
        ...

    async def advance_feed(
        self, feed: str, owner: str, cursor: FeedCursor, lease_until: str
    ) -> bool:
        """Move a scheduled feed's cursor in this transaction and extend its run lease, only
        while ``owner`` holds the lease; False (nothing changed) when it does not."""
        ...

    async def hold_for_client(self, feed: str, keys: Sequence[tuple[str, str, str]]) -> None:
        """Note records, by ``(kind, source, source_id)``, that a scheduled feed's run passed
        while their client record was unknown (no person to decide for): the feed takes
        them when their client arrives (:meth:`waiting_ready`). Noting one twice is one."""
        ...

    async def waiting_ready(self, feed: str, limit: int) -> list[tuple[str, str, str]]:
        """Up to ``limit`` of the records noted for ``feed`` (:meth:`hold_for_client`) that
        no longer wait: their client now has a person, or the record is deleted or gone.
        In the order the records were received."""
        ...

    async def stop_waiting(self, feed: str, keys: Sequence[tuple[str, str, str]]) -> None:
        """Forget noted records of ``feed`` (taken, or gone)."""
        ...

    async def queued_keys(self, idempotency_keys: Sequence[str]) -> set[str]:
        """Those of the idempotency keys an outbox entry carries (queued before, whatever
        became of it since; settled entries pruned by retention are not found)."""
        ...


class Store(Protocol):
    """The hub's durable state: records, identity, consents, audit log and outbox."""

    dialect: str

    async def open(self) -> None:
        """Connect; refuse to run on an out-of-date schema (see :meth:`migrate`)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def migrate(self) -> list[int]:
        """Apply pending schema migrations; returns the versions applied."""
        ...

    async def schema_version(self) -> int:
        """The schema version in the store (0 for an empty store)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A unit of work; commits on clean exit, rolls back on an exception."""
        ...

    def iter_records(
        self, kind: str, source: str | None = None, batch: int = 1000
    ) -> AsyncIterator[list[RecordRow]]:
        """Live and deleted records of a kind in key order, in batches (for exports)."""
        ...

    def iter_audit(self, batch: int = 1000) -> AsyncIterator[list[AuditRow]]:
        """The audit log in sequence order, in batches."""
        ...

    async def audit_for_client(self, person_id: str) -> list[AuditRow]:
        """Audit entries about one person, in sequence order."""
        ...

    async def add_checkpoint(self, seq: int, head_hash: str, signature: bytes, key_id: str) -> None:
        """Store a signed audit checkpoint."""
        ...

    async def checkpoints(self) -> list[tuple[int, str, bytes, str]]:
        """Stored checkpoints: (seq, head hash, signature, key id)."""
        ...

    async def index_key_check(self, check: str) -> str:
        """The check value of the blind-index key the store was built with (``check`` is
        recorded as that when the store has none yet)."""
        ...

    async def hold_alone(self) -> None:
        """Make sure no other hub process uses the store (and, where the store can, that
        none starts to until this one closes it); raise naming what to stop."""
        ...

    async def reblind(
        self,
        old_check: str,
        new_check: str,
        record_keys: Callable[[RecordRow], Sequence[str]],
        consent_value: Callable[[bytes], str],
        batch: int = 500,
    ) -> dict[str, int]:
        """Replace every blinded value (records' match keys by ``record_keys(row)``,
        consents' client values by ``consent_value(body)``) and the check value, from
        ``old_check`` to ``new_check``, in one transaction; counts of what was done."""
        ...

    async def claim_outbox(
        self, worker: str, limit: int, lease_seconds: float, skip_feeds: Sequence[str] = ()
    ) -> list[OutboxRow]:
        """Claim due deliveries under a lease (SKIP LOCKED on PostgreSQL), none of the feeds
        in ``skip_feeds``; feeds take turns, so no feed's backlog holds back another's."""
        ...

    async def finish_outbox(
        self,
        outbox_id: int,
        status: str,
        *,
        error: str = "",
        retry_at: str | None = None,
        worker: str | None = None,
    ) -> bool:
        """Settle a claimed delivery (only while ``worker`` holds its lease, if given)."""
        ...

    async def list_outbox(
        self,
        status: str | None = None,
        recipient: str | None = None,
        limit: int = 100,
        *,
        feed: str | None = None,
        before_id: int | None = None,
        hide_withheld: bool = False,
    ) -> list[OutboxRow]:
        """Outbox entries, newest first, by status, recipient and feed; older than
        ``before_id`` when given; without the withheld ones with ``hide_withheld``."""
        ...

    async def get_outbox(self, outbox_id: int) -> OutboxRow | None:
        """One outbox entry."""
        ...

    async def requeue_outbox(self, outbox_id: int) -> bool:
        """Put a dead or failed entry back in the queue (replay)."""
        ...

    async def outbox_depth(self) -> dict[str, int]:
        """Count of outbox entries by status."""
        ...

    async def finish_outbox_many(
        self, entries: Sequence[tuple[int, str, str, str | None]], *, worker: str | None = None
    ) -> set[int]:
        """Settle many claimed deliveries, each ``(id, status, error, retry_at)``, in one
        transaction; returns the ids settled (see :meth:`Transaction.settle_outbox`)."""
        ...

    async def release_unsent(self, ids: Sequence[int], worker: str, note: str) -> set[int]:
        """Give back entries ``worker`` claimed and never sent, as they were before the
        claim (due as before, the claim's attempt not counted); returns the ids given back."""
        ...

    async def feed_cursor(self, feed: str) -> FeedCursor:
        """A scheduled feed's cursor (``FeedCursor("")`` before its first run)."""
        ...

    async def claim_feed(self, feed: str, owner: str, lease_seconds: float) -> FeedCursor | None:
        """Take a scheduled feed's run lease: its cursor, or None while another owner's lease
        is live. Atomic, so of several processes claiming at once exactly one gets it."""
        ...

    async def release_feed(self, feed: str, owner: str) -> bool:
        """Give a feed's run lease back (only ``owner``'s); whether it held it."""
        ...

    async def feed_changes(
        self, kinds: Sequence[str], after: FeedCursor, limit: int, before: str | None = None
    ) -> list[FeedCursor]:
        """The positions of live records of ``kinds`` after a cursor, in cursor order
        (``received_at``, then key), at most ``limit``; with ``before``, only those stored
        before that time."""
        ...

    async def import_feed_cursor(self, feed: str, received_at: str) -> bool:
        """Take a cursor kept outside the store (everything received up to ``received_at``
        is queued) unless the store's is further on or the feed is running now."""
        ...


@dataclass(frozen=True, slots=True)
class FeedCursor:
    """Where a scheduled feed is: every record up to this position is queued.

    Positions are ordered by ``received_at``, then by the record key ``(kind, source,
    source_id)``; with no ``key``, every record received at ``received_at`` is included.
    The empty cursor (``""``) is before every record.
    """

    received_at: str
    key: tuple[str, str, str] | None = None
