"""Where a benchmark round's SQLite time goes, statement by statement (``--sql-profile``).

While a :class:`SqlProfile` is installed, every ``sqlite3`` connection the process opens
(the store's, its checkpointer's, a floor's) times each statement it runs, including the
fetching of its rows, and files the time under the statement's text (whitespace folded,
``IN (?,?,…)`` lists of any length as one) and the thread that ran it. Only the time spent
while :meth:`SqlProfile.recording` is on counts, so a round's set-up is left out.

The report gives, per item of the round (a message, a row, a record), the microseconds and
calls of each statement, the total per thread (the event loop's beside the WAL
checkpointer's), and the round's own time per item for scale. It answers the question the
pyinstrument profile cannot: how much of a path is the database's own work, and which
statement it is.

SQLite only: PostgreSQL statements (asyncpg) are not seen.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_IN_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SPACE = re.compile(r"\s+")
STATEMENT_WIDTH = 110
"""Characters of a statement's text kept in the report."""


def statement_key(sql: str) -> str:
    """A statement's text as the report files it: whitespace folded, ``(?,?,…)`` lists of any
    length written ``(?…)``, cut to :data:`STATEMENT_WIDTH` characters."""
    folded = _SPACE.sub(" ", sql.strip())
    return _IN_LIST.sub("(?…)", folded)[:STATEMENT_WIDTH]


@dataclass(slots=True)
class StatementTime:
    """Calls of one statement in one thread and the seconds they took."""

    calls: int = 0
    seconds: float = 0.0


@dataclass(slots=True)
class SqlProfile:
    """Statement times of every ``sqlite3`` connection opened while installed."""

    times: dict[tuple[str, str], StatementTime] = field(default_factory=dict)
    """(thread name, statement key) → its time."""
    recording: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sql: str, seconds: float, *, call: bool) -> None:
        """File ``seconds`` under ``sql`` for the calling thread (when recording)."""
        if not self.recording:
            return
        key = (threading.current_thread().name, statement_key(sql))
        with self._lock:
            entry = self.times.get(key)
            if entry is None:
                entry = self.times[key] = StatementTime()
            entry.calls += call
            entry.seconds += seconds

    @contextmanager
    def installed(self) -> Iterator[SqlProfile]:
        """Make ``sqlite3.connect`` open timed connections until the block ends.

        Connections opened inside the block keep timing after it (they report only while
        :attr:`recording` is on)."""
        original = sqlite3.connect
        profile = self

        class TimedCursor(sqlite3.Cursor):
            _sql = ""

            def execute(self, sql: str, parameters: Any = (), /) -> TimedCursor:
                self._sql = sql
                started = time.perf_counter()
                try:
                    return super().execute(sql, parameters)
                finally:
                    profile.add(sql, time.perf_counter() - started, call=True)

            def executemany(self, sql: str, seq_of_parameters: Any, /) -> TimedCursor:
                self._sql = sql
                started = time.perf_counter()
                try:
                    return super().executemany(sql, seq_of_parameters)
                finally:
                    profile.add(sql, time.perf_counter() - started, call=True)

            def fetchone(self) -> Any:
                started = time.perf_counter()
                try:
                    return super().fetchone()
                finally:
                    profile.add(self._sql, time.perf_counter() - started, call=False)

            def fetchmany(self, size: int | None = None) -> list[Any]:
                started = time.perf_counter()
                try:
                    return super().fetchmany(self.arraysize if size is None else size)
                finally:
                    profile.add(self._sql, time.perf_counter() - started, call=False)

            def fetchall(self) -> list[Any]:
                started = time.perf_counter()
                try:
                    return super().fetchall()
                finally:
                    profile.add(self._sql, time.perf_counter() - started, call=False)

            def __next__(self) -> Any:
                started = time.perf_counter()
                try:
                    return super().__next__()
                finally:
                    profile.add(self._sql, time.perf_counter() - started, call=False)

        class TimedConnection(sqlite3.Connection):
            # What Connection.execute and executemany do, with a timed cursor (the C versions
            # make theirs without calling cursor()).
            def cursor(self, factory: Any = TimedCursor) -> Any:
                return super().cursor(factory)

            def execute(self, sql: str, parameters: Any = (), /) -> Any:
                return self.cursor().execute(sql, parameters)

            def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
                return self.cursor().executemany(sql, seq_of_parameters)

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            kwargs.setdefault("factory", TimedConnection)
            conn: sqlite3.Connection = original(*args, **kwargs)
            return conn

        sqlite3.connect = connect  # type: ignore[assignment]
        try:
            yield self
        finally:
            sqlite3.connect = original

    def report(self, items: int, seconds: float, *, top: int = 40) -> str:
        """The text report: per item, each statement's µs and calls, heaviest first."""
        per = max(items, 1)
        lines = [
            f"{items:,} items in {seconds:.3f} s: {seconds / per * 1e6:,.1f} µs per item "
            "(the round's wall time)",
        ]
        threads: dict[str, float] = {}
        for (thread, _sql), entry in self.times.items():
            threads[thread] = threads.get(thread, 0.0) + entry.seconds
        for thread, total in sorted(threads.items(), key=lambda kv: -kv[1]):
            lines.append(f"SQL in thread {thread}: {total / per * 1e6:,.1f} µs per item")
        lines.append("")
        lines.append(f"{'µs/item':>9} {'calls/item':>10}  thread: statement")
        ranked = sorted(self.times.items(), key=lambda kv: -kv[1].seconds)
        for (thread, sql), entry in ranked[:top]:
            lines.append(
                f"{entry.seconds / per * 1e6:9.1f} {entry.calls / per:10.3f}  {thread}: {sql}"
            )
        if len(ranked) > top:
            rest = sum(entry.seconds for _key, entry in ranked[top:])
            lines.append(f"{rest / per * 1e6:9.1f} {'':>10}  ({len(ranked) - top} more statements)")
        return "\n".join(lines) + "\n"
