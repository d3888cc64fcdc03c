"""The import and export on PostgreSQL (skipped when no server answers)."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from plugins.clarity.exporter import export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export

PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable() -> bool:
    u = urlparse(PG_URL)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=3):
            return True
    except OSError:
        return False


@pytest.mark.pg
async def test_clarity_import_export_on_postgres(make_hub: Any, tmp_path: Path) -> None:
    if not _reachable():
        if os.environ.get("HUB_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required but {PG_URL} does not answer")
        pytest.skip("PostgreSQL not reachable")
    import asyncpg

    name = f"clarity_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        gen = write_export(tmp_path / "gen", clients=60, seed=8, version="2026", vsp=True)
        async with make_hub("pg", store_url=url) as ctx:
            first = (await import_export(ctx, gen)).to_json()
            assert first["errors"] == 0 and first["inserted"] == first["rows_read"]
            again = (await import_export(ctx, gen)).to_json()
            assert again["unchanged"] == again["rows_read"]
            when = datetime(2025, 11, 1)
            one = await export_hmis(ctx, tmp_path / "one", csv_version="2026", export_date=when)
            assert one.files["Client.csv"] > 0
    finally:
        admin = await asyncpg.connect(PG_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
