"""The consent gate alone: :meth:`hub.core.gate.ConsentGate.decide`, consents in memory.

Each decision is a different question: clients cycle over a population with one consent
each (some revoked, some verbal, some excluding the partner, some minors), recipients over
the benchmark agencies, purposes over all eight, categories over four typical sets, so the
rules are exercised rather than one cached answer. The floor is a trivial dict look-up per
question — a yardstick of the machine, not something the gate could approach.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

from consent import ClientFacts, ClientRef, ConsentRecord
from consent.categories import DEFAULT_CATEGORIES, PURPOSES
from hub.bench.hubs import HOSPITAL, PARTNER, SHELTER, hub_toml, load_hub_config, write_hub
from hub.bench.model import Measured, Params
from hub.context import make_plugins
from hub.core.gate import ConsentGate

POPULATION = 1_000
"""Distinct clients the questions are about (each with one consent in memory)."""
DECIDED_AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CATEGORY_SETS = (
    DEFAULT_CATEGORIES,
    frozenset({"identity", "health"}),
    frozenset({"identity", "housing", "services"}),
    frozenset({"identity", "behavioral_health", "substance_use"}),
)
Question = tuple[tuple[ConsentRecord, ...], ClientFacts, str, str, str, frozenset[str]]


def _consent(i: int, rng: random.Random) -> ConsentRecord:
    roll = rng.random()
    return ConsentRecord(
        id=f"bench-{i}",
        client=ClientRef("urn:bench", f"C{i}"),
        signed_on=date(2025, 1, 1),
        expires_on=date(2028, 1, 1),
        method="verbal" if roll < 0.1 else "written",
        networks=frozenset({"hmis", "cie"}),
        exclude_agencies=frozenset({PARTNER}) if 0.1 <= roll < 0.15 else frozenset(),
        sensitive=frozenset({"behavioral_health"}) if roll > 0.7 else frozenset(),
        revoked_on=date(2026, 1, 1) if 0.15 <= roll < 0.2 else None,
        recorded_by=SHELTER,
    )


def questions(size: int, seed: int) -> list[Question]:
    """``size`` varied gate questions over :data:`POPULATION` clients (deterministic)."""
    rng = random.Random(seed)
    consents = [_consent(i, rng) for i in range(POPULATION)]
    facts = [
        ClientFacts(
            None if i % 7 == 0 else date(1950 + i % 70, 1 + i % 12, 1 + i % 28),
            fleeing_dv=i % 50 == 0,
        )
        for i in range(POPULATION)
    ]
    owners = (SHELTER, HOSPITAL)
    recipients = (PARTNER, HOSPITAL, SHELTER, PARTNER)
    out: list[Question] = []
    for n in range(size):
        i = n % POPULATION
        out.append(
            (
                (consents[i],),
                facts[i],
                owners[n % 2],
                recipients[(n // 2) % 4],
                PURPOSES[(n // 8) % len(PURPOSES)],
                CATEGORY_SETS[(n // 3) % len(CATEGORY_SETS)],
            )
        )
    return out


class GatePath:
    """``ConsentGate.decide`` for every question."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._gate: ConsentGate | None = None
        self._questions: list[Question] = []

    async def setup(self) -> None:
        """The gate of a benchmark hub's config (agencies, default policy); the questions."""
        plugins = make_plugins()
        config = load_hub_config(write_hub(self.params.workdir / "hub", hub_toml()), plugins)
        self._gate = ConsentGate(config.agencies, config.consent_policy, lambda v: v)
        self._questions = questions(self.params.size, self.params.seed)

    async def run(self) -> Measured:
        """Decide every question; notes count the outcomes."""
        gate = self._gate
        assert gate is not None
        outcomes: dict[str, int] = {}
        at = DECIDED_AT
        for consents, facts, owner, recipient, purpose, categories in self._questions:
            decision = gate.decide(
                consents=consents,
                facts=facts,
                owner=owner,
                recipient=recipient,
                purpose=purpose,
                categories=categories,
                at=at,
            )
            outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1
        return Measured(len(self._questions), notes=dict(outcomes))

    async def close(self) -> None:
        """Nothing to release."""


class LookupFloor:
    """One dict look-up per question (recipient, purpose) — the machine's yardstick."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._questions: list[Question] = []
        self._table: dict[tuple[str, str], str] = {}

    async def setup(self) -> None:
        """The same questions, and a table of answers by (recipient, purpose)."""
        self._questions = questions(self.params.size, self.params.seed)
        self._table = {(r, p): "permit" for r in (PARTNER, HOSPITAL, SHELTER) for p in PURPOSES}

    async def run(self) -> Measured:
        """Look every question up."""
        table = self._table
        outcomes: dict[str, int] = {}
        for _consents, _facts, _owner, recipient, purpose, _cats in self._questions:
            outcome = table[(recipient, purpose)]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return Measured(len(self._questions), notes=dict(outcomes))

    async def close(self) -> None:
        """Nothing to release."""
