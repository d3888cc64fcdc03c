"""What a benchmark is: a measured path, the floor measured beside it, the sizes it runs at.

A :class:`Benchmark` names two *case factories* — the hub's path and its floor (the least
work that could possibly do the same job: a raw socket server with the same commit, plain
``csv.reader`` + ``executemany`` …). ``hub bench`` runs each side in a child process of its
own (so the peak memory it reports is that side's), alternating them round by round
(path, floor, path, floor …) so a noisy neighbour slows both alike, and reports the medians
and the ratio path ÷ floor.

A case is created anew for every round: ``setup`` (not timed: build a hub in a temporary
directory, start listeners, warm up), ``run`` (timed: the work, returning how many items it
did), ``close``. Factories must be module-level callables: the child process imports them by
``module:qualname``. Data is generated deterministically from ``Params.seed``; what both
sides read (an export folder, a message file) is written once per size by ``prepare`` into
``Params.data_dir``, in a process of its own so it weighs on neither side's memory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

PROFILES: tuple[str, ...] = ("tiny", "small", "medium", "large")
"""Size profiles, smallest first: ``tiny`` for the test suite, ``small`` for CI (a few
minutes on two cores), ``medium`` for a quick look at growth, ``large`` for the targets."""


class Skip(Exception):
    """Raised by ``prepare`` or a case's ``setup``: this benchmark cannot run here (say why).

    Example: no PostgreSQL server at the configured URL. The suite records the reason and
    goes on; a skipped benchmark is not a failure.
    """


@dataclass(frozen=True, slots=True)
class Params:
    """What one round of a case (or the ``prepare`` step) is given.

    ``size`` is the number of items (messages, clients, resources …); ``data_dir`` is
    shared by both sides at this size (``prepare`` writes there); ``workdir`` is this
    round's own scratch directory; ``options`` carries settings such as ``pg_url``.
    """

    size: int
    data_dir: Path
    workdir: Path
    seed: int = 20260101
    options: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (to hand the parameters to a child process)."""
        return {
            "size": self.size,
            "data_dir": str(self.data_dir),
            "workdir": str(self.workdir),
            "seed": self.seed,
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Params:
        """The inverse of :meth:`to_json`."""
        return cls(
            size=int(data["size"]),
            data_dir=Path(data["data_dir"]),
            workdir=Path(data["workdir"]),
            seed=int(data["seed"]),
            options={str(k): str(v) for k, v in dict(data.get("options", {})).items()},
        )


@dataclass(frozen=True, slots=True)
class Measured:
    """What one timed run did: ``items`` processed, and its own timing when it has one.

    ``seconds`` is None when the wall-clock time of ``run`` is right; a case whose work is
    timed elsewhere (a load generator in another process) gives its figure here.
    ``notes`` are small extra figures for the JSON (rows per file, records delivered …).
    """

    items: int
    seconds: float | None = None
    notes: Mapping[str, float | int | str] = field(default_factory=dict)


class Case(Protocol):
    """One side of a benchmark for one round: untimed setup, timed run, close."""

    async def setup(self) -> None:
        """Prepare everything that is not measured (hub, listeners, data in memory)."""
        ...

    async def run(self) -> Measured:
        """Do the measured work once and say how much was done."""
        ...

    async def close(self) -> None:
        """Release what ``setup`` acquired (servers, processes, stores)."""
        ...


CaseFactory = Callable[[Params], Case]
"""Builds a case for one round; must be importable by ``module:qualname``."""

Prepare = Callable[[Params], None]
"""Writes the data both sides read into ``params.data_dir``; same import rule."""


@dataclass(frozen=True, slots=True)
class Target:
    """What DESIGN.md asks of a path; any of the three bounds may be absent.

    ``min_rate`` in items per second, ``min_ratio`` as path rate ÷ floor rate, and
    ``max_peak_rss_mb`` for the path's child process. ``applies_at`` is the size the target
    is stated for (for the record: smaller sizes are checked too, and must do no worse).
    """

    min_rate: float | None = None
    min_ratio: float | None = None
    max_peak_rss_mb: float | None = None
    applies_at: int | None = None

    def describe(self, unit: str) -> str:
        """The target in words, e.g. ``≥ 3,000 msg/s, ≥ 35% of floor``."""
        parts: list[str] = []
        if self.min_rate is not None:
            parts.append(f"≥ {self.min_rate:,.0f} {unit}/s")
        if self.min_ratio is not None:
            parts.append(f"≥ {self.min_ratio:.0%} of floor")
        if self.max_peak_rss_mb is not None:
            parts.append(f"peak RSS < {self.max_peak_rss_mb:,.0f} MB")
        return ", ".join(parts) if parts else "—"


def reference(obj: Callable[..., Any]) -> str:
    """``module:qualname`` of a module-level callable (what a child process imports).

    Raises ``ValueError`` for a lambda, a nested function or a bound method, which a child
    could not import.
    """
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ValueError(
            f"benchmark callable {obj!r} must be a module-level function or class "
            "(the benchmark child process imports it by name)"
        )
    return f"{module}:{qualname}"


def resolve(ref: str) -> Any:
    """The object a :func:`reference` names."""
    module_name, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Benchmark:
    """One measured path, its floor, its sizes per profile and its target.

    ``name`` is dotted and stable (``hl7.mllp.1conn``): ``hub bench --only`` and the JSON use
    it. ``unit`` names one item (``msg``, ``row``, ``resource`` …); ``size_unit`` what a
    size counts when that is something else (an export of N ``clients`` has ~2.9 N rows).
    ``sizes`` maps each
    profile (see :data:`PROFILES`) to the sizes run at it: several sizes show how cost grows.
    ``floor`` may be None when nothing meaningful can be measured beside the path.
    """

    name: str
    title: str
    unit: str
    path: CaseFactory
    floor: CaseFactory | None
    floor_title: str
    sizes: Mapping[str, tuple[int, ...]]
    target: Target = field(default_factory=Target)
    prepare: Prepare | None = None
    size_unit: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"benchmark name {self.name!r}: a dotted name without spaces")
        unknown = sorted(set(self.sizes) - set(PROFILES))
        if unknown:
            raise ValueError(f"benchmark {self.name}: unknown size profile {unknown[0]!r}")
        for profile, sizes in self.sizes.items():
            if not sizes or any(s <= 0 for s in sizes):
                raise ValueError(f"benchmark {self.name}: sizes[{profile!r}] must be positive")
        for fn in (self.path, self.floor, self.prepare):
            if fn is not None:
                reference(fn)

    def sizes_for(self, profile: str) -> tuple[int, ...]:
        """The sizes to run at ``profile`` (the nearest smaller profile's when not given)."""
        if profile not in PROFILES:
            raise ValueError(f"unknown size profile {profile!r} (one of {', '.join(PROFILES)})")
        index = PROFILES.index(profile)
        for candidate in (*reversed(PROFILES[: index + 1]), *PROFILES[index + 1 :]):
            if candidate in self.sizes:
                return tuple(self.sizes[candidate])
        return ()
