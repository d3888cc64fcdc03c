"""WAL checkpoints of a SQLite store, from a thread of their own.

In WAL mode every commit appends the pages it changed to the ``-wal`` file, and a
checkpoint copies them back into the database file. SQLite's automatic checkpoint runs
inside the commit that crosses ``wal_autocheckpoint`` pages: on the event loop, where it
copies tens of megabytes and syncs the file while every listener, API request and delivery
of the process waits (35–48 ms every few hundred HL7 messages, measured). Here a thread
with its own connection runs a ``PASSIVE`` checkpoint every :data:`CHECKPOINT_INTERVAL`
seconds instead: it never blocks a writer, and ``sqlite3`` releases the GIL while it
copies, so the event loop carries on. Once the thread has copied everything, the next
commit starts the WAL file from its beginning again, so it stays small. The store keeps
the automatic checkpoint as a safety net with a higher threshold, reached only if this
thread falls far behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger("hub.store.sqlite")

CHECKPOINT_INTERVAL = 0.05
"""Seconds between checkpoints: at a thousand HL7 messages a second (about 40 pages each)
the WAL grows by some 8 MB in that time."""
ERROR_LOG_INTERVAL = 60.0
"""At most one warning per this many seconds while checkpoints keep failing."""


class WalCheckpointer:
    """Checkpoints one SQLite database's WAL every ``interval`` seconds from a daemon thread."""

    def __init__(self, path: Path, interval: float = CHECKPOINT_INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0
        """Checkpoints that ran (whether or not they found pages to copy)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"WalCheckpointer(running={self.running}, checkpoints={self.checkpoints})"

    @property
    def running(self) -> bool:
        """Whether the thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Open the thread's connection and start checkpointing.

        Raises ``sqlite3.Error`` when the database cannot be opened."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=1000")
        except sqlite3.Error:
            conn.close()
            raise
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="sqlite-checkpoints", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after the checkpoint it may be running) and close its connection."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()

    def _run(self, conn: sqlite3.Connection) -> None:
        last_warning = float("-inf")
        try:
            while not self._stop.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:
                    # The next round tries again; the store's automatic checkpoint is the
                    # safety net meanwhile.
                    now = time.monotonic()
                    if now - last_warning >= ERROR_LOG_INTERVAL:
                        last_warning = now
                        log.warning(
                            "WAL checkpoint failed; retrying",
                            extra={"error_type": type(exc).__name__},
                        )
        finally:
            conn.close()
