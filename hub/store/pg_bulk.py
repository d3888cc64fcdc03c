"""PostgreSQL bulk writes: a large batch goes through ``COPY`` into a staging table.

:class:`PgTransaction` runs the shared SQL of :class:`hub.store.sql.SqlTransaction` and
replaces its row-by-row bulk writes, for batches of :data:`COPY_THRESHOLD` rows or more,
with one binary ``COPY`` (``asyncpg.copy_records_to_table``) into a temporary table and one
set-based statement from it. Small batches (an HL7 message writes two rows) keep the shared
statements. The results are the same row for row: the same upsert rule (a stored newer
version is never replaced), the same protected-field encryption before the rows leave the
process, the same person links and keys, the same ``deleted_at`` (the staged rows carry the
values :meth:`~hub.store.sql.SqlTransaction.stored_record_args` gives, and the upsert is the
shared ``RECORD_UPSERT``). A batch that names one record twice is handed to
the shared statements, whose row-by-row order decides which copy wins.

The staging tables are temporary (``ON COMMIT DELETE ROWS``): made once per connection,
emptied at every commit, gone with a rollback of the transaction or savepoint that made
them (and made again at the next use). The set-based statements are sent unprepared, so
each is planned against the tables' current size.

Look-ups by many ids (stored states, persons of clients, persons of match keys) are one
query each, with the ids as one array parameter probed id by id through the index: the
shared ``IN (…)`` lists, planned without statistics on a table the running import fills,
became a scan of every record of the source per batch (an import slowing with its size).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from hub.core.ports import OutboxRow, RecordRow, StoredState
from hub.crypto import FieldCipher
from hub.store.sql import (
    OPEN_STATUSES,
    OPEN_STORED,
    RECORD_COLUMNS,
    RECORD_UPSERT,
    Connection,
    SqlTransaction,
    now_iso,
)

COPY_THRESHOLD = 64
"""Rows from which a bulk write goes through ``COPY`` (below it, one ``executemany``)."""

_LINK_COLUMNS = "kind, source, source_id, person_id"
_KEY_COLUMNS = "match_key, person_id, kind, source, source_id"
_STAGING = {
    "hub_stage_records": f"SELECT {RECORD_COLUMNS} FROM records",
    "hub_stage_links": f"SELECT {_LINK_COLUMNS} FROM records",
    "hub_stage_keys": f"SELECT {_KEY_COLUMNS} FROM person_keys",
}
_MAKE_STAGING = {
    name: f"CREATE TEMP TABLE IF NOT EXISTS {name} ON COMMIT DELETE ROWS AS {query} WITH NO DATA"
    for name, query in _STAGING.items()
}
_UPSERT_STAGED_RECORDS = (
    f"INSERT INTO records ({RECORD_COLUMNS}) SELECT {RECORD_COLUMNS} "
    "FROM pg_temp.hub_stage_records " + RECORD_UPSERT
)
_LINK_STAGED = (
    "UPDATE records r SET person_id=l.person_id FROM pg_temp.hub_stage_links l "
    "WHERE r.kind=l.kind AND r.source=l.source AND r.source_id=l.source_id "
    "AND (r.person_id IS NULL OR r.person_id <> l.person_id)"
)
_ADD_STAGED_KEYS = (
    f"INSERT INTO person_keys ({_KEY_COLUMNS}) SELECT {_KEY_COLUMNS} "
    "FROM pg_temp.hub_stage_keys ON CONFLICT DO NOTHING"
)

# Look-ups by many ids: one index probe per id, whatever the planner's row estimates (a
# table filled by the running import has none yet, and ``col = ANY($n)`` as a filter is a
# linear search of the array for every row of the source). OFFSET 0 keeps each probe a
# separate, parameterised subquery.
_STATES_BY_ID = (
    "SELECT k.id, r.version, r.payload_hash, r.deleted, r.restricted, r.sensitivity, "
    "r.person_id, r.owner FROM unnest(?::text[]) AS k(id) CROSS JOIN LATERAL (SELECT version, "
    "payload_hash, deleted, restricted, sensitivity, person_id, owner FROM records "
    "WHERE kind=? AND source=? AND source_id=k.id OFFSET 0) r"
)
_PERSONS_BY_ID = (
    "SELECT k.id, r.person_id FROM unnest(?::text[]) AS k(id) CROSS JOIN LATERAL "
    "(SELECT person_id FROM records WHERE kind='client' AND source=? AND source_id=k.id "
    "AND person_id IS NOT NULL OFFSET 0) r"
)
_PERSONS_BY_KEY = (
    "SELECT DISTINCT k.key, p.person_id FROM unnest(?::text[]) AS k(key) CROSS JOIN LATERAL "
    "(SELECT person_id FROM person_keys WHERE match_key=k.key OFFSET 0) p"
)
# A common name matches thousands: a few candidates per key (the smallest person ids, found
# through the key's index entries, never by walking the person index in order).
_FEW_PERSONS_BY_KEY = (
    "SELECT k.key, p.person_id FROM unnest(?::text[]) AS k(key) CROSS JOIN LATERAL "
    "(SELECT person_id FROM (SELECT person_id FROM person_keys WHERE match_key=k.key "
    "OFFSET 0) m GROUP BY person_id ORDER BY person_id LIMIT ?) p"
)


def _columns(spec: str) -> list[str]:
    return [c.strip() for c in spec.split(",")]


class CopyConnection(Connection, Protocol):
    """A :class:`~hub.store.sql.Connection` that can also ``COPY`` rows into a table."""

    async def copy_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        schema: str | None = None,
    ) -> None:
        """Binary ``COPY`` of ``rows`` into ``table`` (``schema.table`` with ``schema``)."""
        ...


class PgTransaction(SqlTransaction):
    """The shared SQL on PostgreSQL, with ``COPY`` for large batches and array look-ups."""

    def __init__(
        self, conn: CopyConnection, dialect: str, cipher: FieldCipher | None = None
    ) -> None:
        super().__init__(conn, dialect, cipher)
        self._pg = conn
        self._filled: set[str] = set()
        self.heads_behind: set[tuple[str, str]] = set()
        """(recipient, person) pairs given an entry that is not head because an entry of
        another transaction was open (see :meth:`recheck_heads`)."""
        self.settled_heads: list[int] = []
        """Outbox entries settled here whose turn passed to the next entry."""

    async def _stage(self, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
        """Fill one staging table, empty before (made now, or emptied if used already).

        Made if missing every time: a rolled-back savepoint takes a table made inside it.
        """
        make = _MAKE_STAGING[table]
        await self._pg.execute(
            f"{make};TRUNCATE pg_temp.{table}" if table in self._filled else make
        )
        self._filled.add(table)
        await self._pg.copy_rows(table, _columns(columns), rows, schema="pg_temp")

    # ---- outbox heads across transactions ------------------------------------------------
    #
    # An entry is enqueued as head when nothing of its recipient and person is open, and a
    # settled head passes the mark on. Under READ COMMITTED an enqueue and a settle of the
    # same person in two transactions can each miss the other's uncommitted row: the new
    # entry is not head (the old one looked open) and the settle found no next entry. So,
    # after commit, each side checks again (:meth:`recheck_heads`): whichever commits
    # second sees what the first committed. Claims repair what is left every 30 s.

    async def enqueue(self, rows: Sequence[OutboxRow]) -> list[int]:
        """See :meth:`hub.core.ports.Transaction.enqueue` (heads rechecked after commit)."""
        ids = await super().enqueue(rows)
        await self._note_heads_behind(rows)
        return ids

    async def enqueue_many(self, rows: Sequence[OutboxRow]) -> None:
        """Add deliveries (heads rechecked after commit, see above)."""
        await super().enqueue_many(rows)
        await self._note_heads_behind(rows)

    async def promote_next(self, settled_ids: Sequence[int]) -> None:
        """Pass the turn of settled heads on, now and again after commit."""
        await super().promote_next(settled_ids)
        self.settled_heads.extend(settled_ids)

    async def _note_heads_behind(self, rows: Sequence[OutboxRow]) -> None:
        if not rows:
            return
        # Entries behind one of this transaction's own heads need no check: nobody else
        # can settle an entry this transaction has not committed. The entries are found by
        # joining their keys and sorted out here: in SQL, matching each against the others
        # (or against the key array) ran as a nested loop, seconds to minutes per batch of
        # 5,000 once persons had a backlog of open entries.
        mine = await self._pg.fetch(
            "SELECT o.recipient, o.person_id, o.head, o.status FROM unnest(?::text[]) AS "
            "k(key) JOIN outbox o ON o.idempotency_key = k.key",
            [[r.idempotency_key for r in rows]],
        )
        behind = {(str(r[0]), str(r[1])) for r in mine if not r[2]}
        ours = {(str(r[0]), str(r[1])) for r in mine if r[2] and r[3] in OPEN_STORED}
        self.heads_behind.update(behind - ours)

    def needs_head_recheck(self) -> bool:
        """Whether :meth:`recheck_heads` has anything to do after this transaction."""
        return bool(self.heads_behind or self.settled_heads)

    async def recheck_heads(self, done: PgTransaction) -> None:
        """In a transaction after ``done`` committed: make the first open entry of each of
        its (recipient, person) pairs head where nothing marks one."""
        await SqlTransaction.promote_next(self, done.settled_heads)
        if done.heads_behind:
            recipients, persons = zip(*sorted(done.heads_behind), strict=True)
            await self._pg.execute(
                "UPDATE outbox SET head=1 WHERE head=0 AND id IN (SELECT (SELECT MIN(o.id) "
                "FROM outbox o WHERE o.recipient=p.recipient AND o.person_id=p.person_id AND "
                f"o.status IN {OPEN_STATUSES}) FROM unnest(?::text[], ?::text[]) "
                "AS p(recipient, person_id))",
                [list(recipients), list(persons)],
            )

    # ---- records -------------------------------------------------------------------------

    async def write_records(
        self, rows: Sequence[RecordRow], persons: Mapping[tuple[str, str, str], str] | None = None
    ) -> None:
        """See :meth:`hub.core.ports.Transaction.write_records`."""
        if len(rows) < COPY_THRESHOLD or _repeats([(r.kind, r.source, r.source_id) for r in rows]):
            await super().write_records(rows, persons)
            return
        args = self.stored_record_args(rows, persons)
        await self._stage("hub_stage_records", RECORD_COLUMNS, args)
        await self._pg.execute(_UPSERT_STAGED_RECORDS)

    async def stored_states(
        self, rows: Sequence[RecordRow]
    ) -> dict[tuple[str, str, str], StoredState]:
        """See :meth:`hub.core.ports.Transaction.stored_states` (one query per kind/source)."""
        wanted: dict[tuple[str, str], dict[str, None]] = {}
        for r in rows:
            wanted.setdefault((r.kind, r.source), {})[r.source_id] = None
        found: dict[tuple[str, str, str], StoredState] = {}
        for (kind, source), ids in wanted.items():
            for v in await self._pg.fetch(_STATES_BY_ID, (list(ids), kind, source)):
                found[(kind, source, v[0])] = StoredState(
                    v[1], v[2], bool(v[3]), bool(v[4]), v[5], v[6], v[7]
                )
        return found

    # ---- identity ------------------------------------------------------------------------

    async def insert_persons(self, ids: Sequence[str]) -> None:
        """Create persons with ids the caller chose; a large batch is one ``COPY``."""
        if len(ids) < COPY_THRESHOLD:
            await super().insert_persons(ids)
            return
        at = now_iso()
        await self._pg.copy_rows("persons", ["id", "created_at"], [(i, at) for i in ids])

    async def link_records(
        self, links: Sequence[tuple[str, str, str, str, Sequence[str]]], *, keys_only: bool = False
    ) -> None:
        """Link many records (see :meth:`SqlTransaction.link_records`); large ones by ``COPY``."""
        if len(links) < COPY_THRESHOLD or _repeats([(k, s, i) for k, s, i, _, _ in links]):
            await super().link_records(links, keys_only=keys_only)
            return
        statements = []
        if not keys_only:
            await self._stage(
                "hub_stage_links", _LINK_COLUMNS, [(k, s, i, p) for k, s, i, p, _ in links]
            )
            statements.append(_LINK_STAGED)
        keys = [(key, p, k, s, i) for k, s, i, p, ks in links for key in dict.fromkeys(ks)]
        if keys:
            await self._stage("hub_stage_keys", _KEY_COLUMNS, keys)
            statements.append(_ADD_STAGED_KEYS)
        if statements:
            await self._pg.execute(";".join(statements))

    async def persons_of_clients(self, source: str, client_ids: Sequence[str]) -> dict[str, str]:
        """The person each client record of a source is linked to (unlinked ones left out)."""
        if not client_ids:
            return {}
        rows = await self._pg.fetch(_PERSONS_BY_ID, (list(dict.fromkeys(client_ids)), source))
        return {sid: person for sid, person in rows}

    async def persons_with_keys(
        self,
        keys: Sequence[str],
        limit_per_key: int | None = None,
        capped: Sequence[str] = (),
    ) -> dict[str, set[str]]:
        """See :meth:`hub.core.ports.Transaction.persons_with_keys` (one query per form)."""
        if limit_per_key is not None:
            keys, capped = (), [*capped, *keys]
        out: dict[str, set[str]] = {}
        for sql, args in (
            (_PERSONS_BY_KEY, (list(dict.fromkeys(keys)),)),
            (_FEW_PERSONS_BY_KEY, (list(dict.fromkeys(capped)), limit_per_key or 8)),
        ):
            if args[0]:
                for key, person in await self._pg.fetch(sql, args):
                    out.setdefault(key, set()).add(person)
        return out


def _repeats(keys: Sequence[tuple[str, str, str]]) -> bool:
    """Whether a record key occurs more than once."""
    return len(set(keys)) < len(keys)
