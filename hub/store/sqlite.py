"""SQLite adapter: the embedded default (WAL, one writer, nothing to install).

Statements run on the event loop thread: with WAL and ``synchronous=NORMAL`` a statement
takes microseconds, less than a hop to a worker thread would. An asyncio lock keeps units
of work from interleaving on the one connection, so a transaction must do store work only
(no network I/O inside it). Checkpoints, which copy megabytes, run in a thread of their
own (:mod:`hub.store.checkpoints`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from hub.fileio import locked_file
from hub.store.base import SqlStore, StoreError
from hub.store.checkpoints import WalCheckpointer
from hub.store.sql import Connection, Row, SqlTransaction

SAFETY_NET_CHECKPOINT_PAGES = 20_000
"""WAL pages (about 80 MB) past which a commit checkpoints on the event loop: reached only
when the checkpointer's thread has fallen far behind."""


class SqliteConnection:
    """The shared-SQL connection calls over one ``sqlite3`` connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the changed row count."""
        return self._conn.execute(sql, args).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many argument rows."""
        self._conn.executemany(sql, rows)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query."""
        return self._conn.execute(sql, args).fetchall()

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """The first row of a query."""
        row: Row | None = self._conn.execute(sql, args).fetchone()
        return row


class SqliteStore(SqlStore):
    """The store in one SQLite file."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self.checkpointer = WalCheckpointer(self.path)
        self._delivery_lock: int | None = None
        self._open_lock: int | None = None
        self._alone = False

    @classmethod
    def from_url(cls, url: str, base_dir: Path | None = None) -> SqliteStore:
        """``sqlite:///relative/path.db`` (relative to ``base_dir``) or ``sqlite:////abs.db``."""
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return cls(path)

    @property
    def open_lock_path(self) -> Path:
        """The lock file beside the database that every process using it holds shared
        (and ``hub keys rotate-index`` exclusive)."""
        return self.path.with_name(self.path.name + ".open.lock")

    def _take_open_lock(self) -> None:
        """Hold the open lock shared until :meth:`close` (or the process ends, however it
        ends); :class:`StoreError` while a re-key holds it exclusive."""
        fd = _locked_file(self.open_lock_path, fcntl.LOCK_SH)
        if fd is None:
            raise StoreError(
                f"the SQLite store at {self.path} is held by 'hub keys rotate-index' (it "
                "re-keys the blind index with no other hub running): wait for it to finish"
            )
        self._open_lock = fd

    def _release_open_lock(self) -> None:
        if self._open_lock is not None:
            os.close(self._open_lock)
            self._open_lock = None
            self._alone = False

    async def open(self) -> None:
        """Open (creating the file and its folder if needed) in WAL mode, holding the open
        lock shared (see :meth:`hold_alone`)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot open SQLite store at {self.path}: {exc}") from None
        if self._open_lock is None:
            self._take_open_lock()
        try:
            await self._connect()
        except BaseException:
            self._release_open_lock()
            raise

    async def _connect(self) -> None:
        """Connect in WAL mode and start the checkpointer."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # The checkpointer's thread keeps the WAL small; a commit checkpoints on the
            # event loop only when that thread has fallen far behind (WAL over ~80 MB).
            conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_CHECKPOINT_PAGES}")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open SQLite store at {self.path}: {exc}") from None
        try:
            self.checkpointer.start()
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open SQLite store at {self.path}: {exc}") from None
        self._conn = conn

    def hold_delivery(self) -> None:
        """Become the one process delivering from this store (an exclusive lock on a file
        beside it, freed when the process ends however it ends); :class:`StoreError` when
        another process is delivering: two would take each other's leases (a crashed run's
        leases are taken back at start) and send entries twice at once."""
        if self._delivery_lock is not None:
            return
        fd = _locked_file(self.path.with_name(self.path.name + ".delivery.lock"), fcntl.LOCK_EX)
        if fd is None:
            raise StoreError(
                f"another process is delivering from the SQLite store at {self.path}: "
                "with SQLite one process delivers (stop it, run this one with --no-workers, "
                "or use PostgreSQL for several workers)"
            )
        self._delivery_lock = fd

    async def _refuse_other_hubs(self, c: Connection) -> None:
        """Take the open lock exclusive (at once or not at all): every other process that
        has the store open holds it shared, and none can open it until this one closes it.
        :class:`StoreError` naming what to stop when another holds it."""
        if self._alone:
            return
        fd = self._open_lock
        if fd is None:
            raise StoreError("store is not open")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            # A failed conversion may have dropped the shared lock: take it back.
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            raise StoreError(
                f"another process has the SQLite store at {self.path} open: stop every hub "
                "using it ('hub serve', 'hub worker', any other hub command), then run this "
                "again"
            ) from None
        self._alone = True

    async def close(self) -> None:
        """Stop the checkpoints, give up delivering, close the connection and let go of the
        open lock."""
        if self._delivery_lock is not None:
            os.close(self._delivery_lock)
            self._delivery_lock = None
        await asyncio.to_thread(self.checkpointer.stop)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._release_open_lock()

    def _raw(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("store is not open")
        return self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back on an exception."""
        async with self._lock:
            conn = self._raw()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield SqlTransaction(SqliteConnection(conn), self.dialect, self.cipher)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[SqliteConnection]:
        async with self._lock:
            yield SqliteConnection(self._raw())


def _locked_file(path: Path, operation: int) -> int | None:
    """:func:`hub.fileio.locked_file`: the descriptor, or None when another process holds a
    lock that excludes it; :class:`StoreError` naming the file when it cannot be opened or
    locked at all."""
    try:
        return locked_file(path, operation)
    except OSError as exc:
        raise StoreError(f"cannot open or lock {path}: {exc.strerror}") from None
