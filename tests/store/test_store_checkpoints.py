"""WAL checkpoints of the SQLite store run in a thread of their own, not in commits."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

from hub.store.sqlite import SAFETY_NET_CHECKPOINT_PAGES, SqliteStore

PERSONS = [uuid.uuid4().hex for _ in range(2_000)]
WRITES = 20


async def write_birth_dates(store: SqliteStore, year: int) -> None:
    """The same pages changed by every write: each adds as much to the WAL."""
    async with store.transaction() as tx:
        await tx.set_birth_dates([(p, f"{year}-01-01") for p in PERSONS])


async def checkpointed(store: SqliteStore) -> None:
    """Until the checkpointer has run twice more (once after the last commit, at least)."""
    seen = store.checkpointer.checkpoints
    for _ in range(200):
        if store.checkpointer.checkpoints >= seen + 2:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the checkpointer did not run")


async def test_the_wal_stays_small_without_a_checkpoint_in_any_commit(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "hub.db")
    await store.open()
    try:
        await store.migrate()
        async with store.transaction() as tx:
            await tx.insert_persons(PERSONS)
        await checkpointed(store)
        wal = tmp_path / "hub.db-wal"
        await write_birth_dates(store, 1950)
        one_write = wal.stat().st_size
        await checkpointed(store)
        for year in range(1951, 1951 + WRITES):
            await write_birth_dates(store, year)
            await checkpointed(store)
        # Without checkpoints between them the writes would pile up in the WAL (the
        # commits' own automatic checkpoint, the safety net, sets in far later); copied back
        # after each, the file is written again from its start.
        assert one_write * WRITES < SAFETY_NET_CHECKPOINT_PAGES * 4096
        assert wal.stat().st_size <= 2 * one_write
        async with store.transaction() as tx:
            facts = await tx.persons_facts(PERSONS[:1])
        assert facts[PERSONS[0]][0] == f"{1950 + WRITES}-01-01"
    finally:
        await store.close()


async def test_closing_the_store_stops_its_checkpoints(tmp_path: Path) -> None:
    before = {t.ident for t in threading.enumerate() if t.name == "sqlite-checkpoints"}
    store = SqliteStore(tmp_path / "hub.db")
    await store.open()
    assert store.checkpointer.running
    await store.close()
    assert not store.checkpointer.running
    after = {t.ident for t in threading.enumerate() if t.name == "sqlite-checkpoints"}
    assert after <= before
