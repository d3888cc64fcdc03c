"""The benchmark child process: ``python -m hub.bench.child``.

It runs one side of one benchmark (or its ``prepare`` step) so that the peak memory it
reports is that side's alone. Commands arrive as JSON lines on stdin; answers go as JSON
lines to the process's original stdout. Anything else the work prints goes to stderr,
which the parent keeps in a log file.

Commands: ``{"op": "prepare" | "round", "ref": "module:qualname", "params": {...}}`` (a
round may carry ``"profile": FILE``: the timed part is profiled with pyinstrument, when it
is installed, and its text report written there; and ``"sql_profile": FILE``: the timed
part's SQLite statements are timed, see :mod:`hub.bench.sqlprofile`) and
``{"op": "exit"}``. Answers:
``{"ok": true, ...figures}``, ``{"skip": reason}`` or ``{"error": "Type: message", "trace":
"..."}``; the first line is ``{"ready": true, ...}``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any

import orjson

from hub.bench.memory import current_rss_kb, peak_rss_kb
from hub.bench.model import Case, Measured, Params, Skip, resolve
from hub.bench.sqlprofile import SqlProfile
from hub.heap import settle_heap


def _answer(out: IO[bytes], data: dict[str, Any]) -> None:
    out.write(orjson.dumps(data) + b"\n")
    out.flush()


async def _one_round(
    case: Case, profiler: Any = None, sql_profile: SqlProfile | None = None
) -> tuple[Measured, int]:
    await case.setup()
    setup_rss = current_rss_kb()
    try:
        # Both sides run in a settled heap, as `hub serve` and `hub import` do after start-up.
        settle_heap()
        if profiler is not None:
            profiler.start()
        if sql_profile is not None:
            sql_profile.recording = True
        started = time.perf_counter()
        measured = await case.run()
        elapsed = time.perf_counter() - started
        if sql_profile is not None:
            sql_profile.recording = False
        if profiler is not None:
            profiler.stop()
    finally:
        await case.close()
    if measured.seconds is None:
        measured = Measured(measured.items, elapsed, measured.notes)
    return measured, setup_rss


def _profiler() -> Any:
    """A pyinstrument profiler when pyinstrument is installed (``--profile``), else None."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return None
    return Profiler(async_mode="disabled", interval=0.0005)


def _figures(measured: Measured) -> dict[str, Any]:
    return {
        "ok": True,
        "items": measured.items,
        "seconds": measured.seconds,
        "notes": dict(measured.notes),
        "rss_kb": current_rss_kb(),
        "peak_rss_kb": peak_rss_kb(),
    }


def handle(command: dict[str, Any]) -> dict[str, Any]:
    """Run one command and return its answer (never raises)."""
    try:
        target = resolve(str(command["ref"]))
        params = Params.from_json(command["params"])
        params.workdir.mkdir(parents=True, exist_ok=True)
        params.data_dir.mkdir(parents=True, exist_ok=True)
        if command["op"] == "prepare":
            result = target(params)
            if inspect.isawaitable(result):
                asyncio.run(_await(result))
            return {"ok": True, "peak_rss_kb": peak_rss_kb()}
        before = current_rss_kb()
        profile = command.get("profile")
        profiler = _profiler() if profile else None
        sql_report = command.get("sql_profile")
        sql_profile = SqlProfile() if sql_report else None
        timing: AbstractContextManager[Any] = (
            sql_profile.installed() if sql_profile is not None else nullcontext()
        )
        with timing:  # before the case exists: its connections open in its set-up
            case = target(params)
            measured, setup_rss = asyncio.run(_one_round(case, profiler, sql_profile))
        if profiler is not None:
            text = profiler.output_text(unicode=True, show_all=False)
            Path(str(profile)).write_text(text, encoding="utf-8")
        if sql_profile is not None:
            report = sql_profile.report(measured.items, measured.seconds or 0.0)
            Path(str(sql_report)).write_text(report, encoding="utf-8")
        return {**_figures(measured), "rss_before_kb": before, "rss_setup_kb": setup_rss}
    except Skip as exc:
        return {"skip": str(exc)}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}


async def _await(awaitable: Any) -> None:
    await awaitable


def main() -> None:
    """Serve commands until ``exit`` or end of input."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(level=os.environ.get("HUB_BENCH_LOG_LEVEL", "WARNING"))
    _answer(out, {"ready": True, "rss_kb": current_rss_kb(), "peak_rss_kb": peak_rss_kb()})
    for line in sys.stdin:
        if not line.strip():
            continue
        command = orjson.loads(line)
        if command.get("op") == "exit":
            break
        _answer(out, handle(command))


if __name__ == "__main__":
    main()
