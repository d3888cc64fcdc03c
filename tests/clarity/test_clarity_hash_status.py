"""Export.csv's HashStatus is the status the client rows carry: never clear over hashed."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from plugins.clarity.exporter import ExportError, export_hmis
from plugins.clarity.generate import write_export
from plugins.clarity.importer import import_export

WHEN = datetime(2025, 11, 1, 10, 0, 0)
HEX64 = re.compile(r"[0-9a-f]{64}")


def tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


async def test_clarity_export_of_hashed_data_declares_its_hash_status(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=30, seed=3, version="2026")
    async with make_hub("a") as a:
        await import_export(a, gen)
        await export_hmis(a, tmp_path / "hashed", csv_version="2026", hash_status="4")
    assert tools.read_csv(tmp_path / "hashed" / "Export.csv")[0]["HashStatus"] == "4"
    async with make_hub("b") as b:
        first = (await import_export(b, tmp_path / "hashed")).to_json()
        assert first["hash_status"] == "4" and first["errors"] == 0
        summary = await export_hmis(b, tmp_path / "again", csv_version="2026", export_date=WHEN)
        # The names arrived hashed: the export says so (it used to say 1, clear text).
        meta = tools.read_csv(tmp_path / "again" / "Export.csv")[0]
        assert meta["HashStatus"] == "4" == summary.to_json()["hash_status"]
        clients = tools.read_csv(tmp_path / "again" / "Client.csv")
        assert len(clients) == 30
        assert all(
            HEX64.fullmatch(r["FirstName"]) and HEX64.fullmatch(r["LastName"]) for r in clients
        )
        assert summary.hashed_at_source == 30
        # Asking for clear text over hashed values is refused, naming the mismatch.
        with pytest.raises(ExportError, match=r"--hash-status 1: .*HashStatus 4"):
            await export_hmis(b, tmp_path / "clear", csv_version="2026", hash_status="1")
        assert not (tmp_path / "clear").exists()
        # Asking for 4 over data hashed as 4 is what it is.
        four = await export_hmis(
            b, tmp_path / "four", csv_version="2026", hash_status="4", export_date=WHEN
        )
        assert four.hash_status == "4"
        assert tree(tmp_path / "four") == tree(tmp_path / "again")
        # Re-importing that export changes nothing.
        again = (await import_export(b, tmp_path / "again")).to_json()
        assert again["files"]["Client.csv"]["unchanged"] == 30
        assert again["updated"] == 0


async def test_clarity_export_refuses_mixed_hash_statuses(
    make_hub: Any, tools: Any, tmp_path: Path
) -> None:
    gen = write_export(tmp_path / "gen", clients=20, seed=3, version="2024")
    async with make_hub("a") as a:
        await import_export(a, gen)
        await export_hmis(a, tmp_path / "hashed", csv_version="2024", hash_status="4")
    # A delta that carries five of the clients hashed; the others stay as stored (clear).
    keep = {r["PersonalID"] for r in tools.read_csv(gen / "Client.csv")[:5]}
    tools.rewrite(
        tmp_path / "hashed" / "Client.csv",
        lambda rows: [rows[0], *(r for r in rows[1:] if r[0] in keep)],
    )
    for file in ("Client.csv", "Export.csv"):
        (tmp_path / "delta").mkdir(exist_ok=True)
        (tmp_path / "delta" / file).write_bytes((tmp_path / "hashed" / file).read_bytes())
    async with make_hub("a") as a:
        summary = (await import_export(a, tmp_path / "delta", directive="delta")).to_json()
        assert summary["files"]["Client.csv"]["updated"] == 5
        with pytest.raises(ExportError) as refused:
            await export_hmis(a, tmp_path / "mixed", csv_version="2024")
        message = str(refused.value)
        assert "HashStatus 1: 15 rows, HashStatus 4: 5 rows" in message
        assert "--hash-status 4" in message
        assert not (tmp_path / "mixed").exists()
        # With --hash-status 4 the clear ones are hashed too: one status, declared.
        out = await export_hmis(a, tmp_path / "all4", csv_version="2024", hash_status="4")
    assert out.hash_status == "4"
    assert tools.read_csv(tmp_path / "all4" / "Export.csv")[0]["HashStatus"] == "4"
    clients = tools.read_csv(tmp_path / "all4" / "Client.csv")
    assert len(clients) == 20 and all(HEX64.fullmatch(r["FirstName"]) for r in clients)


@pytest.fixture
def sample(tools: Any) -> Path:
    if not tools.sample.is_dir():
        pytest.skip("shared samples not available")
    return Path(tools.sample)


async def test_clarity_sample_reexport_keeps_its_hash_status(
    make_hub: Any, tools: Any, sample: Path, tmp_path: Path
) -> None:
    """The sample arrives with HashStatus 3: our export of it says 3, and importing that
    export again changes nothing (it used to update all 514 clients)."""
    async with make_hub() as ctx:
        await import_export(ctx, sample)
        summary = await export_hmis(ctx, tmp_path / "out", csv_version="2024", export_date=WHEN)
        assert summary.hash_status == "3"
        assert tools.read_csv(tmp_path / "out" / "Export.csv")[0]["HashStatus"] == "3"
        again = (await import_export(ctx, tmp_path / "out")).to_json()
        assert again["hash_status"] == "3"
        assert again["files"]["Client.csv"]["unchanged"] == 514
        assert again["files"]["Client.csv"]["updated"] == 0
