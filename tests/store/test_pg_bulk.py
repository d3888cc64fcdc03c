"""PostgreSQL only: large batches go through COPY into the session's staging tables."""

from __future__ import annotations

from hub.context import HubContext
from hub.core.rows import record_to_row
from hub.store.pg_bulk import COPY_THRESHOLD, PgTransaction
from hub.synthetic import client
from tests.conftest import HubFactory


async def _staged(tx: PgTransaction, table: str) -> int | None:
    """Rows in a staging table of this session (None when the session has none yet)."""
    made = await tx._c.fetchrow(f"SELECT to_regclass('pg_temp.{table}') IS NOT NULL")
    if made is None or not made[0]:
        return None
    row = await tx._c.fetchrow(f"SELECT count(*) FROM pg_temp.{table}")
    assert row is not None
    return int(row[0])


async def test_large_batches_are_copied_small_ones_are_not(hub_factory: HubFactory) -> None:
    hub: HubContext
    async with hub_factory(store="postgresql") as hub:
        small = [record_to_row(client(str(i))) for i in range(COPY_THRESHOLD - 1)]
        large = [record_to_row(client(str(i))) for i in range(100, 100 + COPY_THRESHOLD)]
        async with hub.store.transaction() as tx:
            assert isinstance(tx, PgTransaction)
            await tx.write_records(small)
            assert not await _staged(tx, "hub_stage_records")
            await tx.write_records(large)
            assert await _staged(tx, "hub_stage_records") == COPY_THRESHOLD
            await tx.link_records(
                [(r.kind, r.source, r.source_id, "p1", ["k1", "k2"]) for r in large]
            )
            assert await _staged(tx, "hub_stage_links") == COPY_THRESHOLD
            assert await _staged(tx, "hub_stage_keys") == 2 * COPY_THRESHOLD
        async with hub.store.transaction() as tx:
            assert isinstance(tx, PgTransaction)
            # Emptied at commit (ON COMMIT DELETE ROWS), whichever session this is.
            assert not await _staged(tx, "hub_stage_records")
        assert await hub.store.count_records("client") == {"client": 2 * COPY_THRESHOLD - 1}
