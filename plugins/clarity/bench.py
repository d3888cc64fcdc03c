"""Benchmarks of the Clarity plugin's hot path: importing a HUD HMIS CSV export.

Both sides read the same generated export (``plugins.clarity.generate.write_export``: N
clients, one enrollment each, and a sprinkling of exits, services and assessments — about
2.9 data rows per client). The path is ``hub import clarity``'s own function on a fresh
hub; the floors are the least a database load of those rows can cost: on SQLite
``csv.reader`` + ``executemany`` into plain tables (one transaction per file), on PostgreSQL
``COPY`` through ``asyncpg.copy_records_to_table``. Items are data rows (all files).
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub.bench.floors import open_wal
from hub.bench.hubs import fresh_pg_database, open_bench_hub
from hub.bench.model import Benchmark, Measured, Params, Target

EXPORT_DIR = "export"


def prepare_export(params: Params) -> None:
    """Write the FY2026 export of ``size`` clients for both sides (deterministic)."""
    from plugins.clarity.generate import write_export

    write_export(params.data_dir / EXPORT_DIR, clients=params.size, seed=params.seed)


def _csv_files(export: Path) -> list[Path]:
    return sorted(export.glob("*.csv"))


def _rows(path: Path) -> tuple[list[str], Iterator[list[str]], Any]:
    handle = path.open(encoding="utf-8", newline="")
    reader = csv.reader(handle)
    header = next(reader, [])
    return header, reader, handle


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ImportPath:
    """``plugins.clarity.importer.import_export`` into a fresh hub (SQLite or PostgreSQL)."""

    def __init__(self, params: Params, postgres: bool = False) -> None:
        self.params = params
        self.postgres = postgres
        self._ctx: Any = None
        self._hub: Any = None
        self._db: Any = None

    async def setup(self) -> None:
        """A fresh hub (its own PostgreSQL database when asked)."""
        store_url = "sqlite:///hub-data/hub.db"
        if self.postgres:
            self._db = fresh_pg_database(self.params.options)
            store_url = await self._db.__aenter__()
        self._hub = open_bench_hub(self.params.workdir / "hub", store_url=store_url)
        self._ctx = await self._hub.__aenter__()

    async def run(self) -> Measured:
        """Import the export; items = data rows read. Fails when any row was refused."""
        from plugins.clarity.importer import import_export

        summary = await import_export(self._ctx, self.params.data_dir / EXPORT_DIR)
        errors = summary.total("errors")
        if errors:
            raise RuntimeError(f"the benchmark export had {errors} refused rows")
        return Measured(
            summary.total("rows"),
            notes={"accepted": summary.total("accepted"), "inserted": summary.total("inserted")},
        )

    async def close(self) -> None:
        """Close the hub; drop its PostgreSQL database."""
        if self._hub is not None:
            await self._hub.__aexit__(None, None, None)
        if self._db is not None:
            await self._db.__aexit__(None, None, None)


class SqliteCsvFloor:
    """``csv.reader`` + ``executemany`` of every file into plain TEXT tables, WAL SQLite."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._conn: sqlite3.Connection | None = None

    async def setup(self) -> None:
        """Open an empty database with the hub's pragmas."""
        self._conn = open_wal(self.params.workdir / "floor.db")

    async def run(self) -> Measured:
        """Load every file, one transaction each; items = data rows."""
        conn = self._conn
        assert conn is not None
        total = 0
        for path in _csv_files(self.params.data_dir / EXPORT_DIR):
            header, reader, handle = _rows(path)
            with handle:
                cols = ", ".join(f"{_quoted(c)} TEXT" for c in header)
                conn.execute(f"CREATE TABLE {_quoted(path.stem)} ({cols})")
                marks = ", ".join("?" for _ in header)
                cursor = conn.cursor()
                conn.execute("BEGIN IMMEDIATE")
                cursor.executemany(f"INSERT INTO {_quoted(path.stem)} VALUES ({marks})", reader)
                conn.execute("COMMIT")
            total += conn.execute(f"SELECT count(*) FROM {_quoted(path.stem)}").fetchone()[0]
        return Measured(total)

    async def close(self) -> None:
        """Close the database."""
        if self._conn is not None:
            self._conn.close()


class PostgresCopyFloor:
    """``csv.reader`` + ``asyncpg.copy_records_to_table`` of every file into TEXT tables."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._db: Any = None
        self._conn: Any = None

    async def setup(self) -> None:
        """A fresh database and one connection."""
        import asyncpg

        self._db = fresh_pg_database(self.params.options)
        url = await self._db.__aenter__()
        self._conn = await asyncpg.connect(url)

    async def run(self) -> Measured:
        """COPY every file into its table; items = data rows."""
        total = 0
        for path in _csv_files(self.params.data_dir / EXPORT_DIR):
            header, reader, handle = _rows(path)
            with handle:
                table = path.stem.lower()
                cols = ", ".join(f"{_quoted(c)} TEXT" for c in header)
                await self._conn.execute(f"CREATE TABLE {_quoted(table)} ({cols})")
                records = ([v if v != "" else None for v in row] for row in reader)
                result = await self._conn.copy_records_to_table(
                    table, records=records, columns=header
                )
            total += int(str(result).rsplit(" ", 1)[-1])
        return Measured(total)

    async def close(self) -> None:
        """Close the connection and drop the database."""
        if self._conn is not None:
            await self._conn.close()
        if self._db is not None:
            await self._db.__aexit__(None, None, None)


def path_sqlite(params: Params) -> ImportPath:
    """The import on the embedded SQLite store."""
    return ImportPath(params)


def path_postgres(params: Params) -> ImportPath:
    """The import on PostgreSQL (a fresh database per round)."""
    return ImportPath(params, postgres=True)


def floor_sqlite(params: Params) -> SqliteCsvFloor:
    """The SQLite floor."""
    return SqliteCsvFloor(params)


def floor_postgres(params: Params) -> PostgresCopyFloor:
    """The PostgreSQL COPY floor."""
    return PostgresCopyFloor(params)


def benchmarks() -> list[Benchmark]:
    """The Clarity plugin's benchmarks (for the ``hub_benchmarks`` hook)."""
    return [
        Benchmark(
            name="clarity.import.sqlite",
            title="HUD CSV import (FY2026), SQLite",
            unit="row",
            size_unit="clients",
            path=path_sqlite,
            floor=floor_sqlite,
            floor_title="csv.reader + executemany into plain tables",
            prepare=prepare_export,
            sizes={
                "tiny": (50, 150),
                "small": (1_000, 3_000, 10_000),
                "medium": (10_000, 30_000, 100_000),
                "large": (10_000, 100_000, 1_000_000),
            },
            target=Target(
                min_rate=100_000, min_ratio=0.5, max_peak_rss_mb=400, applies_at=1_000_000
            ),
            note="about 2.9 data rows per client (Client, Enrollment, Exit, Services, …)",
        ),
        Benchmark(
            name="clarity.import.postgresql",
            title="HUD CSV import (FY2026), PostgreSQL",
            unit="row",
            size_unit="clients",
            path=path_postgres,
            floor=floor_postgres,
            floor_title="csv.reader + asyncpg COPY into plain tables",
            prepare=prepare_export,
            sizes={"tiny": (50,), "small": (1_000,), "medium": (30_000,), "large": (100_000,)},
            note="a fresh database per round on HUB_TEST_PG_URL's server; skipped without one",
        ),
    ]
