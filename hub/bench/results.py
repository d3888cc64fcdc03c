"""The figures of a suite run: per side, per size, per benchmark; JSON form and statistics."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from hub.bench.model import Target


@dataclass(frozen=True, slots=True)
class RoundFigure:
    """One timed round of one side: items done, seconds taken, and extra notes."""

    items: int
    seconds: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Items per second (0 when nothing was timed)."""
        return self.items / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class SideResult:
    """Every round of one side (path or floor) at one size, and its child's memory.

    ``start_rss_kb`` is the child's resident set before the first round (interpreter and
    imports), ``setup_rss_kb`` right after the first round's untimed setup (the hub, the
    data held in memory), ``peak_rss_kb`` the high-water mark over every round.
    """

    rounds: list[RoundFigure] = field(default_factory=list)
    peak_rss_kb: int = 0
    start_rss_kb: int = 0
    setup_rss_kb: int = 0

    @property
    def rates(self) -> list[float]:
        """Items per second of each round, in run order."""
        return [r.rate for r in self.rounds]

    @property
    def median_rate(self) -> float:
        """The median rate over the rounds."""
        return statistics.median(self.rates) if self.rounds else 0.0

    @property
    def spread(self) -> float:
        """(fastest − slowest) ÷ median rate: 0.05 means the rounds lie within 5%."""
        rates = self.rates
        median = self.median_rate
        return (max(rates) - min(rates)) / median if rates and median > 0 else 0.0

    @property
    def median_seconds(self) -> float:
        """The median time of one round."""
        return statistics.median(r.seconds for r in self.rounds) if self.rounds else 0.0

    @property
    def us_per_item(self) -> float:
        """Microseconds per item at the median rate."""
        rate = self.median_rate
        return 1e6 / rate if rate > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """Figures for the JSON file."""
        return {
            "median_rate": round(self.median_rate, 3),
            "spread": round(self.spread, 4),
            "median_seconds": round(self.median_seconds, 6),
            "us_per_item": round(self.us_per_item, 3),
            "peak_rss_mb": round(self.peak_rss_kb / 1024, 1),
            "start_rss_mb": round(self.start_rss_kb / 1024, 1),
            "setup_rss_mb": round(self.setup_rss_kb / 1024, 1),
            "rounds": [
                {
                    "items": r.items,
                    "seconds": round(r.seconds, 6),
                    "rate": round(r.rate, 3),
                    **({"notes": r.notes} if r.notes else {}),
                }
                for r in self.rounds
            ],
        }


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One bound of a target checked against a measured figure."""

    what: str
    target: float
    value: float
    met: bool

    def to_json(self) -> dict[str, Any]:
        """Figures for the JSON file."""
        return {
            "what": self.what,
            "target": self.target,
            "value": round(self.value, 4),
            "met": self.met,
        }


@dataclass(slots=True)
class SizeResult:
    """A benchmark at one size: both sides, their ratio, the target checks, or why not."""

    size: int
    status: str = "ok"
    reason: str = ""
    path: SideResult | None = None
    floor: SideResult | None = None
    checks: list[TargetCheck] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """Median over rounds of path rate ÷ floor rate (rounds were run in pairs)."""
        if self.path is None or self.floor is None or not self.path.rounds:
            return None
        pairs = [
            p.rate / f.rate
            for p, f in zip(self.path.rounds, self.floor.rounds, strict=False)
            if f.rate > 0
        ]
        return statistics.median(pairs) if pairs else None

    def check(self, target: Target) -> None:
        """Fill :attr:`checks` from the measured figures."""
        self.checks = []
        if self.path is None or not self.path.rounds:
            return
        if target.min_rate is not None:
            rate = self.path.median_rate
            self.checks.append(TargetCheck("rate", target.min_rate, rate, rate >= target.min_rate))
        ratio = self.ratio
        if target.min_ratio is not None and ratio is not None:
            self.checks.append(
                TargetCheck("ratio", target.min_ratio, ratio, ratio >= target.min_ratio)
            )
        if target.max_peak_rss_mb is not None:
            peak = self.path.peak_rss_kb / 1024
            self.checks.append(
                TargetCheck(
                    "peak_rss_mb", target.max_peak_rss_mb, peak, peak < target.max_peak_rss_mb
                )
            )

    @property
    def met(self) -> bool | None:
        """Whether every checked bound holds (None when there was nothing to check)."""
        return all(c.met for c in self.checks) if self.checks else None

    def to_json(self) -> dict[str, Any]:
        """Figures for the JSON file."""
        ratio = self.ratio
        out: dict[str, Any] = {"size": self.size, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        out["path"] = self.path.to_json() if self.path else None
        out["floor"] = self.floor.to_json() if self.floor else None
        out["ratio"] = round(ratio, 4) if ratio is not None else None
        out["peak_rss_mb"] = round(self.path.peak_rss_kb / 1024, 1) if self.path else None
        out["targets"] = [c.to_json() for c in self.checks]
        out["met"] = self.met
        if self.logs:
            out["logs"] = self.logs
        return out


@dataclass(slots=True)
class BenchResult:
    """One benchmark over every size it ran at."""

    name: str
    title: str
    unit: str
    floor_title: str
    target: Target
    note: str = ""
    size_unit: str = ""
    sizes: list[SizeResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """``error`` when any size failed, else ``skipped`` when none ran, else ``ok``."""
        states = {s.status for s in self.sizes}
        if "error" in states:
            return "error"
        if "ok" in states:
            return "ok"
        return "skipped"

    def growth(self) -> dict[str, Any] | None:
        """How time per item and peak memory change from the smallest to the largest size."""
        done = [s for s in self.sizes if s.status == "ok" and s.path and s.path.rounds]
        if len(done) < 2:
            return None
        first, last = done[0], done[-1]
        assert first.path is not None and last.path is not None
        return {
            "sizes": [s.size for s in done],
            "us_per_item": [round(s.path.us_per_item, 3) for s in done if s.path],
            "peak_rss_mb": [round(s.path.peak_rss_kb / 1024, 1) for s in done if s.path],
            "setup_rss_mb": [round(s.path.setup_rss_kb / 1024, 1) for s in done if s.path],
            "cost_per_item_growth": round(last.path.us_per_item / first.path.us_per_item, 3)
            if first.path.us_per_item > 0
            else None,
            "peak_rss_growth_mb": round((last.path.peak_rss_kb - first.path.peak_rss_kb) / 1024, 1),
        }

    def to_json(self) -> dict[str, Any]:
        """Figures for the JSON file."""
        return {
            "name": self.name,
            "title": self.title,
            "unit": self.unit,
            "size_unit": self.size_unit or self.unit,
            "floor": self.floor_title,
            "target": self.target.describe(self.unit),
            "note": self.note,
            "status": self.status,
            "seconds": round(self.seconds, 1),
            "sizes": [s.to_json() for s in self.sizes],
            "growth": self.growth(),
        }


@dataclass(slots=True)
class SuiteResult:
    """A whole ``hub bench`` run: settings, the machine, every benchmark."""

    profile: str
    rounds: int
    machine: dict[str, Any]
    started: str
    seconds: float = 0.0
    benchmarks: list[BenchResult] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        """Names of benchmarks that failed (not skipped)."""
        return [b.name for b in self.benchmarks if b.status == "error"]

    def to_json(self) -> dict[str, Any]:
        """The document written to ``bench-results.json``."""
        return {
            "format": "cie-hub-bench/1",
            "profile": self.profile,
            "rounds": self.rounds,
            "started": self.started,
            "seconds": round(self.seconds, 1),
            "machine": self.machine,
            "benchmarks": [b.to_json() for b in self.benchmarks],
        }
