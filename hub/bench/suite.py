"""The suite: the hub's own benchmarks and those plugins return from ``hub_benchmarks``.

The hub's own: the consent gate, outbound delivery, outbox claims with a backlog held back,
and end to end (HL7 in, FHIR out).
Plugins measure their hot paths (``plugins/hl7/bench.py`` …). Names must be unique.
"""

from __future__ import annotations

from hub.bench import delivery_cases, e2e_cases, gate_cases, outbox_cases
from hub.bench.model import Benchmark, Target
from hub.plugins import PluginManager


class DuplicateBenchmark(ValueError):
    """Two benchmarks share a name."""


def builtin_benchmarks() -> list[Benchmark]:
    """The benchmarks of the hub itself (not of one plugin)."""
    return [
        Benchmark(
            name="gate.decide",
            title="Consent gate decisions (gate only, consents in memory)",
            unit="decision",
            path=gate_cases.GatePath,
            floor=gate_cases.LookupFloor,
            floor_title="one dict look-up per question (a yardstick, not a goal)",
            sizes={"tiny": (5_000,), "small": (100_000,), "large": (1_000_000,)},
            target=Target(min_rate=100_000),
        ),
        Benchmark(
            name="delivery.webhook",
            title="Outbound delivery to a loopback HTTP receiver (outbox, gate, webhook)",
            unit="record",
            path=delivery_cases.path,
            floor=delivery_cases.floor,
            floor_title="the same aiohttp client posting the same bodies, 32 in flight",
            prepare=delivery_cases.prepare_outbox,
            sizes={"tiny": (100,), "small": (1_000,), "medium": (10_000,), "large": (50_000,)},
            target=Target(min_ratio=0.5),
        ),
        Benchmark(
            name="delivery.claims.held_back",
            title="Outbox claims with entries held back behind a receiver that is down",
            unit="entry",
            path=outbox_cases.ClaimPath,
            floor=outbox_cases.ClaimFloor,
            floor_title="the same claims with nothing held back",
            sizes={"tiny": (1_000,), "small": (10_000, 100_000), "large": (1_000_000,)},
            size_unit="held back",
            note="2,000 due entries claimed 50 at a time; 100% if held-back ones cost nothing",
        ),
        Benchmark(
            name="delivery.claims.busy_feed",
            title="Outbox claims passing by a hanging partner's feed of due entries",
            unit="entry",
            path=outbox_cases.BusyFeedClaimPath,
            floor=outbox_cases.BusyFeedClaimFloor,
            floor_title="the same claims with nothing else in the outbox",
            sizes={"tiny": (1_000,), "small": (10_000, 100_000), "large": (1_000_000,)},
            size_unit="due, skipped",
            note="2,000 due entries claimed 50 at a time; 100% if the skipped ones cost nothing",
        ),
        Benchmark(
            name="e2e.hl7_to_fhir",
            title="End to end: HL7 ADT in over MLLP → FHIR Patient pushed to a receiver",
            unit="msg",
            path=e2e_cases.path,
            floor=e2e_cases.floor,
            floor_title="the HL7 floor (raw MLLP + 1 SQLite commit per message)",
            prepare=e2e_cases.prepare_messages,
            sizes={"tiny": (50,), "small": (500,), "medium": (3_000,), "large": (10_000,)},
            note="time until the receiver holds every Patient; 1 connection",
        ),
    ]


def collect_benchmarks(plugins: PluginManager) -> list[Benchmark]:
    """The hub's benchmarks, then every plugin's (``hub_benchmarks``), in a stable order."""
    found = builtin_benchmarks()
    for result in plugins.hook.hub_benchmarks():
        found.extend(result or [])
    seen: dict[str, Benchmark] = {}
    for bench in found:
        other = seen.get(bench.name)
        if other is not None and other != bench:
            raise DuplicateBenchmark(f"two benchmarks are named {bench.name!r}")
        seen[bench.name] = bench
    builtin = [b.name for b in builtin_benchmarks()]
    plugin_names = sorted(n for n in seen if n not in builtin)
    return [seen[n] for n in (*plugin_names, *builtin)]
