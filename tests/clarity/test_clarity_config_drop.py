"""The [clarity] section and the drop folder job."""

from __future__ import annotations

import logging
import os
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from hub.config import ConfigError
from plugins.clarity import plugin
from plugins.clarity.dropfolder import scan_drop_folder
from plugins.clarity.generate import write_export
from plugins.clarity.settings import validate_section


def test_clarity_config_validation_names_the_key() -> None:
    agencies = frozenset({"shelter-a"})
    assert validate_section({"batch_size": 5000, "default_agency": "shelter-a"}, agencies) == []
    assert plugin.hub_validate_config(section="hl7", value={}, agencies=agencies) is None
    errors = validate_section(
        {
            "batch_size": 10,
            "default_agency": "nobody",
            "drop_interval_seconds": 0,
            "report_limit": -1,
            "export_purpose": "marketing!",
            "colour": "blue",
            "drop_folder": 3,
        },
        agencies,
    )
    assert "clarity.batch_size: 10 out of range 100-100000" in errors
    assert "clarity.default_agency: unknown agency 'nobody'" in errors
    assert "clarity.drop_interval_seconds: must be more than 0" in errors
    assert "clarity.report_limit: must be 0 (no limit) or more" in errors
    assert "clarity.export_purpose: unknown purpose 'marketing!'" in errors
    assert any(e.startswith("clarity.colour: unknown key") for e in errors)
    assert "clarity.drop_folder: expected a str, got int" in errors


def test_clarity_config_errors_stop_loading(tools: Any, tmp_path: Path) -> None:
    path = tools.write_config(tmp_path / "hub", '\n[clarity]\nbatch_size = "big"\n')
    with pytest.raises(ConfigError, match=r"clarity\.batch_size"):
        tools.load(path)


async def test_clarity_default_agency_owns_users(make_hub: Any, tmp_path: Path) -> None:
    gen = write_export(tmp_path / "gen", clients=3, seed=1, details=False)
    async with make_hub(extra='\n[clarity]\ndefault_agency = "cie-211"\nbatch_size = 100\n') as ctx:
        summary = await import_export_json(ctx, gen)
        assert summary["default_owner"] == "cie-211"
        async with ctx.store.transaction() as tx:
            user = await tx.get_record("hmis.User", "hmis:synthetic", "1")
        assert user is not None and user.owner == "cie-211"


async def import_export_json(ctx: Any, path: Path) -> dict[str, Any]:
    from plugins.clarity.importer import import_export

    return (await import_export(ctx, path)).to_json()


async def test_clarity_drop_folder_imports_each_entry_once(make_hub: Any, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    folder = write_export(drop / "october", clients=5, seed=1)
    with zipfile.ZipFile(drop / "november.zip", "w") as z:
        for p in sorted(folder.iterdir()):
            z.write(p, p.name)
    (drop / "broken.zip").write_bytes(b"not a zip")
    (drop / "notes.txt").write_text("ignored")
    extra = f'\n[clarity]\ndrop_folder = "{drop}"\ndrop_settle_seconds = 0\n'
    async with make_hub(extra=extra) as ctx:
        jobs = plugin.hub_scheduled_jobs(ctx=ctx)
        assert [j.name for j in jobs] == ["clarity-drop-folder"] and jobs[0].interval_seconds == 60
        outcomes = await scan_drop_folder(ctx)
        assert {o["entry"]: o["status"] for o in outcomes} == {
            "broken.zip": "failed",
            "november.zip": "done",
            "october": "done",
        }
        assert (drop / "done" / "october").is_dir()
        assert (drop / "done" / "october.report.jsonl").exists()
        assert (drop / "done" / "november.zip.summary.json").exists()
        assert "not a readable zip" in (drop / "failed" / "broken.zip.error.txt").read_text()
        assert (drop / "notes.txt").exists()
        assert await scan_drop_folder(ctx) == []
        # The same export dropped again is imported again, and changes nothing.
        shutil.copytree(drop / "done" / "october", drop / "october-again")
        again = await scan_drop_folder(ctx)
        summary = again[0]["summary"]
        assert summary["unchanged"] == summary["rows_read"]


async def test_clarity_no_drop_folder_no_job(make_hub: Any) -> None:
    async with make_hub() as ctx:
        assert plugin.hub_scheduled_jobs(ctx=ctx) == []
        assert [s.name for s in plugin.hub_services(ctx=ctx)] == ["clarity-agencies"]


async def test_clarity_drop_folder_entry_not_movable_to_done_is_imported_once(
    make_hub: Any, tmp_path: Path, caplog: Any
) -> None:
    """An entry imported but not movable to done/ (done is a file) goes to failed/, saying it
    was imported; the next scan does not import it again."""
    drop = tmp_path / "drop"
    drop.mkdir()
    write_export(drop / "october", clients=5, seed=1)
    (drop / "done").write_text("not a folder")
    extra = f'\n[clarity]\ndrop_folder = "{drop}"\ndrop_settle_seconds = 0\n'
    async with make_hub(extra=extra) as ctx:
        with caplog.at_level(logging.INFO, logger="hub.clarity"):
            outcomes = await scan_drop_folder(ctx)
        assert [(o["entry"], o["status"], o.get("filed")) for o in outcomes] == [
            ("october", "done", "failed")
        ]
        assert outcomes[0]["summary"]["inserted"] > 0
        assert not (drop / "october").exists() and (drop / "failed" / "october").is_dir()
        note = (drop / "failed" / "october.error.txt").read_text(encoding="utf-8")
        assert note.startswith("imported (") and "could not be moved to done/" in note
        assert (drop / "failed" / "october.summary.json").exists()
        lines = [r.getMessage() for r in caplog.records if "october" in r.getMessage()]
        assert len(lines) == 1 and "\n" not in lines[0]
        assert lines[0].startswith(
            "clarity drop folder: october imported but could not be moved to done/ ("
        )
        assert lines[0].endswith("; moved to failed/")
        assert await scan_drop_folder(ctx) == []


async def test_clarity_drop_folder_entry_not_movable_at_all_is_skipped(
    make_hub: Any, tmp_path: Path, caplog: Any
) -> None:
    """Neither done/ nor failed/ usable: the entry stays, is imported once, logged once, and
    imported again only when it changes."""
    drop = tmp_path / "drop"
    drop.mkdir()
    folder = write_export(drop / "october", clients=5, seed=1)
    (drop / "done").write_text("not a folder")
    (drop / "failed").write_text("not a folder either")
    extra = f'\n[clarity]\ndrop_folder = "{drop}"\ndrop_settle_seconds = 0\n'
    async with make_hub(extra=extra) as ctx:
        with caplog.at_level(logging.INFO, logger="hub.clarity"):
            first = await scan_drop_folder(ctx)
            assert [(o["entry"], o["status"]) for o in first] == [("october", "done")]
            assert "moved" not in first[0]
            assert await scan_drop_folder(ctx) == []
            assert await scan_drop_folder(ctx) == []
        logged = [r for r in caplog.records if "october" in r.getMessage()]
        assert len(logged) == 1 and logged[0].levelno == logging.ERROR
        message = logged[0].getMessage()
        assert "\n" not in message and "left in place" in message
        assert (drop / "october").is_dir()
        # Changed (a new copy dropped under the same name): imported again.
        os.utime(folder, (time.time() - 100, time.time() - 100))
        os.utime(folder / "Client.csv")
        again = await scan_drop_folder(ctx)
        assert [o["entry"] for o in again] == ["october"]
        assert again[0]["summary"]["unchanged"] == again[0]["summary"]["rows_read"]
