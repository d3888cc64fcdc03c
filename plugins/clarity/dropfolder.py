"""The drop folder: every new .zip or export folder put there is imported once.

A scheduled job (``[clarity] drop_folder``, every ``drop_interval_seconds``) imports each
entry that has not changed for ``drop_settle_seconds`` (so a copy in progress is left
alone), then moves it to ``done/`` with its report (``<name>.report.jsonl``) and summary
(``<name>.summary.json``), or — when the export cannot be imported (refused, a damaged file
midway, or any other failure) — to ``failed/`` with ``<name>.error.txt`` (and the report and
partial summary when the import had begun). Either way the scan goes on to the next entry:
one bad entry is never retried forever, nor blocks the others. Importing a moved entry again
is safe (an import is idempotent).

An entry that cannot be moved where it belongs (``done/`` exists as a file, permission
denied …) is not imported again on the next scan: an entry imported but not movable to
``done/`` goes to ``failed/`` (its ``<name>.error.txt`` says it *was* imported); one that
cannot be moved at all stays where it is and is remembered (by its path, size and newest
modification time) until it changes or the hub restarts, with one log line when it happens.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import traceback
from datetime import UTC, datetime
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
_STUCK_KEY = "clarity.drop_stuck"

Signature = tuple[float, int]
"""An entry's newest modification time and its size: a changed entry is a new one."""


def _signature(entry: Path) -> Signature:
    st = entry.stat()
    newest = st.st_mtime
    if entry.is_dir():
        for p in entry.rglob("*"):
            newest = max(newest, p.stat().st_mtime)
    return newest, st.st_size


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
    # Entries handled but not movable: path -> signature when handled (not imported again).
    stuck: dict[str, Signature] = ctx.extras.setdefault(_STUCK_KEY, {})
    outcomes: list[dict[str, Any]] = []
    async with lock:
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for entry in _candidates(folder):
            try:
                signature = _signature(entry)
            except OSError:  # removed or replaced while we looked: the next scan sees it
                continue
            if now - signature[0] < settings.drop_settle_seconds:
                continue
            if stuck.get(str(entry)) == signature:
                continue  # handled already and could not be moved: logged then
            stuck.pop(str(entry), None)
            outcome = await _import_one(ctx, folder, entry)
            if not outcome.pop("moved", True):
                stuck[str(entry)] = signature
            outcomes.append(outcome)
    return outcomes


def _report_path(ctx: Any, entry: Path) -> Path:
    """Where the entry's findings go (known before the import, so a failure keeps them)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in entry.name)[:60]
    return settings_of(ctx.config).report_dir(ctx.config) / f"clarity-drop-{stamp}-{safe}.jsonl"


def _where(exc: BaseException) -> str:
    """Where an unexpected exception came from: its type and innermost frame (never its
    message, which might quote a value)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno} ({last.name})"


async def _import_one(ctx: Any, folder: Path, entry: Path) -> dict[str, Any]:
    """Import one entry and move it to done/ or failed/ (an imported entry that cannot go to
    done/ goes to failed/). Its outcome; ``moved`` False when it could not be moved at all
    (it stays where it is, logged once, and the caller remembers it)."""
    report = _report_path(ctx, entry)
    try:
        summary = await import_export(ctx, entry, report_path=report)
    except ImportRefused as exc:
        error, partial = str(exc), exc.summary
        log.warning("clarity drop folder: %s refused", entry.name)
    except Exception as exc:  # any failure: file it and go on with the next entry
        error = f"import failed: {_where(exc)}; see the hub log"
        partial = None
        log.error("clarity drop folder: %s failed (%s)", entry.name, _where(exc))
    else:
        data = summary.to_json()
        done: dict[str, Any] = {"entry": entry.name, "status": "done", "summary": data}
        try:
            _file_done(folder, entry, Path(summary.report), data)
        except OSError as exc:
            return _imported_not_moved(folder, entry, report, data, done, _where(exc))
        log.info("clarity drop folder: %s imported (%d rows)", entry.name, data["rows_read"])
        return done
    out: dict[str, Any] = {"entry": entry.name, "status": "failed", "error": error}
    if partial is not None:
        out["summary"] = partial
    try:
        _file_failed(folder, entry, error, report, partial)
    except OSError as exc:
        log.error(
            "clarity drop folder: %s failed and could not be moved to %s/ (%s); left in place, "
            "not tried again until it changes",
            entry.name,
            FAILED,
            _where(exc),
        )
        out["moved"] = False
    return out


def _imported_not_moved(
    folder: Path,
    entry: Path,
    report: Path,
    data: dict[str, Any],
    outcome: dict[str, Any],
    where: str,
) -> dict[str, Any]:
    """An imported entry that could not be moved to done/: filed in failed/ (its error file
    says it was imported), else left in place and not imported again (``moved`` False)."""
    if not entry.exists() and not entry.is_symlink():  # moved; its report or summary not written
        log.error(
            "clarity drop folder: %s imported and moved to %s/, its report not written (%s)",
            entry.name,
            DONE,
            where,
        )
        return outcome
    note = (
        f"imported ({data.get('rows_read', 0)} rows read), but it could not be moved to "
        f"{DONE}/: {where}; importing it again is safe"
    )
    try:
        _file_failed(folder, entry, note, report, data)
    except OSError as exc:
        log.error(
            "clarity drop folder: %s imported but could not be moved to %s/ (%s) nor %s/ (%s); "
            "left in place, not imported again until it changes",
            entry.name,
            DONE,
            where,
            FAILED,
            _where(exc),
        )
        outcome["moved"] = False
        return outcome
    log.error(
        "clarity drop folder: %s imported but could not be moved to %s/ (%s); moved to %s/",
        entry.name,
        DONE,
        where,
        FAILED,
    )
    outcome["filed"] = FAILED
    return outcome


def _file_failed(
    folder: Path, entry: Path, error: str, report: Path, summary: dict[str, Any] | None
) -> None:
    failed = folder / FAILED
    failed.mkdir(exist_ok=True)
    target = _free_name(failed, entry.name)
    shutil.move(str(entry), target)
    target.with_name(target.name + ".error.txt").write_text(error + "\n", encoding="utf-8")
    if report.exists():
        shutil.copyfile(report, target.with_name(target.name + ".report.jsonl"))
    if summary is not None:
        target.with_name(target.name + ".summary.json").write_bytes(
            orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        )


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
