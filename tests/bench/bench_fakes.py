"""Small fake benchmark cases for the runner tests (imported by the child processes)."""

from __future__ import annotations

from hub.bench.model import Measured, Params, Skip

MARKER = "prepared.txt"
BALLAST_MB = 64


def prepare_marker(params: Params) -> None:
    """Write a marker file the cases check, proving ``prepare`` ran first."""
    (params.data_dir / MARKER).write_text(str(params.size), encoding="utf-8")


class CountingCase:
    """Counts to ``size``; fails when ``prepare`` did not run."""

    def __init__(self, params: Params) -> None:
        self.params = params

    async def setup(self) -> None:
        """Check the marker."""
        if not (self.params.data_dir / MARKER).exists():
            raise RuntimeError("prepare did not run")

    async def run(self) -> Measured:
        """Count."""
        total = 0
        for i in range(self.params.size):
            total += i
        return Measured(self.params.size, notes={"total": total})

    async def close(self) -> None:
        """Nothing to release."""


class BallastCase(CountingCase):
    """Like :class:`CountingCase`, holding :data:`BALLAST_MB` MB while it runs."""

    async def run(self) -> Measured:
        """Allocate, touch, count, release."""
        ballast = bytearray(BALLAST_MB * 1024 * 1024)
        for i in range(0, len(ballast), 4096):
            ballast[i] = 1
        measured = await super().run()
        del ballast
        return measured


class SkippingCase(CountingCase):
    """Cannot run here."""

    async def setup(self) -> None:
        """Skip."""
        raise Skip("no such server here")


class FailingCase(CountingCase):
    """Breaks while measured."""

    async def run(self) -> Measured:
        """Fail."""
        raise RuntimeError("the path broke")


class SqliteCase(CountingCase):
    """Creates a SQLite table in its set-up, then inserts ``size`` rows one by one and reads
    them back in its run (for ``--sql-profile``)."""

    async def setup(self) -> None:
        """A database with one table."""
        import sqlite3

        await super().setup()
        self.conn = sqlite3.connect(self.params.workdir / "fake.db", isolation_level=None)
        self.conn.execute("CREATE TABLE items (n INTEGER PRIMARY KEY, label TEXT)")

    async def run(self) -> Measured:
        """One INSERT per item, then one SELECT of them all."""
        for i in range(self.params.size):
            self.conn.execute("INSERT INTO items (n, label) VALUES (?, ?)", (i, "x"))
        rows = self.conn.execute("SELECT n FROM items").fetchall()
        return Measured(self.params.size, notes={"rows": len(rows)})

    async def close(self) -> None:
        """Close the database."""
        self.conn.close()
