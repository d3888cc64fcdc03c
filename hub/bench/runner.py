"""Runs the suite: for each benchmark and size, path and floor alternately in child processes.

For one size: ``prepare`` (if any) runs in a throw-away child; then one child for the path
and one for the floor are started and given rounds in turn — path, floor, path, floor … —
each round in a fresh scratch directory that is deleted afterwards. The peak resident memory
each child reports (``VmHWM``) is that side's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from hub.bench.machine import machine_info
from hub.bench.model import PROFILES, Benchmark, Params, reference
from hub.bench.results import BenchResult, RoundFigure, SideResult, SizeResult, SuiteResult

DEFAULT_SEED = 20260101
ROUND_TIMEOUTS = {"tiny": 120.0, "small": 300.0, "medium": 1800.0, "large": 7200.0}
"""Seconds one round (or one ``prepare``) may take at each profile before it is abandoned."""


class BenchError(RuntimeError):
    """The suite cannot run as asked (an unknown benchmark name, a bad profile)."""


class ChildFailed(RuntimeError):
    """A child process died, timed out or reported an error."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run the suite: profile, rounds, which benchmarks, where, and options."""

    profile: str = "small"
    rounds: int = 3
    only: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    seed: int = DEFAULT_SEED
    workdir: Path | None = None
    keep: bool = False
    round_timeout: float | None = None
    profile_dir: Path | None = None
    sql_profile_dir: Path | None = None

    def timeout(self) -> float:
        """Seconds allowed per round."""
        return self.round_timeout or ROUND_TIMEOUTS.get(self.profile, 1800.0)


Progress = Callable[[str], None]


def select(benchmarks: Sequence[Benchmark], only: Sequence[str]) -> list[Benchmark]:
    """The benchmarks named by ``only`` (exact names or dotted prefixes); all when empty."""
    if not only:
        return list(benchmarks)
    chosen: list[Benchmark] = []
    for pattern in only:
        hits = [
            b
            for b in benchmarks
            if b.name == pattern or b.name.startswith(pattern.rstrip(".") + ".")
        ]
        if not hits:
            known = ", ".join(b.name for b in benchmarks)
            raise BenchError(f"no benchmark named {pattern!r} (known: {known})")
        chosen.extend(b for b in hits if b not in chosen)
    return [b for b in benchmarks if b in chosen]


class Child:
    """One ``python -m hub.bench.child`` process, spoken to in JSON lines."""

    def __init__(self, log_path: Path, timeout: float) -> None:
        self.log_path = log_path
        self.timeout = timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self.start_rss_kb = 0

    async def start(self) -> None:
        """Start the process and wait for its ``ready`` line."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = dict(os.environ)
        env.setdefault("PYTHONHASHSEED", "0")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.bench.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            env=env,
            limit=1 << 24,
        )
        ready = await self._read(60.0)
        self.start_rss_kb = int(ready.get("rss_kb", 0))

    async def _read(self, within: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), within)
        except TimeoutError:
            raise ChildFailed(f"no answer within {within:.0f} s (see {self.log_path})") from None
        if not line:
            code = await self._proc.wait()
            raise ChildFailed(f"child process exited with code {code} (see {self.log_path})")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    async def call(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command; its answer (raises :class:`ChildFailed` on death or timeout)."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(orjson.dumps(command) + b"\n")
        await self._proc.stdin.drain()
        return await self._read(self.timeout)

    async def stop(self) -> None:
        """Ask the process to exit; kill it when it does not."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.write(b'{"op": "exit"}\n')
                await proc.stdin.drain()
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class _Stop(Exception):
    """Ends one size early with a status (skipped or error) and a reason."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _verdict(answer: dict[str, Any], what: str) -> dict[str, Any]:
    if "skip" in answer:
        raise _Stop("skipped", str(answer["skip"]))
    if "error" in answer:
        trace = str(answer.get("trace", ""))
        raise _Stop("error", f"{what}: {answer['error']}\n{trace}".rstrip())
    return answer


class SuiteRunner:
    """Runs benchmarks as :class:`RunOptions` say; reports progress through ``progress``."""

    def __init__(self, options: RunOptions, progress: Progress | None = None) -> None:
        if options.profile not in PROFILES:
            raise BenchError(f"unknown size {options.profile!r} (one of {', '.join(PROFILES)})")
        if options.rounds < 1:
            raise BenchError("--rounds must be at least 1")
        self.options = options
        self.progress = progress or (lambda _msg: None)

    async def run(self, benchmarks: Sequence[Benchmark]) -> SuiteResult:
        """Run every benchmark at every size of the profile; never raises for one failure."""
        opts = self.options
        started = time.perf_counter()
        suite = SuiteResult(
            profile=opts.profile,
            rounds=opts.rounds,
            machine=machine_info(),
            started=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        base = opts.workdir or Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="hub-bench-", dir=base))
        try:
            for bench in benchmarks:
                suite.benchmarks.append(await self._benchmark(bench, root))
        finally:
            if not opts.keep:
                shutil.rmtree(root, ignore_errors=True)
        suite.seconds = time.perf_counter() - started
        return suite

    async def _benchmark(self, bench: Benchmark, root: Path) -> BenchResult:
        started = time.perf_counter()
        result = BenchResult(
            bench.name,
            bench.title,
            bench.unit,
            bench.floor_title,
            bench.target,
            bench.note,
            bench.size_unit,
        )
        for size in bench.sizes_for(self.options.profile):
            outcome = await self._size(bench, size, root / bench.name / str(size))
            result.sizes.append(outcome)
            if outcome.status == "skipped":
                self.progress(f"{bench.name} [{size}]: skipped: {outcome.reason}")
                break
            if outcome.status == "error":
                self.progress(f"{bench.name} [{size}]: FAILED: {outcome.reason.splitlines()[0]}")
        result.seconds = time.perf_counter() - started
        return result

    def _params(self, size: int, folder: Path, workdir: Path) -> Params:
        return Params(
            size=size,
            data_dir=folder / "data",
            workdir=workdir,
            seed=self.options.seed,
            options=dict(self.options.options),
        )

    async def _size(self, bench: Benchmark, size: int, folder: Path) -> SizeResult:
        outcome = SizeResult(size)
        timeout = self.options.timeout()
        logs = folder / "logs"
        children: list[Child] = []
        try:
            if bench.prepare is not None:
                prep = Child(logs / "prepare.log", timeout)
                children.append(prep)
                outcome.logs.append(str(prep.log_path))
                await prep.start()
                _verdict(
                    await prep.call(
                        {
                            "op": "prepare",
                            "ref": reference(bench.prepare),
                            "params": self._params(size, folder, folder / "prepare").to_json(),
                        }
                    ),
                    "prepare",
                )
                await prep.stop()
            sides: list[tuple[str, Any, SideResult]] = [("path", bench.path, SideResult())]
            if bench.floor is not None:
                sides.append(("floor", bench.floor, SideResult()))
            running: list[tuple[str, str, Child, SideResult]] = []
            for side, factory, figures in sides:
                child = Child(logs / f"{side}.log", timeout)
                children.append(child)
                outcome.logs.append(str(child.log_path))
                await child.start()
                running.append((side, reference(factory), child, figures))
            for number in range(1, self.options.rounds + 1):
                for side, ref, child, figures in running:
                    workdir = folder / f"{side}-{number}"
                    params = self._params(size, folder, workdir)
                    command: dict[str, Any] = {
                        "op": "round",
                        "ref": ref,
                        "params": params.to_json(),
                    }
                    profile_dir = self.options.profile_dir
                    if profile_dir is not None and side == "path":
                        profile_dir.mkdir(parents=True, exist_ok=True)
                        name = f"{bench.name}-{size}-round{number}.txt"
                        command["profile"] = str(profile_dir.resolve() / name)
                    sql_dir = self.options.sql_profile_dir
                    if sql_dir is not None and side == "path":
                        sql_dir.mkdir(parents=True, exist_ok=True)
                        name = f"{bench.name}-{size}-round{number}.sql.txt"
                        command["sql_profile"] = str(sql_dir.resolve() / name)
                    try:
                        answer = _verdict(await child.call(command), f"{side} round {number}")
                    finally:
                        shutil.rmtree(workdir, ignore_errors=True)
                    figures.rounds.append(
                        RoundFigure(
                            int(answer["items"]), float(answer["seconds"]), answer.get("notes", {})
                        )
                    )
                    figures.peak_rss_kb = max(figures.peak_rss_kb, int(answer["peak_rss_kb"]))
                    if number == 1:
                        figures.start_rss_kb = int(answer.get("rss_before_kb", 0))
                        figures.setup_rss_kb = int(answer.get("rss_setup_kb", 0))
                    self.progress(
                        f"{bench.name} [{size}] {side} round {number}: "
                        f"{figures.rounds[-1].rate:,.0f} {bench.unit}/s"
                    )
            outcome.path = sides[0][2]
            outcome.floor = sides[1][2] if len(sides) > 1 else None
            outcome.check(bench.target)
        except _Stop as stop:
            outcome.status = stop.status
            outcome.reason = stop.reason
        except ChildFailed as exc:
            outcome.status = "error"
            tails = "\n".join(_log_tail(Path(p)) for p in outcome.logs)
            outcome.reason = f"{exc}\n{tails}".rstrip()
        finally:
            for child in children:
                await child.stop()
            shutil.rmtree(folder / "data", ignore_errors=True)
        if not self.options.keep:
            outcome.logs = []
        return outcome
