"""The store operations that live outside a caller's unit of work, shared by both adapters."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.core.ports import AuditRow, FeedCursor, OutboxRow, RecordRow
from hub.crypto import DecryptionError, FieldCipher
from hub.store import schema
from hub.store.sql import (
    OPEN_REPORTED,
    OPEN_STATUSES,
    OUTBOX_COLUMNS,
    RECORD_COLUMNS,
    Connection,
    Row,
    SqlTransaction,
    now_iso,
    open_outbox_payload,
    outbox_binding,
    outbox_from_row,
    record_from_row,
)

log = logging.getLogger("hub.store")

HEAD_REPAIR_SECONDS = 30.0
"""How often a PostgreSQL store's claims first repair outbox heads a race left unmarked."""
INDEX_KEY_CHECK = "index_key_check"
"""The ``store_meta`` name of the check value of the blind-index key the store was built
with (never the key: see :func:`hub.keys.index_key_check`)."""


class StoreError(RuntimeError):
    """The store cannot be used: unreachable, or its schema is not up to date."""


class SqlStore(ABC):
    """A store over one SQL dialect; subclasses provide connections and transactions."""

    dialect: str = ""
    cipher: FieldCipher | None = None
    _heads_checked_at: float = 0.0
    _claim_turn: int = 0

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[SqlTransaction]:
        """A unit of work that commits on clean exit and rolls back on an exception."""

    @abstractmethod
    def _reader(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for reads and short single statements (autocommit)."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and check the schema version."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    # ---- schema --------------------------------------------------------------------------

    async def schema_version(self) -> int:
        """The newest migration applied (0 for an empty store)."""
        async with self._reader() as c:
            try:
                row = await c.fetchrow("SELECT MAX(version) FROM schema_migrations")
            except Exception:
                return 0
        return int(row[0]) if row and row[0] is not None else 0

    async def migrate(self) -> list[int]:
        """Apply every pending migration, each in its own transaction.

        Raises :class:`StoreError` when a newer hub has already taken the store past the
        newest migration this hub knows: its data is in a shape this code cannot read."""
        applied: list[int] = []
        async with self.transaction() as tx:
            await tx._c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, title TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
        current = await self.schema_version()
        if current > schema.LATEST_VERSION:
            raise StoreError(
                f"store schema is version {current}, newer than this hub "
                f"({schema.LATEST_VERSION}): upgrade the hub"
            )
        for version, title, _ in schema.MIGRATIONS:
            if version <= current:
                continue
            async with self.transaction() as tx:
                for stmt in schema.statements(self.dialect, version):
                    await tx._c.execute(stmt)
                await tx._c.execute(
                    "INSERT INTO schema_migrations (version, title, applied_at) VALUES (?,?,?)",
                    (version, title, now_iso()),
                )
            applied.append(version)
        return applied

    async def check_schema(self) -> None:
        """Raise :class:`StoreError` unless the schema is at the version this code expects
        (older: run ``hub migrate``; newer, written by a newer hub: upgrade the hub)."""
        version = await self.schema_version()
        if version > schema.LATEST_VERSION:
            raise StoreError(
                f"store schema is version {version}, newer than this hub "
                f"({schema.LATEST_VERSION}): upgrade the hub"
            )
        if version < schema.LATEST_VERSION:
            raise StoreError(
                f"store schema is at version {version}, this hub needs "
                f"{schema.LATEST_VERSION}: run 'hub migrate'"
            )

    # ---- records -------------------------------------------------------------------------

    async def iter_records(
        self, kind: str, source: str | None = None, batch: int = 1000
    ) -> AsyncIterator[list[RecordRow]]:
        """Records of a kind (live and deleted) in key order, ``batch`` at a time."""
        last: tuple[str, str] = ("", "")
        while True:
            sql = (
                f"SELECT {RECORD_COLUMNS} FROM records "
                "WHERE kind=? AND (source, source_id) > (?, ?)"
            )
            args: list[Any] = [kind, *last]
            if source is not None:
                sql += " AND source=?"
                args.append(source)
            sql += " ORDER BY source, source_id LIMIT ?"
            args.append(batch)
            async with self._reader() as c:
                rows = await c.fetch(sql, args)
            if not rows:
                return
            records = [record_from_row(r, self.cipher) for r in rows]
            yield records
            last = (records[-1].source, records[-1].source_id)

    async def count_records(self, kind: str | None = None) -> dict[str, int]:
        """Live records by kind."""
        sql = "SELECT kind, COUNT(*) FROM records WHERE deleted=0"
        args: list[Any] = []
        if kind:
            sql += " AND kind=?"
            args.append(kind)
        async with self._reader() as c:
            rows = await c.fetch(sql + " GROUP BY kind", args)
        return {r[0]: int(r[1]) for r in rows}

    # ---- audit ---------------------------------------------------------------------------

    async def iter_audit(self, batch: int = 1000) -> AsyncIterator[list[AuditRow]]:
        """The audit log in sequence order."""
        last = 0
        while True:
            async with self._reader() as c:
                rows = await c.fetch(
                    "SELECT seq, body, prev_hash, hash, person_id FROM audit_log WHERE seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (last, batch),
                )
            if not rows:
                return
            out = [AuditRow(int(r[0]), bytes(r[1]), r[2], r[3], r[4]) for r in rows]
            yield out
            last = out[-1].seq

    async def audit_for_client(self, person_id: str) -> list[AuditRow]:
        """Audit entries about one person."""
        async with self._reader() as c:
            rows = await c.fetch(
                "SELECT seq, body, prev_hash, hash FROM audit_log WHERE person_id=? ORDER BY seq",
                (person_id,),
            )
        return [AuditRow(int(r[0]), bytes(r[1]), r[2], r[3]) for r in rows]

    async def add_checkpoint(self, seq: int, head_hash: str, signature: bytes, key_id: str) -> None:
        """Store a signed checkpoint of the audit chain head."""
        async with self.transaction() as tx:
            await tx._c.execute(
                "INSERT INTO audit_checkpoints (seq, head_hash, signature, key_id, created_at) "
                "VALUES (?,?,?,?,?)",
                (seq, head_hash, signature, key_id, now_iso()),
            )

    async def checkpoints(self) -> list[tuple[int, str, bytes, str]]:
        """Every stored checkpoint, oldest first."""
        async with self._reader() as c:
            rows = await c.fetch(
                "SELECT seq, head_hash, signature, key_id FROM audit_checkpoints ORDER BY seq"
            )
        return [(int(r[0]), r[1], bytes(r[2]), r[3]) for r in rows]

    # ---- outbox --------------------------------------------------------------------------

    def _claim_sql(self) -> str:
        # One feed's due heads: the earliest open entry per (recipient, person) only, so
        # order is kept per person. The claim walks that feed's heads in due order through
        # their partial index (schemas 5 and 9): entries held back behind a failing one, and
        # heads waiting for a retry, are not walked at all, nor is any other feed's backlog.
        # The NOT EXISTS check keeps the order even where two entries of one person are
        # marked head (two enqueues racing on PostgreSQL), and across feeds to the same
        # recipient. A replayed dead letter is a head while a later entry of its person may
        # be in flight: it alone is also checked for that (reading the person's open
        # entries; for every head, that cost grew with the person's backlog). SQLite's
        # planner would rather sort every due entry, hence ``INDEXED BY``.
        postgresql = self.dialect == "postgresql"
        lock = " FOR UPDATE SKIP LOCKED" if postgresql else ""
        index = "" if postgresql else " INDEXED BY outbox_feed_heads"
        return (
            # The status stays: the lease marks the entry claimed (see OPEN_STATUSES).
            "UPDATE outbox SET lease_owner=?, lease_until=?, "
            f"attempts=attempts+1 WHERE id IN (SELECT o.id FROM outbox o{index} WHERE "
            f"o.feed=? AND o.head=1 AND o.status IN {OPEN_STATUSES} AND o.next_attempt_at <= ? "
            "AND (o.lease_owner IS NULL OR o.lease_until < ?) AND NOT EXISTS "
            "(SELECT 1 FROM outbox p WHERE p.recipient=o.recipient AND p.person_id=o.person_id "
            f"AND p.id < o.id AND p.status IN {OPEN_STATUSES}) AND CASE WHEN o.replayed=0 "
            "THEN TRUE ELSE NOT EXISTS (SELECT 1 FROM outbox q WHERE q.recipient=o.recipient "
            f"AND q.person_id=o.person_id AND q.id <> o.id AND q.status IN {OPEN_STATUSES} "
            "AND q.lease_owner IS NOT NULL AND q.lease_until >= ?) END "
            f"ORDER BY o.next_attempt_at, o.id LIMIT ?{lock}) RETURNING {OUTBOX_COLUMNS}"
        )

    def _feeds_with_heads_sql(self) -> str:
        # The distinct feeds of the open heads, one index seek each (a loose index scan):
        # a handful of feeds, however many entries they hold.
        index = "" if self.dialect == "postgresql" else " INDEXED BY outbox_feed_heads"
        heads = f"head=1 AND status IN {OPEN_STATUSES}"
        return (
            "WITH RECURSIVE f(feed) AS ("
            f"SELECT (SELECT feed FROM outbox{index} WHERE {heads} ORDER BY feed LIMIT 1) "
            f"UNION ALL SELECT (SELECT o.feed FROM outbox o{index} WHERE o.{heads} "
            "AND o.feed > f.feed ORDER BY o.feed LIMIT 1) FROM f WHERE f.feed IS NOT NULL) "
            "SELECT feed FROM f WHERE feed IS NOT NULL"
        )

    async def claim_outbox(
        self, worker: str, limit: int, lease_seconds: float, skip_feeds: Sequence[str] = ()
    ) -> list[OutboxRow]:
        """Claim up to ``limit`` due deliveries under a lease that expires if the worker dies,
        none of the feeds in ``skip_feeds`` (those whose partner is busy).

        Feeds take turns: each claim starts at the next feed and takes each feed's due
        entries in due order until ``limit`` is reached, so a feed with a large backlog
        does not hold back the others, and a skipped feed costs nothing to pass by.
        """
        now = datetime.now(UTC)
        until = (now + timedelta(seconds=lease_seconds)).isoformat(timespec="microseconds")
        now_s = now.isoformat(timespec="microseconds")
        skipped = set(skip_feeds)
        found: list[Row] = []
        async with self.transaction() as tx:
            if self.dialect == "postgresql" and time.monotonic() >= self._heads_checked_at:
                await tx.repair_heads()
                await tx.release_legacy_leases(now_s)
                self._heads_checked_at = time.monotonic() + HEAD_REPAIR_SECONDS
            feeds = [
                r[0] for r in await tx._c.fetch(self._feeds_with_heads_sql()) if r[0] not in skipped
            ]
            if feeds:
                turn = self._claim_turn % len(feeds)
                self._claim_turn += 1
                for feed in feeds[turn:] + feeds[:turn]:
                    found += await tx._c.fetch(
                        self._claim_sql(),
                        (worker, until, feed, now_s, now_s, now_s, limit - len(found)),
                    )
                    if len(found) >= limit:
                        break
        return sorted((outbox_from_row(r, self.cipher) for r in found), key=lambda o: o.id)

    async def finish_outbox(
        self,
        outbox_id: int,
        status: str,
        *,
        error: str = "",
        retry_at: str | None = None,
        worker: str | None = None,
    ) -> bool:
        """Settle a claimed delivery as delivered, withheld, retry (at ``retry_at``) or dead.

        With ``worker``, only while that worker still holds the lease: a worker whose lease
        expired (and whose entry another worker claimed) cannot overwrite the other's result.
        Returns whether the entry was settled.
        """
        delivered = now_iso() if status == "delivered" else None
        sql = (
            "UPDATE outbox SET status=?, last_error=?, next_attempt_at=COALESCE(?, "
            "next_attempt_at), delivered_at=?, lease_owner=NULL, lease_until=NULL WHERE id=?"
        )
        args: list[Any] = [status, error[:500], retry_at, delivered, outbox_id]
        if worker is not None:
            sql += " AND lease_owner=?"
            args.append(worker)
        async with self.transaction() as tx:
            n = await tx._c.execute(sql, args)
            if n and status not in OPEN_REPORTED:
                await tx.promote_next([outbox_id])
        return n > 0

    async def finish_outbox_many(
        self, entries: Sequence[tuple[int, str, str, str | None]], *, worker: str | None = None
    ) -> set[int]:
        """Settle many claimed deliveries, each ``(id, status, error, retry_at)``, in one
        transaction (one statement per distinct outcome); returns the ids settled.

        As :meth:`finish_outbox`: with ``worker``, only entries whose lease that worker still
        holds.
        """
        if not entries:
            return set()
        async with self.transaction() as tx:
            return await tx.settle_outbox(entries, worker)

    def hold_delivery(self) -> None:
        """Become a process delivering from this store. Any number may on PostgreSQL (claims
        skip what another holds); the SQLite store allows one (:class:`StoreError`)."""
        return None

    async def release_unsent(self, ids: Sequence[int], worker: str, note: str) -> set[int]:
        """Give back entries ``worker`` claimed and never sent, as they were before the
        claim (due as before, the claim's attempt not counted); returns the ids given back.

        Only while ``worker`` still holds each lease. An attempt counts when something may
        have been sent: entries a worker lets go unsent (their lease would have run out
        during the send) would otherwise reach the dead letters without being tried.
        """
        released: set[int] = set()
        async with self.transaction() as tx:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                rows = await tx._c.fetch(
                    "UPDATE outbox SET lease_owner=NULL, lease_until=NULL, last_error=?, "
                    "attempts=CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END "
                    f"WHERE id IN ({','.join('?' * len(chunk))}) AND lease_owner=? "
                    f"AND status IN {OPEN_STATUSES} RETURNING id",
                    [note[:500], *chunk, worker],
                )
                released.update(int(r[0]) for r in rows)
        return released

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
        """Outbox entries, newest first, optionally by status, recipient and feed; only
        those older than ``before_id`` (to page on); none withheld with ``hide_withheld``."""
        sql = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE 1=1"
        args: list[Any] = []
        if feed is not None:
            sql += " AND feed=?"
            args.append(feed)
        if before_id is not None:
            sql += " AND id<?"
            args.append(before_id)
        if hide_withheld:
            sql += " AND status<>'withheld'"
        if status == "leased":
            sql += f" AND status IN {OPEN_STATUSES} AND lease_owner IS NOT NULL"
        elif status in ("pending", "retry"):
            sql += " AND status=? AND lease_owner IS NULL"
            args.append(status)
        elif status:
            sql += " AND status=?"
            args.append(status)
        if recipient:
            sql += " AND recipient=?"
            args.append(recipient)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        async with self._reader() as c:
            return [outbox_from_row(r, self.cipher) for r in await c.fetch(sql, args)]

    async def get_outbox(self, outbox_id: int) -> OutboxRow | None:
        """One outbox entry by id."""
        async with self._reader() as c:
            r = await c.fetchrow(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id=?", (outbox_id,))
        return None if r is None else outbox_from_row(r, self.cipher)

    async def requeue_outbox(self, outbox_id: int) -> bool:
        """Replay a dead or retrying entry: back to pending, due now, attempts reset."""
        async with self.transaction() as tx:
            if self.dialect == "postgresql":
                # Wait for a claim of the person's other entries still in progress: a claim
                # after this replay then sees their leases (one entry in flight at a time).
                await tx._c.fetch(
                    "SELECT p.id FROM outbox p JOIN outbox s ON p.recipient=s.recipient AND "
                    "p.person_id=s.person_id WHERE s.id=? AND p.id <> s.id AND "
                    f"p.status IN {OPEN_STATUSES} FOR UPDATE OF p",
                    (outbox_id,),
                )
            n = await tx._c.execute(
                # Head again: if a later entry of the person is open, this one goes first
                # (once none is in flight: see the claim). Not while a worker holds it (a
                # claimed retry keeps its status).
                "UPDATE outbox SET status='pending', attempts=0, next_attempt_at=?, "
                "last_error='', head=1, replayed=1 WHERE id=? AND status IN "
                "('dead','retry','failed') AND lease_owner IS NULL",
                (now_iso(), outbox_id),
            )
        return n > 0

    async def release_leases(self) -> int:
        """Return every leased entry to the queue (only safe when no other worker runs)."""
        async with self.transaction() as tx:
            legacy = await tx.release_legacy_leases(None)
            return legacy + await tx._c.execute(
                "UPDATE outbox SET lease_owner=NULL, lease_until=NULL "
                f"WHERE lease_owner IS NOT NULL AND status IN {OPEN_STATUSES}"
            )

    async def outbox_depth(self) -> dict[str, int]:
        """Outbox entries by status."""
        async with self._reader() as c:
            # Claimed entries keep their stored status: they are counted apart, among the
            # open entries only (cheap however long the delivered history is), in the same
            # statement (one snapshot).
            rows = await c.fetch(
                "SELECT status, 0, COUNT(*) FROM outbox GROUP BY status UNION ALL "
                f"SELECT status, 1, COUNT(*) FROM outbox WHERE status IN {OPEN_STATUSES} "
                "AND lease_owner IS NOT NULL GROUP BY status"
            )
        depth: dict[str, int] = {}
        for status, held, n in rows:
            if held:
                depth[status] = depth.get(status, 0) - int(n)
                status = "leased"
            depth[status] = depth.get(status, 0) + int(n)
        return {status: n for status, n in depth.items() if n}

    async def prune(self, delivered_before: str, batch: int = 500) -> int:
        """Delete delivered or withheld outbox rows settled before a time, in small batches."""
        total = 0
        while True:
            async with self.transaction() as tx:
                n = await tx._c.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status IN "
                    "('delivered','withheld') AND COALESCE(delivered_at, created_at) < ? "
                    "LIMIT ?)",
                    (delivered_before, batch),
                )
            total += n
            if n < batch:
                return total

    async def prune_payloads(self, before: str, batch: int = 500) -> int:
        """Delete dead letters made before a time (each keeps its payload for a replay) and
        inbound de-duplication entries received before it, in small batches."""
        total = 0
        for sql in (
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status='dead' "
            "AND created_at < ? LIMIT ?)",
            "DELETE FROM inbound_messages WHERE (sender, control_id) IN (SELECT sender, "
            "control_id FROM inbound_messages WHERE received_at < ? LIMIT ?)",
        ):
            while True:
                async with self.transaction() as tx:
                    n = await tx._c.execute(sql, (before, batch))
                total += n
                if n < batch:
                    break
        return total

    # ---- partner API keys ----------------------------------------------------------------

    async def add_partner_key(
        self, key_id: str, agency: str, role: str, salt: bytes, digest: bytes
    ) -> None:
        """Store a partner key's slow hash (never the key)."""
        async with self.transaction() as tx:
            await tx._c.execute(
                "INSERT INTO partner_keys (key_id, agency, role, salt, hash, created_at) "
                "VALUES (?,?,?,?,?,?)",
                (key_id, agency, role, salt, digest, now_iso()),
            )

    async def find_partner_key(self, key_id: str) -> tuple[str, str, bytes, bytes] | None:
        """(agency, role, salt, hash) of a live key, or None (unknown or revoked)."""
        async with self._reader() as c:
            r = await c.fetchrow(
                "SELECT agency, role, salt, hash FROM partner_keys "
                "WHERE key_id=? AND revoked_at IS NULL",
                (key_id,),
            )
        return None if r is None else (r[0], r[1], bytes(r[2]), bytes(r[3]))

    async def list_partner_keys(self) -> list[tuple[str, str, str, str, str | None]]:
        """(key id, agency, role, created, revoked) of every key."""
        async with self._reader() as c:
            rows = await c.fetch(
                "SELECT key_id, agency, role, created_at, revoked_at FROM partner_keys "
                "ORDER BY created_at"
            )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def revoke_partner_key(self, key_id: str) -> bool:
        """Revoke a key at once."""
        async with self.transaction() as tx:
            n = await tx._c.execute(
                "UPDATE partner_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL",
                (now_iso(), key_id),
            )
        return n > 0

    # ---- key rotation --------------------------------------------------------------------

    async def reencrypt(self, cipher: FieldCipher, batch: int = 500) -> dict[str, int]:
        """Re-encrypt every protected value under ``cipher``'s active key, in small batches.

        ``cipher`` must hold the old keys too (to decrypt). Each batch is its own short
        transaction, so the hub keeps serving while this runs. A value written by someone
        else between the read and the rewrite (a revocation, a newer version) is left as
        they wrote it: each rewrite applies only while the stored value is the one read.

        A value that decrypts with no key (damaged, or tampered with) is left as it is,
        logged by its reference (never its content) and counted as ``unreadable``: it keeps
        its key in use, but no longer stops the rotation of everything else.
        """
        counts = {"records": 0, "outbox": 0, "consents": 0, "persons": 0, "unreadable": 0}
        active = f"enc1:{cipher.active}:"

        def unreadable(table: str, ref: str) -> None:
            counts["unreadable"] += 1
            log.warning(
                "a stored value does not decrypt with any key; left as it is",
                extra={"table": table, "ref": ref},
            )

        async def stale(
            table: str, key_cols: str, value_col: str, last: tuple[Any, ...]
        ) -> list[Any]:
            marks = ",".join("?" * len(last))
            async with self._reader() as c:
                return await c.fetch(
                    f"SELECT {key_cols}, {value_col} FROM {table} WHERE ({key_cols}) > ({marks}) "
                    f"ORDER BY {key_cols} LIMIT ?",
                    (*last, batch),
                )

        # records: one sealed token per payload (or the earlier per-value tokens, rewritten
        # in the sealed form whatever their key)
        last: tuple[Any, ...] = ("", "", "")
        while rows := await stale("records", "kind, source, source_id", "payload", last):
            async with self.transaction() as tx:
                for kind, source, sid, payload in rows:
                    raw = bytes(payload)
                    if not cipher.payload_needs_rewrite(raw):
                        continue
                    try:
                        plain = cipher.reveal_payload(kind, source, sid, raw)
                    except DecryptionError:
                        unreadable("records", f"{kind}/{source}/{sid}")
                        continue
                    counts["records"] += await tx._c.execute(
                        "UPDATE records SET payload=? WHERE kind=? AND source=? AND source_id=? "
                        "AND payload=?",
                        (cipher.protect_payload(kind, source, sid, plain), kind, source, sid, raw),
                    )
            last = tuple(rows[-1][:3])
        # outbox and consents: whole blobs
        entry = (
            "feed, recipient, person_id, record_kind, record_source, record_source_id, "
            "record_version, idempotency_key"
        )
        for table, key_col in (("outbox", "id"), ("consents", "id")):
            last = (0,) if table == "outbox" else ("",)
            cols = f"{key_col}, {entry}" if table == "outbox" else key_col
            value = "payload" if table == "outbox" else "body"
            while rows := await stale(table, key_col, f"{value}, {cols}", last):
                async with self.transaction() as tx:
                    for row in rows:
                        key, blob = row[0], bytes(row[1])
                        if not blob.startswith(b"enc1:") or blob.startswith(active.encode()):
                            continue
                        try:
                            if table == "outbox":  # re-sealed bound to the whole entry
                                plain = open_outbox_payload(cipher, blob, row[3:11])
                                fresh = cipher.seal_blob(plain, outbox_binding(row[3:11]))
                            else:
                                aad = f"consent|{key}"
                                fresh = cipher.seal_blob(cipher.open_blob(blob, aad), aad)
                        except DecryptionError:
                            unreadable(table, str(key))
                            continue
                        counts[table] += await tx._c.execute(
                            f"UPDATE {table} SET {value}=? WHERE {key_col}=? AND {value}=?",
                            (fresh, key, blob),
                        )
                last = (rows[-1][0],)
        last = ("",)
        while rows := await stale("persons", "id", "birth_date", last):
            async with self.transaction() as tx:
                for pid, birth in rows:
                    if not birth or not birth.startswith("enc1:") or birth.startswith(active):
                        continue
                    bind = f"person|{pid}".encode()
                    try:
                        token = cipher.seal(cipher.open(birth, bind), bind)
                    except DecryptionError:
                        unreadable("persons", pid)
                        continue
                    counts["persons"] += await tx._c.execute(
                        "UPDATE persons SET birth_date=? WHERE id=? AND birth_date=?",
                        (token, pid, birth),
                    )
            last = (rows[-1][0],)
        return counts

    async def key_in_use(self, key_id: str) -> bool:
        """Whether any stored value is still encrypted under ``key_id``."""
        token = f"%enc1:{key_id}:%"
        cast = "CAST({} AS TEXT)" if self.dialect == "sqlite" else "encode({}, 'escape')"
        checks = [
            ("records", cast.format("payload")),
            ("outbox", cast.format("payload")),
            ("consents", cast.format("body")),
            ("persons", "birth_date"),
        ]
        async with self._reader() as c:
            for table, expr in checks:
                if await c.fetchrow(f"SELECT 1 FROM {table} WHERE {expr} LIKE ? LIMIT 1", (token,)):
                    return True
        return False

    # ---- the blind index ------------------------------------------------------------------

    async def index_key_check(self, check: str) -> str:
        """The check value of the blind-index key the store was built with, recording
        ``check`` as that first when the store has none (a new store, or one from before
        schema 12). On PostgreSQL this waits for a re-key under way to commit."""
        async with self.transaction() as tx:
            return await tx.adopt_store_meta(INDEX_KEY_CHECK, check)

    async def hold_alone(self) -> None:
        """Make sure no other hub process uses the store, and (SQLite) that none can start
        using it until this one closes it; :class:`StoreError` saying what to stop."""
        async with self._reader() as c:
            await self._refuse_other_hubs(c)

    async def _refuse_other_hubs(self, c: Connection) -> None:
        """Raise :class:`StoreError` when another hub process uses the store (each adapter
        knows how to tell)."""
        raise StoreError(f"{type(self).__name__} cannot tell whether other hubs use it")

    async def reblind(
        self,
        old_check: str,
        new_check: str,
        record_keys: Callable[[RecordRow], Sequence[str]],
        consent_value: Callable[[bytes], str],
        batch: int = 500,
    ) -> dict[str, int]:
        """Replace every blinded value the store keeps, in one transaction, and record
        ``new_check`` as the check value of its blind-index key (offline: no other hub may
        use the store, which is checked again here; see :meth:`hold_alone`).

        The match keys of each record ``person_keys`` holds keys of are replaced by
        ``record_keys(row)``, indexed under the same persons; each consent's blinded client
        value by ``consent_value(body)``. A record that does not decrypt loses its keys
        (they could never match again), counted as ``unreadable`` and logged by count.
        Raises :class:`StoreError` unless the store's check value is ``old_check``.
        """
        async with self.transaction() as tx:
            stored = await tx.store_meta(INDEX_KEY_CHECK, lock=True)
            if stored != old_check:
                raise StoreError(
                    "the store's blind-index key is not the one being rotated from "
                    "(another rotation ran meanwhile?): nothing was changed"
                )
            await self._refuse_other_hubs(tx._c)
            counts = {"person_keys_before": await tx.count_person_keys()}
            counts |= await self._reblind_person_keys(tx, record_keys, batch)
            counts["consents"] = await self._reblind_consents(tx, consent_value, batch)
            await tx.put_store_meta(INDEX_KEY_CHECK, new_check)
        return counts

    async def _reblind_person_keys(
        self, tx: SqlTransaction, record_keys: Callable[[RecordRow], Sequence[str]], batch: int
    ) -> dict[str, int]:
        """Replace the match keys of every record ``person_keys`` holds keys of."""
        counts = {"person_keys": 0, "client_records": 0, "unreadable": 0, "gone": 0}
        last = ("", "", "")
        while page := await tx.keyed_records(last, batch):
            links: list[tuple[str, str, str, str, Sequence[str]]] = []
            for item in page:
                if item.row is None:
                    counts["unreadable" if item.unreadable else "gone"] += 1
                    continue
                keys = record_keys(item.row)
                links += [(*item.key, person, keys) for person in item.persons]
                counts["client_records"] += 1
            counts["person_keys"] += await tx.replace_record_keys([i.key for i in page], links)
            last = page[-1].key
        if counts["unreadable"]:
            # By count only: `hub keys rotate` names them (by reference) when it meets them.
            log.warning(
                "client records that decrypt with no key lost their match keys",
                extra={"count": counts["unreadable"]},
            )
        return counts

    async def _reblind_consents(
        self, tx: SqlTransaction, consent_value: Callable[[bytes], str], batch: int
    ) -> int:
        """Replace the blinded client value of every stored consent; returns how many."""
        done = 0
        last = ""
        while bodies := await tx.consent_bodies(last, batch):
            await tx.set_consent_values([(cid, consent_value(body)) for cid, body in bodies])
            done += len(bodies)
            last = bodies[-1][0]
        return done

    # ---- SMART Backend Services ----------------------------------------------------------

    async def use_assertion(self, jti: str, client_id: str, expires_at: str) -> bool:
        """Record an assertion id; False when it was used before (a replay)."""
        async with self.transaction() as tx:
            await tx._c.execute("DELETE FROM used_assertions WHERE expires_at < ?", (now_iso(),))
            got = await tx._c.fetchrow(
                "INSERT INTO used_assertions (jti, client_id, expires_at) VALUES (?,?,?) "
                "ON CONFLICT (jti) DO NOTHING RETURNING jti",
                (jti, client_id, expires_at),
            )
        return got is not None

    async def add_access_token(
        self,
        token_hash: str,
        agency: str,
        role: str,
        client_id: str,
        expires_at: str,
        scope: str,
    ) -> None:
        """Store an issued access token (its hash only) with the scopes it was granted."""
        async with self.transaction() as tx:
            await tx._c.execute("DELETE FROM access_tokens WHERE expires_at < ?", (now_iso(),))
            await tx._c.execute(
                "INSERT INTO access_tokens (token_hash, agency, role, client_id, expires_at, "
                "scope) VALUES (?,?,?,?,?,?)",
                (token_hash, agency, role, client_id, expires_at, scope),
            )

    async def find_access_token(self, token_hash: str) -> tuple[str, str, str, str] | None:
        """(agency, role, client id, granted scopes) of a live access token."""
        async with self._reader() as c:
            r = await c.fetchrow(
                "SELECT agency, role, client_id, scope FROM access_tokens "
                "WHERE token_hash=? AND expires_at > ?",
                (token_hash, now_iso()),
            )
        return None if r is None else (r[0], r[1], r[2], r[3])

    # ---- scheduled feeds -----------------------------------------------------------------

    async def feed_cursor(self, feed: str) -> FeedCursor:
        """See :meth:`hub.core.ports.Store.feed_cursor`."""
        async with self._reader() as c:
            r = await c.fetchrow(
                "SELECT cursor, cursor_kind, cursor_source, cursor_source_id FROM feed_cursors "
                "WHERE feed=?",
                (feed,),
            )
        return FeedCursor("") if r is None else _feed_cursor(r)

    async def claim_feed(self, feed: str, owner: str, lease_seconds: float) -> FeedCursor | None:
        """See :meth:`hub.core.ports.Store.claim_feed`.

        One upsert: the first claim of a feed inserts its row; a later one takes the lease
        only when it is free, expired, or the claimant's own (PostgreSQL re-checks the
        condition on the committed row when two claims meet).
        """
        now = datetime.now(UTC)
        until = (now + timedelta(seconds=lease_seconds)).isoformat(timespec="microseconds")
        now_s = now.isoformat(timespec="microseconds")
        async with self.transaction() as tx:
            r = await tx._c.fetchrow(
                "INSERT INTO feed_cursors (feed, cursor, updated_at, lease_owner, lease_until) "
                "VALUES (?, '', ?, ?, ?) ON CONFLICT (feed) DO UPDATE SET "
                "lease_owner=excluded.lease_owner, lease_until=excluded.lease_until "
                "WHERE feed_cursors.lease_owner IS NULL OR feed_cursors.lease_until < ? "
                "OR feed_cursors.lease_owner=excluded.lease_owner "
                "RETURNING cursor, cursor_kind, cursor_source, cursor_source_id",
                (feed, now_s, owner, until, now_s),
            )
        return None if r is None else _feed_cursor(r)

    async def release_feed(self, feed: str, owner: str) -> bool:
        """See :meth:`hub.core.ports.Store.release_feed`."""
        async with self.transaction() as tx:
            n = await tx._c.execute(
                "UPDATE feed_cursors SET lease_owner=NULL, lease_until=NULL "
                "WHERE feed=? AND lease_owner=?",
                (feed, owner),
            )
        return n > 0

    async def feed_changes(
        self, kinds: Sequence[str], after: FeedCursor, limit: int, before: str | None = None
    ) -> list[FeedCursor]:
        """See :meth:`hub.core.ports.Store.feed_changes` (keys only: no payload is read)."""
        wanted = sorted(set(kinds))
        if not wanted:
            return []
        args: list[Any] = list(wanted)
        if after.key is None:
            position = "received_at > ?"
            args.append(after.received_at)
        else:
            position = "(received_at, kind, source, source_id) > (?, ?, ?, ?)"
            args.extend((after.received_at, *after.key))
        if before is not None:
            position += " AND received_at < ?"
            args.append(before)
        args.append(limit)
        async with self._reader() as c:
            rows = await c.fetch(
                "SELECT received_at, kind, source, source_id FROM records "
                f"WHERE kind IN ({','.join('?' * len(wanted))}) AND deleted=0 AND {position} "
                "ORDER BY received_at, kind, source, source_id LIMIT ?",
                args,
            )
        return [FeedCursor(r[0], (r[1], r[2], r[3])) for r in rows]

    async def import_feed_cursor(self, feed: str, received_at: str) -> bool:
        """See :meth:`hub.core.ports.Store.import_feed_cursor`."""
        now = now_iso()
        async with self.transaction() as tx:
            r = await tx._c.fetchrow(
                "INSERT INTO feed_cursors (feed, cursor, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (feed) DO UPDATE SET cursor=excluded.cursor, cursor_kind=NULL, "
                "cursor_source=NULL, cursor_source_id=NULL, updated_at=excluded.updated_at "
                "WHERE (feed_cursors.cursor < excluded.cursor OR (feed_cursors.cursor="
                "excluded.cursor AND feed_cursors.cursor_kind IS NOT NULL)) AND "
                "(feed_cursors.lease_owner IS NULL OR feed_cursors.lease_until < ?) "
                "RETURNING feed",
                (feed, received_at, now, now),
            )
        return r is not None


def _feed_cursor(r: Sequence[Any]) -> FeedCursor:
    """A :class:`FeedCursor` from ``cursor, cursor_kind, cursor_source, cursor_source_id``."""
    if r[1] is None:
        return FeedCursor(r[0])
    return FeedCursor(r[0], (r[1], r[2], r[3]))
