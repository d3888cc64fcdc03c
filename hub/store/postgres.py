"""PostgreSQL adapter (asyncpg): the scale-out store several workers share."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from hub.store.base import SqlStore, StoreError
from hub.store.pg_bulk import PgTransaction
from hub.store.sql import Connection, Row

log = logging.getLogger("hub.store")

_PLACEHOLDER = re.compile(r"\?")

APPLICATION_NAME = "cie-hub"
"""The ``application_name`` of every hub connection: ``hub keys rotate-index`` finds the
other hubs using a database by it in ``pg_stat_activity``."""

# The hub's statements are short: compiling one with JIT (which the planner turns on when a
# batch look-up's estimate is large) costs more than running it.
_SESSION_SETTINGS = {"jit": "off", "application_name": APPLICATION_NAME}


@lru_cache(maxsize=512)
def to_dollar(sql: str) -> str:
    """Rewrite ``?`` placeholders to asyncpg's ``$1, $2 …``."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PgConnection:
    """The shared-SQL connection calls over one asyncpg connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the affected row count."""
        return _rowcount(await self._conn.execute(to_dollar(sql), *args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many argument rows (one round trip)."""
        await self._conn.executemany(to_dollar(sql), list(rows))

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """All rows of a query."""
        return list(await self._conn.fetch(to_dollar(sql), *args))

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """The first row of a query."""
        row: Row | None = await self._conn.fetchrow(to_dollar(sql), *args)
        return row

    async def copy_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        schema: str | None = None,
    ) -> None:
        """Binary ``COPY`` of ``rows`` into ``table`` (``schema.table`` with ``schema``)."""
        await self._conn.copy_records_to_table(
            table, records=rows, columns=list(columns), schema_name=schema
        )


def _host_port(url: str) -> str:
    """``host:port/database`` of a PostgreSQL URL, without user, password or options (a
    ``?password=`` option is a secret too)."""
    rest = url.partition("://")[2].partition("?")[0]
    netloc, slash, database = rest.partition("/")
    return (netloc.rpartition("@")[2] or "localhost") + slash + database


def _redact(exc: BaseException, url: str) -> str:
    """An exception's message with the URL's passwords (user info, ``?password=``) masked."""
    message = str(exc)
    rest, _, query = url.partition("://")[2].partition("?")
    userinfo = rest.partition("/")[0].rpartition("@")[0]
    secrets = [userinfo.partition(":")[2]]
    secrets += [v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "password"]
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


class PostgresStore(SqlStore):
    """The store in a PostgreSQL database, through an asyncpg pool."""

    dialect = "postgresql"

    def __init__(self, url: str, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._min = min_size
        self._max = max_size
        self._pool: Any = None
        self._pids: set[int] = set()
        """The server processes of this store's own connections (see :meth:`hold_alone`)."""

    async def open(self) -> None:
        """Create the connection pool; :class:`StoreError` naming ``host:port`` (never the
        URL's password) when the URL cannot be read or the server cannot be reached."""
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self._min,
                max_size=self._max,
                timeout=10,
                server_settings=_SESSION_SETTINGS,
                init=self._joined,
            )
        except (OSError, asyncpg.PostgresError) as exc:
            where = _host_port(self.url)
            raise StoreError(
                f"cannot reach PostgreSQL at {where}: {_redact(exc, self.url)}"
            ) from None
        except Exception as exc:  # the URL itself: bad port, unknown option …
            where = _host_port(self.url)
            reason = _redact(exc, self.url) or type(exc).__name__
            raise StoreError(f"invalid PostgreSQL store URL for {where}: {reason}") from None

    async def _joined(self, conn: Any) -> None:
        """Note a new connection of the pool as this store's own."""
        self._pids.add(conn.get_server_pid())

    async def _refuse_other_hubs(self, c: Connection) -> None:
        """:class:`StoreError` when a connection named :data:`APPLICATION_NAME` that is not
        this store's own uses the database: another hub process."""
        row = await c.fetchrow(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = ? AND NOT (pid = ANY(?::int[]))",
            (APPLICATION_NAME, sorted(self._pids)),
        )
        others = 0 if row is None else int(row[0])
        if others:
            raise StoreError(
                f"{others} connection(s) of other hub processes use the PostgreSQL store at "
                f"{_host_port(self.url)} (application_name '{APPLICATION_NAME}' in "
                "pg_stat_activity): stop every hub using it ('hub serve', 'hub worker', any "
                "other hub command), then run this again"
            )

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _require(self) -> Any:
        if self._pool is None:
            raise StoreError("store is not open")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgTransaction]:
        """A pooled connection in one transaction (large batches written by ``COPY``);
        after it commits, the outbox heads it may have left unmarked are checked again."""
        async with self._require().acquire() as conn:
            async with conn.transaction():
                tx = PgTransaction(PgConnection(conn), self.dialect, self.cipher)
                yield tx
            if tx.needs_head_recheck():
                try:
                    async with conn.transaction():
                        check = PgTransaction(PgConnection(conn), self.dialect, self.cipher)
                        await check.recheck_heads(tx)
                except Exception as exc:  # claims repair heads every 30 s anyway
                    log.warning(
                        "outbox heads not rechecked after commit",
                        extra={"error": type(exc).__name__},
                    )

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[PgConnection]:
        async with self._require().acquire() as conn:
            yield PgConnection(conn)
