"""With SQLite one process delivers: a second is refused rather than let it take the first
one's leases (taken back at start after a crash) and send the same entries at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.store import StoreError
from hub.store.sqlite import SqliteStore


async def test_a_second_process_cannot_deliver_from_one_sqlite_store(tmp_path: Path) -> None:
    first, second = SqliteStore(tmp_path / "hub.db"), SqliteStore(tmp_path / "hub.db")
    await first.open()
    await second.open()
    try:
        first.hold_delivery()
        first.hold_delivery()  # again in the same process: nothing changes
        with pytest.raises(StoreError, match="another process is delivering from the SQLite"):
            second.hold_delivery()
        await first.close()
        second.hold_delivery()  # free once the first has stopped
    finally:
        await first.close()
        await second.close()


def test_hub_worker_says_in_one_line_that_another_process_delivers(hub_dir, hub_cli) -> None:
    config = hub_dir()
    assert hub_cli("migrate").exit_code == 0
    delivering = SqliteStore(config.parent / "hub-data" / "hub.db")
    delivering.hold_delivery()  # as a running `hub serve` would
    try:
        result = hub_cli("worker")
    finally:
        asyncio.run(delivering.close())
    assert result.exit_code == 2
    assert "another process is delivering from the SQLite store" in result.output
    assert "Traceback" not in result.output
