"""The SQL both store adapters share: one implementation of every store operation.

Statements are written once with ``?`` placeholders; each adapter supplies a
:class:`Connection` that runs them in its own dialect (the PostgreSQL one rewrites the
placeholders to ``$n``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from hub.core.ids import new_person_id
from hub.core.ports import (
    AuditRow,
    FeedCursor,
    OutboxRow,
    RecordHead,
    RecordRow,
    ReviewItem,
    StoredState,
    UpsertOutcome,
    classify,
)
from hub.crypto import PREFIX, DecryptionError, FieldCipher

Row = Sequence[Any]


def now_iso() -> str:
    """Current UTC time as the store writes it (sortable ISO text, microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Connection(Protocol):
    """The four calls the shared SQL needs from a driver connection."""

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the affected row count where the driver knows it."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many argument rows."""
        ...

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Rows of a query."""
        ...

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        ...


RECORD_COLUMNS = (
    "kind, source, source_id, owner, version, payload, payload_hash, source_system, "
    "received_at, deleted, sensitivity, restricted, client_source_id, person_id, client_source, "
    "raw_hash, flags, deleted_at"
)
_CHUNK = 500
"""Ids per ``IN (…)`` list (SQLite allows 32,766 parameters; PostgreSQL 65,535)."""
_R_COLUMNS = ", ".join(f"r.{c.strip()}" for c in RECORD_COLUMNS.split(","))
""":data:`RECORD_COLUMNS` of a table aliased ``r``."""
RECORD_UPSERT = (
    "ON CONFLICT (kind, source, source_id) DO UPDATE SET owner=excluded.owner, "
    "version=excluded.version, payload=excluded.payload, "
    "payload_hash=excluded.payload_hash, source_system=excluded.source_system, "
    "received_at=excluded.received_at, deleted=excluded.deleted, "
    "sensitivity=excluded.sensitivity, restricted=excluded.restricted, "
    "client_source_id=excluded.client_source_id, client_source=excluded.client_source, "
    "raw_hash=excluded.raw_hash, flags=excluded.flags, "
    "deleted_at=CASE WHEN excluded.deleted=0 THEN NULL "
    "WHEN records.deleted=1 THEN COALESCE(records.deleted_at, excluded.deleted_at) "
    "ELSE excluded.deleted_at END "
    "WHERE records.version <= excluded.version"
)
"""How a record write meets a stored one: a newer or equal version replaces it, an older
version is ignored (so a concurrent writer's newer version is never overwritten); the link
to a person is kept. ``deleted_at``: cleared by a live version, kept while the record stays
deleted (the first time it was marked), else the written row's (see :func:`_record_args`)."""
OPEN_STORED = ("pending", "retry")
"""The stored statuses of outbox entries not settled yet."""

OPEN_STATUSES = "(" + ", ".join(f"'{s}'" for s in OPEN_STORED) + ")"
""":data:`OPEN_STORED` as SQL, ``('pending', 'retry')``: the text the partial indexes of
schema 6 use (a query must say it the same way for SQLite to use them).

A claimed entry keeps its stored status and gets a lease (``lease_owner``, ``lease_until``):
a claim then changes no indexed column, so it rewrites the row and nothing else. It is
*reported* as ``leased`` (:data:`OUTBOX_STATUS`)."""

OPEN_REPORTED = frozenset({*OPEN_STORED, "leased"})
"""Statuses, as reported, of entries not settled yet."""

OUTBOX_STATUS = (
    f"CASE WHEN lease_owner IS NOT NULL AND status IN {OPEN_STATUSES} THEN 'leased' ELSE status END"
)
"""An entry's status as reported: ``leased`` while a worker holds it, else as stored."""

OUTBOX_COLUMNS = (
    "id, feed, recipient, person_id, record_kind, record_source, record_source_id, "
    f"record_version, idempotency_key, {OUTBOX_STATUS}, attempts, next_attempt_at, "
    "created_at, last_error, delivered_at, audit_seq, payload"
)


def record_from_row(r: Row, cipher: FieldCipher | None = None) -> RecordRow:
    """A :class:`RecordRow` from a row selected with :data:`RECORD_COLUMNS` (decrypted)."""
    payload = bytes(r[5])
    if cipher is not None:
        payload = cipher.reveal_payload(r[0], r[1], r[2], payload)
    return RecordRow(
        kind=r[0],
        source=r[1],
        source_id=r[2],
        owner=r[3],
        version=r[4],
        payload=payload,
        payload_hash=r[6],
        source_system=r[7],
        received_at=r[8],
        deleted=bool(r[9]),
        sensitivity=r[10],
        restricted=bool(r[11]),
        client_source_id=r[12],
        client_source=r[14],
        raw_hash=r[15],
        flags=r[16],
        person_id=r[13],
        deleted_at=r[17],
    )


def outbox_binding(fields: Sequence[Any]) -> str:
    """What an outbox payload's ciphertext is bound to (its associated data): the entry's
    feed, recipient, person, record version and idempotency key, in :data:`OUTBOX_COLUMNS`
    order (``fields`` = columns 1–8). A payload moved to another entry, or an entry whose
    person or record was edited, does not decrypt."""
    return "outbox|" + "|".join(str(f) for f in fields[:8])


def open_outbox_payload(cipher: FieldCipher, blob: bytes, fields: Sequence[Any]) -> bytes:
    """An outbox payload decrypted (``fields`` as for :func:`outbox_binding`). One sealed by
    an earlier release is bound to the idempotency key alone (``hub keys rotate`` re-seals
    it bound to the whole entry)."""
    try:
        return cipher.open_blob(blob, outbox_binding(fields))
    except DecryptionError:
        return cipher.open_blob(blob, str(fields[7]))


def outbox_from_row(r: Row, cipher: FieldCipher | None = None) -> OutboxRow:
    """An :class:`OutboxRow` from a row selected with :data:`OUTBOX_COLUMNS` (decrypted)."""
    payload = bytes(r[16])
    if cipher is not None:
        payload = open_outbox_payload(cipher, payload, r[1:9])
    return OutboxRow(
        id=int(r[0]),
        feed=r[1],
        recipient=r[2],
        person_id=r[3],
        record_kind=r[4],
        record_source=r[5],
        record_source_id=r[6],
        record_version=r[7],
        idempotency_key=r[8],
        status=r[9],
        attempts=int(r[10]),
        next_attempt_at=r[11],
        created_at=r[12],
        last_error=r[13],
        delivered_at=r[14],
        audit_seq=None if r[15] is None else int(r[15]),
        payload=payload,
    )


# A new entry is its person's head when nothing of that recipient and person is open.
_INSERT_OUTBOX = (
    "INSERT INTO outbox (feed, recipient, person_id, record_kind, record_source, "
    "record_source_id, record_version, idempotency_key, status, attempts, "
    "next_attempt_at, created_at, last_error, audit_seq, payload, head) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?, CASE WHEN EXISTS (SELECT 1 FROM outbox "
    f"WHERE recipient=? AND person_id=? AND status IN {OPEN_STATUSES}) THEN 0 ELSE 1 END) "
    "ON CONFLICT (idempotency_key) DO NOTHING"
)

_PROMOTE_NEXT = (
    "UPDATE outbox SET head=1 WHERE head=0 AND id IN (SELECT (SELECT MIN(o.id) FROM outbox o "
    "WHERE o.recipient=s.recipient AND o.person_id=s.person_id AND "
    f"o.status IN {OPEN_STATUSES}) FROM outbox s WHERE s.id IN ({{ids}}))"
)


@dataclass(frozen=True, slots=True)
class KeyedRecord:
    """A record whose match keys ``person_keys`` holds, as a re-key reads it."""

    key: tuple[str, str, str]
    """(kind, source, source_id)."""
    persons: tuple[str, ...]
    """The persons its keys are indexed under (one, but for damage)."""
    row: RecordRow | None
    """The stored row, decrypted; None when it is gone or does not decrypt."""
    unreadable: bool = False
    """Whether the row is there but decrypts with no key."""

    def __repr__(self) -> str:
        return f"<KeyedRecord {self.key[0]} of {len(self.persons)} person(s)>"


class SqlTransaction:
    """Every :class:`hub.core.ports.Transaction` operation, in portable SQL."""

    def __init__(self, conn: Connection, dialect: str, cipher: FieldCipher | None = None) -> None:
        self._c = conn
        self._dialect = dialect
        self._cipher = cipher
        self._savepoints = 0
        self._now: str | None = None

    def now(self) -> str:
        """This transaction's time (:func:`now_iso` when first asked, the same after): every
        record it marks deleted gets the same ``deleted_at``."""
        if self._now is None:
            self._now = now_iso()
        return self._now

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """See :meth:`hub.core.ports.Transaction.savepoint` (``SAVEPOINT`` in both dialects)."""
        self._savepoints += 1
        name = f"hub_sp_{self._savepoints}"
        await self._c.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            await self._c.execute(f"ROLLBACK TO SAVEPOINT {name}")
            await self._c.execute(f"RELEASE SAVEPOINT {name}")
            raise
        await self._c.execute(f"RELEASE SAVEPOINT {name}")

    # ---- records -------------------------------------------------------------------------

    async def upsert_records(self, rows: Sequence[RecordRow]) -> list[UpsertOutcome]:
        """See :meth:`hub.core.ports.Transaction.upsert_records`."""
        states = await self.stored_states(rows)
        outcomes: list[UpsertOutcome] = []
        changed: list[RecordRow] = []
        for row in rows:
            key = (row.kind, row.source, row.source_id)
            outcome = classify(row, states.get(key))
            outcomes.append(outcome)
            if outcome in ("inserted", "updated"):
                changed.append(row)
                states[key] = StoredState.written(row)
        await self.write_records(changed)
        return outcomes

    async def write_records(
        self, rows: Sequence[RecordRow], persons: Mapping[tuple[str, str, str], str] | None = None
    ) -> None:
        """See :meth:`hub.core.ports.Transaction.write_records`."""
        if not rows:
            return
        # One upsert; the WHERE keeps a concurrent writer's newer version.
        await self._c.executemany(
            f"INSERT INTO records ({RECORD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            + RECORD_UPSERT,
            self.stored_record_args(rows, persons),
        )

    def stored_record_args(
        self, rows: Sequence[RecordRow], persons: Mapping[tuple[str, str, str], str] | None = None
    ) -> list[tuple[Any, ...]]:
        """The :data:`RECORD_COLUMNS` values of rows as stored: protected fields encrypted,
        ``person_id`` from ``persons`` (by kind, source, source_id) where it names one, a
        deleted row's ``deleted_at`` its own or else this transaction's time."""
        cipher = self._cipher
        links = persons or {}
        now = self.now() if any(r.deleted for r in rows) else None
        return [
            _record_args(
                r,
                r.payload
                if cipher is None
                else cipher.protect_payload(r.kind, r.source, r.source_id, r.payload),
                links.get((r.kind, r.source, r.source_id), r.person_id),
                (r.deleted_at or now) if r.deleted else None,
            )
            for r in rows
        ]

    async def stored_states(
        self, rows: Sequence[RecordRow]
    ) -> dict[tuple[str, str, str], StoredState]:
        """See :meth:`hub.core.ports.Transaction.stored_states`."""
        found = await self._records_by_key(
            "kind, source, source_id, version, payload_hash, deleted, restricted, "
            "sensitivity, person_id, owner",
            [(r.kind, r.source, r.source_id) for r in rows],
        )
        return {
            key: StoredState(v[3], v[4], bool(v[5]), bool(v[6]), v[7], v[8], v[9])
            for key, v in found.items()
        }

    async def _records_by_key(
        self, columns: str, keys: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], Row]:
        """``columns`` (starting with kind, source, source_id) of the records with these
        keys, by key; looked up 300 keys per query."""
        found: dict[tuple[str, str, str], Row] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 300):
            where, args = _keys_where(wanted[start : start + 300])
            for r in await self._c.fetch(f"SELECT {columns} FROM records WHERE {where}", args):
                found[(r[0], r[1], r[2])] = r
        return found

    async def get_record(self, kind: str, source: str, source_id: str) -> RecordRow | None:
        """See :meth:`hub.core.ports.Transaction.get_record`."""
        r = await self._c.fetchrow(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE kind=? AND source=? AND source_id=?",
            (kind, source, source_id),
        )
        return None if r is None else record_from_row(r, self._cipher)

    async def records_of_person(
        self, person_id: str, kinds: Sequence[str] | None = None
    ) -> list[RecordRow]:
        """See :meth:`hub.core.ports.Transaction.records_of_person`."""
        # Two index look-ups (the person's own records; records about the person's client
        # records) rather than one scan testing both for every stored record.
        kind_test = f" AND r.kind IN ({','.join('?' * len(kinds))})" if kinds else ""
        kind_args = list(kinds or ())
        sql = (
            f"SELECT {_R_COLUMNS} FROM records r WHERE r.deleted=0 AND r.person_id=?{kind_test} "
            # CROSS JOIN: SQLite then finds the person's client records first (by person)
            # and their records through ``records_client``, never walking a kind's records.
            f"UNION SELECT {_R_COLUMNS} FROM records c CROSS JOIN records r "
            "WHERE c.kind='client' AND c.person_id=? AND r.client_source=c.source "
            f"AND r.client_source_id=c.source_id AND r.deleted=0{kind_test} "
            "ORDER BY 9, 1, 3"
        )
        args = [person_id, *kind_args, person_id, *kind_args]
        return [record_from_row(r, self._cipher) for r in await self._c.fetch(sql, args)]

    async def records_of_clients(
        self, clients: Sequence[tuple[str, str]], kinds: Sequence[str]
    ) -> list[RecordRow]:
        """See :meth:`hub.core.ports.Transaction.records_of_clients`."""
        by_source: dict[str, list[str]] = {}
        for source, source_id in dict.fromkeys(clients):
            by_source.setdefault(source, []).append(source_id)
        if not kinds:
            return []
        kind_marks = ",".join("?" * len(kinds))
        out: list[RecordRow] = []
        for source, ids in by_source.items():
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                rows = await self._c.fetch(
                    f"SELECT {RECORD_COLUMNS} FROM records WHERE client_source=? "
                    f"AND client_source_id IN ({','.join('?' * len(chunk))}) "
                    f"AND kind IN ({kind_marks}) AND deleted=0",
                    [source, *chunk, *kinds],
                )
                out += [record_from_row(r, self._cipher) for r in rows]
        out.sort(key=lambda r: (r.received_at, r.kind, r.source_id))
        return out

    async def mark_deleted_except(
        self, kind: str, source: str, keep: Iterable[str], scope_owner: str | None = None
    ) -> int:
        """See :meth:`hub.core.ports.Transaction.mark_deleted_except`."""
        keep_set = set(keep)
        sql = "SELECT source_id FROM records WHERE kind=? AND source=? AND deleted=0"
        args: list[Any] = [kind, source]
        if scope_owner is not None:
            sql += " AND owner=?"
            args.append(scope_owner)
        gone = [r[0] for r in await self._c.fetch(sql, args) if r[0] not in keep_set]
        return await self.mark_deleted(kind, source, gone)

    async def mark_deleted(self, kind: str, source: str, source_ids: Iterable[str]) -> int:
        """See :meth:`hub.core.ports.Transaction.mark_deleted`."""
        ids = list(dict.fromkeys(source_ids))
        marked = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marked += await self._c.execute(
                "UPDATE records SET deleted=1, deleted_at=? WHERE kind=? AND source=? "
                f"AND deleted=0 AND source_id IN ({','.join('?' * len(chunk))})",
                [self.now(), kind, source, *chunk],
            )
        if marked:
            await self._withdraw_dv_words(kind, source, ids)
        return marked

    # ---- identity ------------------------------------------------------------------------

    async def persons_with_keys(
        self,
        keys: Sequence[str],
        limit_per_key: int | None = None,
        capped: Sequence[str] = (),
    ) -> dict[str, set[str]]:
        """See :meth:`hub.core.ports.Transaction.persons_with_keys`."""
        out: dict[str, set[str]] = {}
        if limit_per_key is not None:
            keys, capped = (), [*capped, *keys]
        exact = list(dict.fromkeys(keys))
        few = list(dict.fromkeys(capped))
        while exact or few:
            part, exact = exact[:400], exact[400:]
            rest, few = few[:400], few[400:]
            selects: list[str] = []
            args: list[Any] = []
            if part:
                marks = ",".join("?" * len(part))
                selects.append(
                    f"SELECT DISTINCT match_key, person_id FROM person_keys "
                    f"WHERE match_key IN ({marks})"
                )
                args.extend(part)
            if rest:
                # A common name matches thousands: keep a few candidates per key.
                marks = ",".join("?" * len(rest))
                selects.append(
                    "SELECT match_key, person_id FROM (SELECT match_key, person_id, "
                    "ROW_NUMBER() OVER (PARTITION BY match_key ORDER BY person_id) AS rn "
                    "FROM (SELECT DISTINCT match_key, person_id FROM person_keys "
                    f"WHERE match_key IN ({marks})) d) r WHERE rn <= ?"
                )
                args.extend([*rest, limit_per_key or 8])
            for key, person in await self._c.fetch(" UNION ALL ".join(selects), args):
                out.setdefault(key, set()).add(person)
        return out

    async def create_person(self) -> str:
        """See :meth:`hub.core.ports.Transaction.create_person`."""
        person_id = new_person_id()
        await self._c.execute(
            "INSERT INTO persons (id, created_at) VALUES (?, ?)", (person_id, now_iso())
        )
        return person_id

    async def link_record(
        self, kind: str, source: str, source_id: str, person_id: str, keys: Sequence[str]
    ) -> None:
        """See :meth:`hub.core.ports.Transaction.link_record`."""
        await self._c.execute(
            "UPDATE records SET person_id=? WHERE kind=? AND source=? AND source_id=?",
            (person_id, kind, source, source_id),
        )
        await self._c.execute(
            "DELETE FROM person_keys WHERE kind=? AND source=? AND source_id=?",
            (kind, source, source_id),
        )
        if keys:
            await self._c.executemany(
                "INSERT INTO person_keys (match_key, person_id, kind, source, source_id) "
                "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                [(k, person_id, kind, source, source_id) for k in dict.fromkeys(keys)],
            )

    async def insert_persons(self, ids: Sequence[str]) -> None:
        """Create persons with ids the caller chose (see :func:`new_person_id`)."""
        at = now_iso()
        await self._c.executemany(
            "INSERT INTO persons (id, created_at) VALUES (?, ?)", [(i, at) for i in ids]
        )

    async def link_records(
        self, links: Sequence[tuple[str, str, str, str, Sequence[str]]], *, keys_only: bool = False
    ) -> None:
        """Link many records: (kind, source, source_id, person_id, blind keys) each.

        Keys are added: a record's earlier keys (an old name, an alias) stay as evidence for
        the same person. :meth:`unlink_record` removes them.
        """
        if not links:
            return
        if not keys_only:
            await self._c.executemany(
                "UPDATE records SET person_id=? WHERE kind=? AND source=? AND source_id=? "
                "AND (person_id IS NULL OR person_id <> ?)",
                [(p, k, s, i, p) for k, s, i, p, _ in links],
            )
        await self._c.executemany(
            "INSERT INTO person_keys (match_key, person_id, kind, source, source_id) "
            "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
            [(key, p, k, s, i) for k, s, i, p, keys in links for key in dict.fromkeys(keys)],
        )

    async def person_keys(self, person_id: str) -> set[str]:
        """Every blind match key indexed under a person."""
        rows = await self._c.fetch(
            "SELECT match_key FROM person_keys WHERE person_id=?", (person_id,)
        )
        return {r[0] for r in rows}

    async def keys_of_persons(self, person_ids: Sequence[str]) -> dict[str, set[str]]:
        """See :meth:`hub.core.ports.Transaction.keys_of_persons`."""
        out: dict[str, set[str]] = {}
        ids = list(dict.fromkeys(person_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for person, key in await self._c.fetch(
                "SELECT person_id, match_key FROM person_keys "
                f"WHERE person_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out.setdefault(person, set()).add(key)
        return out

    async def persons_of_clients(self, source: str, client_ids: Sequence[str]) -> dict[str, str]:
        """The person each client record of a source is linked to (unlinked ones left out)."""
        out: dict[str, str] = {}
        ids = list(dict.fromkeys(client_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for sid, person in await self._c.fetch(
                "SELECT source_id, person_id FROM records WHERE kind='client' AND source=? "
                f"AND source_id IN ({marks}) AND person_id IS NOT NULL",
                [source, *chunk],
            ):
                out[sid] = person
        return out

    async def unlink_record(self, kind: str, source: str, source_id: str) -> str | None:
        """See :meth:`hub.core.ports.Transaction.unlink_record`."""
        row = await self._c.fetchrow(
            "SELECT person_id FROM records WHERE kind=? AND source=? AND source_id=?",
            (kind, source, source_id),
        )
        if row is None or row[0] is None:
            return None
        await self._c.execute(
            "UPDATE records SET person_id=NULL WHERE kind=? AND source=? AND source_id=?",
            (kind, source, source_id),
        )
        await self._c.execute(
            "DELETE FROM person_keys WHERE kind=? AND source=? AND source_id=?",
            (kind, source, source_id),
        )
        return str(row[0])

    async def add_review(self, record: str, candidates: Sequence[str], reason: str) -> int:
        """See :meth:`hub.core.ports.Transaction.add_review`."""
        row = await self._c.fetchrow(
            "INSERT INTO identity_review (record, candidates, reason, status, created_at) "
            "VALUES (?,?,?,?,?) RETURNING id",
            (record, ",".join(sorted(candidates)), reason, "open", now_iso()),
        )
        assert row is not None
        return int(row[0])

    async def add_reviews(self, items: Sequence[tuple[str, Sequence[str], str]]) -> None:
        """See :meth:`hub.core.ports.Transaction.add_reviews`."""
        if not items:
            return
        at = now_iso()
        await self._c.executemany(
            "INSERT INTO identity_review (record, candidates, reason, status, created_at) "
            "VALUES (?,?,?,?,?)",
            [(record, ",".join(sorted(c)), reason, "open", at) for record, c, reason in items],
        )

    async def list_reviews(self, status: str = "open") -> list[ReviewItem]:
        """See :meth:`hub.core.ports.Transaction.list_reviews`."""
        rows = await self._c.fetch(
            "SELECT id, record, candidates, reason, status, created_at FROM identity_review "
            "WHERE status=? ORDER BY id",
            (status,),
        )
        return [
            ReviewItem(int(r[0]), r[1], tuple(filter(None, r[2].split(","))), r[3], r[4], r[5])
            for r in rows
        ]

    async def set_review_status(self, review_id: int, status: str) -> bool:
        """See :meth:`hub.core.ports.Transaction.set_review_status`."""
        n = await self._c.execute(
            "UPDATE identity_review SET status=? WHERE id=?", (status, review_id)
        )
        return n > 0

    async def set_birth_date(self, person_id: str, birth_date: str) -> None:
        """See :meth:`hub.core.ports.Transaction.set_birth_date`."""
        await self.set_birth_dates([(person_id, birth_date)])

    async def set_birth_dates(self, pairs: Sequence[tuple[str, str]]) -> None:
        """See :meth:`hub.core.ports.Transaction.set_birth_dates`."""
        if not pairs:
            return
        cipher = self._cipher
        await self._c.executemany(
            "UPDATE persons SET birth_date=? WHERE id=?",
            [
                (
                    birth
                    if cipher is None
                    else cipher.seal(birth.encode(), f"person|{person}".encode()),
                    person,
                )
                for person, birth in pairs
            ],
        )

    async def set_dv_status(
        self,
        source: str,
        client_id: str,
        fleeing: bool | None,
        as_of: str,
        said_by: str,
    ) -> None:
        """See :meth:`hub.core.ports.Transaction.set_dv_status`."""
        # The record's word goes wherever it was filed: a later version may name another
        # client (a row moved to the right person), whose status must then be settled too.
        filed = await self._take_dv_words(source, [said_by])
        if fleeing is None and not filed:
            return  # nothing said before, nothing now
        if fleeing is not None:
            await self._c.execute(
                "INSERT INTO dv_words (source, client_id, said_by, fleeing, as_of, updated_at) "
                "VALUES (?,?,?,?,?,?)",
                (source, client_id, said_by, int(fleeing), as_of, now_iso()),
            )
        for settled in sorted({client_id, *filed}):
            await self._settle_dv_status(source, settled)

    async def _settle_dv_status(self, source: str, client_id: str) -> None:
        """Derive a client's ``dv_status`` from its words: the latest dated (unknown dates
        last), fleeing winning a tie; no row when no word is left."""
        current = await self._c.fetchrow(
            "SELECT fleeing FROM dv_words WHERE source=? AND client_id=? "
            "ORDER BY as_of DESC, fleeing DESC LIMIT 1",
            (source, client_id),
        )
        if current is None:
            await self._c.execute(
                "DELETE FROM dv_status WHERE source=? AND client_id=?", (source, client_id)
            )
            return
        await self._c.execute(
            "INSERT INTO dv_status (source, client_id, fleeing, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT (source, client_id) DO UPDATE SET fleeing=excluded.fleeing, "
            "updated_at=excluded.updated_at",
            (source, client_id, current[0], now_iso()),
        )

    async def _withdraw_dv_words(self, kind: str, source: str, source_ids: Sequence[str]) -> None:
        """Withdraw the DV words of deleted records and settle their clients' status."""
        clients = await self._take_dv_words(source, [f"{kind}/{i}" for i in source_ids])
        for client_id in sorted(clients):
            await self._settle_dv_status(source, client_id)

    async def _take_dv_words(self, source: str, said_by: Sequence[str]) -> set[str]:
        """Remove the DV words these records (kind/source id) said; the clients they were
        filed under."""
        clients: set[str] = set()
        for start in range(0, len(said_by), _CHUNK):
            chunk = said_by[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = await self._c.fetch(
                f"SELECT client_id FROM dv_words WHERE source=? AND said_by IN ({marks})",
                [source, *chunk],
            )
            if rows:
                clients.update(r[0] for r in rows)
                await self._c.execute(
                    f"DELETE FROM dv_words WHERE source=? AND said_by IN ({marks})",
                    [source, *chunk],
                )
        return clients

    async def person_facts(self, person_id: str) -> tuple[str | None, bool]:
        """See :meth:`hub.core.ports.Transaction.person_facts`."""
        return (await self.persons_facts([person_id])).get(person_id, (None, False))

    # ---- consents ------------------------------------------------------------------------

    async def put_consents(self, consents: Sequence[tuple[str, str | None, str, bytes]]) -> int:
        """See :meth:`hub.core.ports.Transaction.put_consents`."""
        if not consents:
            return 0
        at = now_iso()
        # Locks the generation row (PostgreSQL): consent writers take turns, so generations
        # are committed in order and a reader never skips one.
        bumped = await self._c.fetchrow(
            "UPDATE consent_generation SET value = value + 1 WHERE id = 1 RETURNING value"
        )
        assert bumped is not None
        await self._c.executemany(
            "INSERT INTO consents (id, client_system, client_value, body, updated_at, "
            "generation) VALUES (?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET "
            "client_system=excluded.client_system, client_value=excluded.client_value, "
            "body=excluded.body, updated_at=excluded.updated_at, generation=excluded.generation",
            [
                (cid, system, value, self._seal_blob(body, f"consent|{cid}"), at, bumped[0])
                for cid, system, value, body in consents
            ],
        )
        return int(bumped[0])

    async def stored_consents(self, consent_ids: Sequence[str]) -> list[bytes]:
        """See :meth:`hub.core.ports.Transaction.stored_consents`."""
        if self._dialect == "postgresql":
            # The lock put_consents takes, taken first: nothing read here can change (in
            # another transaction) before this one writes and commits.
            await self._c.fetchrow("SELECT value FROM consent_generation WHERE id = 1 FOR UPDATE")
        ids = list(dict.fromkeys(consent_ids))
        out: list[bytes] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await self._c.fetch(
                f"SELECT id, body FROM consents WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            out += [self._open_blob(bytes(r[1]), f"consent|{r[0]}") for r in rows]
        return out

    async def all_consents(self) -> list[bytes]:
        """See :meth:`hub.core.ports.Transaction.all_consents`."""
        return await self.consents_since(0)

    async def consent_generation(self) -> int:
        """See :meth:`hub.core.ports.Transaction.consent_generation`."""
        row = await self._c.fetchrow("SELECT value FROM consent_generation WHERE id = 1")
        return 0 if row is None else int(row[0])

    async def bump_consent_generation(self) -> None:
        """See :meth:`hub.core.ports.Transaction.bump_consent_generation`."""
        await self._c.execute("UPDATE consent_generation SET value = value + 1 WHERE id = 1")

    async def consents_since(self, generation: int) -> list[bytes]:
        """See :meth:`hub.core.ports.Transaction.consents_since`."""
        rows = await self._c.fetch(
            "SELECT id, body FROM consents WHERE generation > ? ORDER BY id", (generation,)
        )
        return [self._open_blob(bytes(r[1]), f"consent|{r[0]}") for r in rows]

    def _seal_blob(self, data: bytes, aad: str) -> bytes:
        return data if self._cipher is None else self._cipher.seal_blob(data, aad)

    def _open_blob(self, data: bytes, aad: str) -> bytes:
        return data if self._cipher is None else self._cipher.open_blob(data, aad)

    # ---- audit ---------------------------------------------------------------------------

    async def audit_head(self) -> tuple[int, str] | None:
        """See :meth:`hub.core.ports.Transaction.audit_head`."""
        lock = " FOR UPDATE" if self._dialect == "postgresql" else ""
        row = await self._c.fetchrow(f"SELECT seq, hash FROM audit_head WHERE id=1{lock}")
        return None if row is None else (int(row[0]), str(row[1]))

    async def append_audit(self, rows: Sequence[AuditRow], person_ids: Sequence[str]) -> None:
        """Append chained entries (with the person each is about) and move the chain head."""
        if not rows:
            return
        await self._c.executemany(
            "INSERT INTO audit_log (seq, person_id, body, prev_hash, hash) VALUES (?,?,?,?,?)",
            [
                (r.seq, p, r.body, r.prev_hash, r.hash)
                for r, p in zip(rows, person_ids, strict=True)
            ],
        )
        last = rows[-1]
        await self._c.execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seq=excluded.seq, hash=excluded.hash",
            (last.seq, last.hash),
        )

    # ---- outbox --------------------------------------------------------------------------

    async def enqueue(self, rows: Sequence[OutboxRow]) -> list[int]:
        """See :meth:`hub.core.ports.Transaction.enqueue`."""
        ids: list[int] = []
        for r in rows:
            got = await self._c.fetchrow(_INSERT_OUTBOX + " RETURNING id", self._outbox_args(r))
            if got is not None:
                ids.append(int(got[0]))
        return ids

    async def enqueue_many(self, rows: Sequence[OutboxRow]) -> None:
        """Add deliveries in one statement; a duplicate idempotency key is ignored."""
        if rows:
            await self._c.executemany(_INSERT_OUTBOX, [self._outbox_args(r) for r in rows])

    def _outbox_args(self, r: OutboxRow) -> tuple[Any, ...]:
        entry = (
            r.feed,
            r.recipient,
            r.person_id,
            r.record_kind,
            r.record_source,
            r.record_source_id,
            r.record_version,
            r.idempotency_key,
        )
        return (
            *entry,
            r.status,
            r.attempts,
            r.next_attempt_at,
            r.created_at,
            r.last_error,
            r.audit_seq,
            self._seal_blob(r.payload, outbox_binding(entry)),
            r.recipient,
            r.person_id,
        )

    # ---- inbound de-duplication ----------------------------------------------------------

    async def seen_message(self, sender: str, control_id: str) -> tuple[str, bytes] | None:
        """See :meth:`hub.core.ports.Transaction.seen_message`."""
        row = await self._c.fetchrow(
            "SELECT content_hash, response FROM inbound_messages WHERE sender=? AND control_id=?",
            (sender, control_id),
        )
        return None if row is None else (str(row[0]), bytes(row[1]))

    async def remember_message(
        self, sender: str, control_id: str, content_hash: str, response: bytes
    ) -> None:
        """See :meth:`hub.core.ports.Transaction.remember_message`."""
        await self.remember_messages([(sender, control_id, content_hash, response)])

    async def seen_messages(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, bytes]]:
        """See :meth:`hub.core.ports.Transaction.seen_messages`."""
        found: dict[tuple[str, str], tuple[str, bytes]] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 300):
            chunk = wanted[start : start + 300]
            where = " OR ".join(["(sender=? AND control_id=?)"] * len(chunk))
            for sender, control_id, content_hash, response in await self._c.fetch(
                "SELECT sender, control_id, content_hash, response FROM inbound_messages "
                f"WHERE {where}",
                [v for k in chunk for v in k],
            ):
                found[(sender, control_id)] = (str(content_hash), bytes(response))
        return found

    async def remember_messages(self, messages: Sequence[tuple[str, str, str, bytes]]) -> None:
        """See :meth:`hub.core.ports.Transaction.remember_messages`."""
        if not messages:
            return
        at = now_iso()
        await self._c.executemany(
            "INSERT INTO inbound_messages (sender, control_id, content_hash, response, "
            "received_at) VALUES (?,?,?,?,?) ON CONFLICT (sender, control_id) DO UPDATE SET "
            "content_hash=excluded.content_hash, response=excluded.response, "
            "received_at=excluded.received_at",
            [(sender, cid, content, response, at) for sender, cid, content, response in messages],
        )

    # ---- delivery at send time (batched) -------------------------------------------------

    async def record_heads(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], RecordHead]:
        """See :meth:`hub.core.ports.Transaction.record_heads`."""
        found = await self._records_by_key(
            "kind, source, source_id, owner, source_system, received_at, raw_hash, deleted, "
            "sensitivity, restricted, flags",
            keys,
        )
        return {
            key: RecordHead(r[3], r[4], r[5], r[6], bool(r[7]), r[8], bool(r[9]), r[10])
            for key, r in found.items()
        }

    async def persons_facts(self, person_ids: Sequence[str]) -> dict[str, tuple[str | None, bool]]:
        """See :meth:`hub.core.ports.Transaction.persons_facts`."""
        out: dict[str, tuple[str | None, bool]] = {}
        ids = list(dict.fromkeys(person_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await self._c.fetch(
                "SELECT p.id, p.birth_date, EXISTS (SELECT 1 FROM dv_status d JOIN records c "
                "ON c.kind='client' AND c.source=d.source AND c.source_id=d.client_id "
                "WHERE c.person_id=p.id AND d.fleeing=1) FROM persons p "
                f"WHERE p.id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for pid, birth, fleeing in rows:
                if birth is not None and self._cipher is not None and birth.startswith(PREFIX):
                    birth = self._cipher.open(birth, f"person|{pid}".encode()).decode()
                out[pid] = (birth, bool(fleeing))
        return out

    async def settle_outbox(
        self, entries: Sequence[tuple[int, str, str, str | None]], worker: str | None = None
    ) -> set[int]:
        """See :meth:`hub.core.ports.Transaction.settle_outbox`."""
        groups: dict[tuple[str, str, str | None], list[int]] = {}
        for outbox_id, status, error, retry_at in entries:
            groups.setdefault((status, error[:500], retry_at), []).append(outbox_id)
        stamp = now_iso()
        settled: set[int] = set()
        for (status, error, retry_at), ids in groups.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                sql = (
                    "UPDATE outbox SET status=?, last_error=?, next_attempt_at=COALESCE(?, "
                    "next_attempt_at), delivered_at=?, lease_owner=NULL, lease_until=NULL "
                    f"WHERE id IN ({','.join('?' * len(chunk))})"
                )
                delivered = stamp if status == "delivered" else None
                args: list[Any] = [status, error, retry_at, delivered, *chunk]
                if worker is not None:
                    sql += " AND lease_owner=?"
                    args.append(worker)
                for r in await self._c.fetch(sql + " RETURNING id", args):
                    settled.add(int(r[0]))
        closed = [i for i, status, _, _ in entries if i in settled and status not in OPEN_REPORTED]
        await self.promote_next(closed)
        return settled

    async def repair_heads(self) -> int:
        """Mark as head every open entry with nothing open before it of its recipient and
        person but not marked (on PostgreSQL, an entry enqueued while the entry before it
        was being settled in another transaction can miss both marks); how many."""
        return await self._c.execute(
            f"UPDATE outbox SET head=1 WHERE head=0 AND status IN {OPEN_STATUSES} AND "
            "NOT EXISTS (SELECT 1 FROM outbox p WHERE p.recipient=outbox.recipient AND "
            f"p.person_id=outbox.person_id AND p.id < outbox.id AND p.status IN {OPEN_STATUSES})"
        )

    async def release_legacy_leases(self, expired_before: str | None) -> int:
        """Give back entries claimed the schema-5 way (``status='leased'``, by a process of
        an earlier release still running after the upgrade) whose lease ran out before
        ``expired_before`` (every one when None); how many."""
        sql = "UPDATE outbox SET status='pending', lease_owner=NULL, lease_until=NULL "
        sql += "WHERE status='leased'"
        if expired_before is None:
            return await self._c.execute(sql)
        return await self._c.execute(sql + " AND lease_until < ?", (expired_before,))

    async def promote_next(self, settled_ids: Sequence[int]) -> None:
        """Make the next open entry of each settled entry's recipient and person its head
        (claims take heads only)."""
        for start in range(0, len(settled_ids), 500):
            chunk = settled_ids[start : start + 500]
            await self._c.execute(_PROMOTE_NEXT.format(ids=",".join("?" * len(chunk))), chunk)

    # ---- scheduled feeds -----------------------------------------------------------------

    async def records_by_keys(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], RecordRow]:
        """See :meth:`hub.core.ports.Transaction.records_by_keys`."""
        found = await self._records_by_key(RECORD_COLUMNS, keys)
        return {key: record_from_row(r, self._cipher) for key, r in found.items()}

    async def advance_feed(
        self, feed: str, owner: str, cursor: FeedCursor, lease_until: str
    ) -> bool:
        """See :meth:`hub.core.ports.Transaction.advance_feed`."""
        kind, source, source_id = cursor.key or (None, None, None)
        n = await self._c.execute(
            "UPDATE feed_cursors SET cursor=?, cursor_kind=?, cursor_source=?, "
            "cursor_source_id=?, updated_at=?, lease_until=? WHERE feed=? AND lease_owner=?",
            (cursor.received_at, kind, source, source_id, now_iso(), lease_until, feed, owner),
        )
        return n > 0

    async def hold_for_client(self, feed: str, keys: Sequence[tuple[str, str, str]]) -> None:
        """See :meth:`hub.core.ports.Transaction.hold_for_client`."""
        stamp = now_iso()
        await self._c.executemany(
            "INSERT INTO feed_waiting (feed, kind, source, source_id, since) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(feed, *key, stamp) for key in dict.fromkeys(keys)],
        )

    async def waiting_ready(self, feed: str, limit: int) -> list[tuple[str, str, str]]:
        """See :meth:`hub.core.ports.Transaction.waiting_ready`."""
        rows = await self._c.fetch(
            "SELECT w.kind, w.source, w.source_id FROM feed_waiting w LEFT JOIN records r "
            "ON r.kind=w.kind AND r.source=w.source AND r.source_id=w.source_id "
            "WHERE w.feed=? AND (r.kind IS NULL OR r.deleted=1 OR EXISTS (SELECT 1 FROM "
            "records c WHERE c.kind='client' AND c.source=r.client_source AND "
            "c.source_id=r.client_source_id AND c.person_id IS NOT NULL)) "
            "ORDER BY r.received_at, w.kind, w.source, w.source_id LIMIT ?",
            (feed, limit),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def stop_waiting(self, feed: str, keys: Sequence[tuple[str, str, str]]) -> None:
        """See :meth:`hub.core.ports.Transaction.stop_waiting`."""
        await self._c.executemany(
            "DELETE FROM feed_waiting WHERE feed=? AND kind=? AND source=? AND source_id=?",
            [(feed, *key) for key in dict.fromkeys(keys)],
        )

    async def queued_keys(self, idempotency_keys: Sequence[str]) -> set[str]:
        """See :meth:`hub.core.ports.Transaction.queued_keys`."""
        found: set[str] = set()
        keys = list(dict.fromkeys(idempotency_keys))
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            rows = await self._c.fetch(
                "SELECT idempotency_key FROM outbox "
                f"WHERE idempotency_key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update(r[0] for r in rows)
        return found

    # ---- the blind index: the key the store was built with, re-keying -------------------

    async def store_meta(self, name: str, *, lock: bool = False) -> str | None:
        """A fact about the store (``store_meta``), None when not recorded; with ``lock``,
        its row stays locked until the transaction ends (PostgreSQL)."""
        suffix = " FOR UPDATE" if lock and self._dialect == "postgresql" else ""
        row = await self._c.fetchrow(f"SELECT value FROM store_meta WHERE name=?{suffix}", (name,))
        return None if row is None else str(row[0])

    async def put_store_meta(self, name: str, value: str) -> None:
        """Record a fact about the store, replacing what was recorded under ``name``."""
        await self._c.execute(
            "INSERT INTO store_meta (name, value, updated_at) VALUES (?,?,?) ON CONFLICT "
            "(name) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
            (name, value, now_iso()),
        )

    async def adopt_store_meta(self, name: str, value: str) -> str:
        """The fact recorded under ``name``, recording ``value`` first when there is none.

        On PostgreSQL the row is read under a share lock: while a re-key holds it (locked
        for update until it commits), this waits, then reads what the re-key wrote.
        """
        await self._c.execute(
            "INSERT INTO store_meta (name, value, updated_at) VALUES (?,?,?) "
            "ON CONFLICT (name) DO NOTHING",
            (name, value, now_iso()),
        )
        suffix = " FOR SHARE" if self._dialect == "postgresql" else ""
        row = await self._c.fetchrow(f"SELECT value FROM store_meta WHERE name=?{suffix}", (name,))
        assert row is not None
        return str(row[0])

    async def count_person_keys(self) -> int:
        """How many match keys ``person_keys`` holds."""
        row = await self._c.fetchrow("SELECT COUNT(*) FROM person_keys")
        return 0 if row is None else int(row[0])

    async def keyed_records(self, after: tuple[str, str, str], limit: int) -> list[KeyedRecord]:
        """The next ``limit`` records (after ``after``, in key order) whose match keys
        ``person_keys`` holds, each with the persons its keys are indexed under and its
        stored row, decrypted (None when the row is gone or does not decrypt)."""
        page = [
            (r[0], r[1], r[2])
            for r in await self._c.fetch(
                "SELECT DISTINCT kind, source, source_id FROM person_keys "
                "WHERE (kind, source, source_id) > (?, ?, ?) "
                "ORDER BY kind, source, source_id LIMIT ?",
                (*after, limit),
            )
        ]
        if not page:
            return []
        persons: dict[tuple[str, str, str], set[str]] = {}
        for r in await self._c.fetch(
            "SELECT DISTINCT kind, source, source_id, person_id FROM person_keys "
            "WHERE (kind, source, source_id) >= (?, ?, ?) "
            "AND (kind, source, source_id) <= (?, ?, ?)",
            (*page[0], *page[-1]),
        ):
            persons.setdefault((r[0], r[1], r[2]), set()).add(r[3])
        rows = await self._records_by_key(RECORD_COLUMNS, page)
        return [self._keyed(key, persons.get(key, set()), rows.get(key)) for key in page]

    def _keyed(self, key: tuple[str, str, str], persons: set[str], raw: Row | None) -> KeyedRecord:
        """A :class:`KeyedRecord` of a stored row (decrypted here, one at a time, so one that
        does not decrypt is told apart from the others)."""
        if raw is None:
            return KeyedRecord(key, tuple(sorted(persons)), None)
        try:
            row = record_from_row(raw, self._cipher)
        except DecryptionError:
            return KeyedRecord(key, tuple(sorted(persons)), None, unreadable=True)
        return KeyedRecord(key, tuple(sorted(persons)), row)

    async def replace_record_keys(
        self,
        records: Sequence[tuple[str, str, str]],
        links: Sequence[tuple[str, str, str, str, Sequence[str]]],
    ) -> int:
        """Remove every match key of ``records`` and index ``links`` (kind, source,
        source_id, person, blind keys) instead; returns the keys written."""
        await self._c.executemany(
            "DELETE FROM person_keys WHERE kind=? AND source=? AND source_id=?", list(records)
        )
        rows = [(key, p, k, s, i) for k, s, i, p, keys in links for key in dict.fromkeys(keys)]
        if rows:
            await self._c.executemany(
                "INSERT INTO person_keys (match_key, person_id, kind, source, source_id) "
                "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                rows,
            )
        return len(rows)

    async def consent_bodies(self, after: str, limit: int) -> list[tuple[str, bytes]]:
        """The next ``limit`` stored consents (id after ``after``, in id order): id and
        body, decrypted."""
        rows = await self._c.fetch(
            "SELECT id, body FROM consents WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
        )
        return [(r[0], self._open_blob(bytes(r[1]), f"consent|{r[0]}")) for r in rows]

    async def set_consent_values(self, values: Sequence[tuple[str, str]]) -> None:
        """Set the blinded client value of consents: (consent id, value) each."""
        if values:
            await self._c.executemany(
                "UPDATE consents SET client_value=? WHERE id=?", [(v, cid) for cid, v in values]
            )


def _keys_where(keys: Sequence[tuple[str, str, str]]) -> tuple[str, list[Any]]:
    """A WHERE clause matching records by (kind, source, source_id), with its arguments."""
    if len({(kind, source) for kind, source, _ in keys}) == 1:
        marks = ",".join("?" * len(keys))
        return (
            f"kind=? AND source=? AND source_id IN ({marks})",
            [keys[0][0], keys[0][1], *(k[2] for k in keys)],
        )
    where = " OR ".join(["(kind=? AND source=? AND source_id=?)"] * len(keys))
    return where, [v for k in keys for v in k]


def _record_args(
    r: RecordRow, payload: bytes, person_id: str | None, deleted_at: str | None
) -> tuple[Any, ...]:
    """The INSERT arguments of a record row, with ``payload`` as stored (sealed) and the
    ``deleted_at`` to write (None for a live row)."""
    return (
        r.kind,
        r.source,
        r.source_id,
        r.owner,
        r.version,
        payload,
        r.payload_hash,
        r.source_system,
        r.received_at,
        int(r.deleted),
        r.sensitivity,
        int(r.restricted),
        r.client_source_id,
        person_id,
        r.client_source,
        r.raw_hash,
        r.flags,
        deleted_at,
    )
