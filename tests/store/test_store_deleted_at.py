"""When records were marked deleted (schema 10, ``records.deleted_at``): the store contract
run on SQLite and PostgreSQL, and the migration of a store that holds deleted records."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from hub.core.ports import RecordRow
from hub.core.rows import record_to_row
from hub.store import schema
from hub.store.base import SqlStore
from hub.store.postgres import PostgresStore
from hub.store.sqlite import SqliteStore
from hub.synthetic import client
from hub.testing.contracts import StoreContract
from tests.conftest import fresh_pg_database
from tests.store.test_store_suite import FIRST_RECORD_COLUMNS


@asynccontextmanager
async def sqlite_store(folder: Path) -> AsyncIterator[SqlStore]:
    """A new SQLite store in ``folder``, migrated."""
    store = SqliteStore(folder / "hub.db")
    await store.open()
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def postgres_store(folder: Path) -> AsyncIterator[SqlStore]:
    """A new PostgreSQL store in a fresh database of the test server, migrated."""
    async with fresh_pg_database() as url:
        store = PostgresStore(url)
        await store.open()
        try:
            await store.migrate()
            yield store
        finally:
            await store.close()


class TestSqliteStoreContract(StoreContract):
    """The store contract on SQLite."""

    store_factory = staticmethod(sqlite_store)


class TestPostgresStoreContract(StoreContract):
    """The store contract on PostgreSQL (row by row and through ``COPY``)."""

    store_factory = staticmethod(postgres_store)


SCHEMA_9_COLUMNS = FIRST_RECORD_COLUMNS
"""The columns of ``records`` before migration 10 (unchanged since schema 1)."""
ALL_MIGRATIONS = list(schema.MIGRATIONS)
"""Every migration this code knows (taken before a test narrows the list)."""


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_deleted_records_of_an_existing_store_have_no_deletion_time(
    dialect: str, tmp_path: Path
) -> None:
    """A store at schema 9 holding live and deleted records migrates to 10 with its data:
    the deleted ones get no time (deleted at an unknown time), the live ones none either,
    and both can be written again as before."""
    opener = sqlite_store if dialect == "sqlite" else postgres_store
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:9])
        patch.setattr(schema, "LATEST_VERSION", 9)
        async with opener(tmp_path) as store:
            assert await store.schema_version() == 9
            await _upgrade_with_old_rows(store)


async def _upgrade_with_old_rows(store: SqlStore) -> None:
    rows: list[RecordRow] = [
        record_to_row(client("1")),
        dataclasses.replace(record_to_row(client("2")), deleted=True),
    ]
    marks = ",".join("?" * len(SCHEMA_9_COLUMNS))
    async with store.transaction() as tx:
        for row in rows:
            await tx._c.execute(
                f"INSERT INTO records ({', '.join(SCHEMA_9_COLUMNS)}) VALUES ({marks})",
                [
                    int(v) if isinstance(v, bool) else v
                    for v in (getattr(row, c) for c in SCHEMA_9_COLUMNS)
                ],
            )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", ALL_MIGRATIONS)
        patch.setattr(schema, "LATEST_VERSION", ALL_MIGRATIONS[-1][0])
        applied = await store.migrate()
        assert applied[0] == 10
        await store.check_schema()
        async with store.transaction() as tx:
            live = await tx.get_record("client", "hmis:demo", "1")
            gone = await tx.get_record("client", "hmis:demo", "2")
        assert live is not None and not live.deleted and live.deleted_at is None
        assert gone is not None and gone.deleted and gone.deleted_at is None
        async with store.transaction() as tx:
            # Marking it again changes nothing (it is deleted already): still no time.
            assert await tx.mark_deleted("client", "hmis:demo", ["2"]) == 0
            assert await tx.mark_deleted("client", "hmis:demo", ["1"]) == 1
            now_gone = await tx.get_record("client", "hmis:demo", "1")
            still = await tx.get_record("client", "hmis:demo", "2")
        assert now_gone is not None and now_gone.deleted_at is not None
        assert still is not None and still.deleted_at is None
