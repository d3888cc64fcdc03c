"""The drop folder: every new .zip or export folder put there is imported once.

A scheduled job (``[clarity] drop_folder``, every ``drop_interval_seconds``) imports each
entry that has not changed for ``drop_settle_seconds`` (so a copy in progress is left
alone), then moves it to ``done/`` with its report (``<name>.report.jsonl``) and summary
(``<name>.summary.json``), or — when the export cannot be imported at all — to ``failed/``
with ``<name>.error.txt``. A crash mid-import leaves the entry in place; the next run imports
it again, which is safe (an import is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import orjson

from plugins.clarity.csvio import ImportRefused
from plugins.clarity.importer import import_export
from plugins.clarity.settings import settings_of

log = logging.getLogger("hub.clarity")

DONE = "done"
FAILED = "failed"
_LOCK_KEY = "clarity.drop_lock"


def _settled(entry: Path, settle: float, now: float) -> bool:
    newest = entry.stat().st_mtime
    if entry.is_dir():
        for p in entry.rglob("*"):
            newest = max(newest, p.stat().st_mtime)
    return now - newest >= settle


def _candidates(folder: Path) -> list[Path]:
    out: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name in (DONE, FAILED) or entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.suffix.lower() == ".zip":
            out.append(entry)
    return out


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    n = 1
    while target.exists():
        target = folder / f"{name}.{n}"
        n += 1
    return target


async def scan_drop_folder(ctx: Any) -> list[dict[str, Any]]:
    """Import every settled entry of the drop folder; returns one outcome per entry."""
    settings = settings_of(ctx.config)
    folder = settings.drop_dir(ctx.config)
    if folder is None:
        return []
    lock = ctx.extras.setdefault(_LOCK_KEY, asyncio.Lock())
    outcomes: list[dict[str, Any]] = []
    async with lock:
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for entry in _candidates(folder):
            if not _settled(entry, settings.drop_settle_seconds, now):
                continue
            outcomes.append(await _import_one(ctx, folder, entry))
    return outcomes


async def _import_one(ctx: Any, folder: Path, entry: Path) -> dict[str, Any]:
    try:
        summary = await import_export(ctx, entry)
    except ImportRefused as exc:
        _file_failed(folder, entry, str(exc))
        log.warning("clarity drop folder: %s refused", entry.name)
        return {"entry": entry.name, "status": "failed", "error": str(exc)}
    data = summary.to_json()
    _file_done(folder, entry, Path(summary.report), data)
    log.info("clarity drop folder: %s imported (%d rows)", entry.name, data["rows_read"])
    return {"entry": entry.name, "status": "done", "summary": data}


def _file_failed(folder: Path, entry: Path, error: str) -> None:
    failed = folder / FAILED
    failed.mkdir(exist_ok=True)
    target = _free_name(failed, entry.name)
    shutil.move(str(entry), target)
    target.with_name(target.name + ".error.txt").write_text(error + "\n", encoding="utf-8")


def _file_done(folder: Path, entry: Path, report: Path, data: dict[str, Any]) -> None:
    done = folder / DONE
    done.mkdir(exist_ok=True)
    target = _free_name(done, entry.name)
    shutil.move(str(entry), target)
    if report.exists():
        shutil.copyfile(report, target.with_name(target.name + ".report.jsonl"))
    target.with_name(target.name + ".summary.json").write_bytes(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
