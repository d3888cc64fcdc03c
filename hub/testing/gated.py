"""A real hub in a folder with one feed on the sink under test: what passes the gate arrives.

:func:`run_gated_hub` writes ``hub.toml`` and a key file, opens the hub (SQLite in the
folder), imports MPA consents for some fixture clients, ingests the fixture records through
the engine (identity, storage, routing, the consent gate, the outbox — all real), then runs
``hub.delivery.DeliveryWorker.run_once`` until the outbox is idle. The sink under test is the
feed's only sink; nothing is mocked between the ingest and the sink.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.core.ports import Sink
from hub.core.records import Record
from hub.core.routing import FeedSpec
from hub.testing import fixtures
from hub.testing.receivers import Receiver

FEED = "kit-feed"
"""The name of the gated hub's feed."""
WORKER = "kit-worker"

CONFIG = """\
[store]
url = "sqlite:///hub-data/hub.db"

[keys]
file = "hub-data/keys.json"

[delivery]
workers = 1
batch_size = 50
max_attempts = 3
backoff_base_seconds = 30.0
backoff_max_seconds = 60.0
lease_seconds = 60.0
poll_seconds = 0.05

[[agencies]]
id = "{owner}"
name = "Kit Shelter"
kind = "hmis"
networks = ["hmis", "cie"]

[[agencies]]
id = "{vsp}"
name = "Kit Safe Haven"
kind = "vsp"
networks = ["hmis"]

[[agencies]]
id = "{recipient}"
name = "Kit Partner"
kind = "cie"
networks = ["cie"]
"""


@dataclass
class GatedRun:
    """What one gated run did: outbox entries by status and what reached the receiver."""

    kinds: frozenset[str]
    ingested: list[Record]
    statuses: dict[tuple[str, str], str] = field(default_factory=dict)
    """Outbox status per (record kind, record id) the engine queued for the feed."""
    arrived: list[bytes] = field(default_factory=list)
    """What the receiver holds afterwards (empty when no receiver was given)."""
    rounds: int = 0

    def permitted(self) -> list[Record]:
        """Ingested records of the feed's kinds about clients the gate may release."""
        return [
            r
            for r in self.ingested
            if r.meta.kind in self.kinds and fixtures.about(r) in fixtures.GATE_PERMITTED
        ]

    def refused(self) -> list[Record]:
        """Ingested records of the feed's kinds that must never reach the sink."""
        return [
            r
            for r in self.ingested
            if r.meta.kind in self.kinds and fixtures.about(r) not in fixtures.GATE_PERMITTED
        ]

    def delivered(self) -> set[tuple[str, str]]:
        """(kind, id) of every entry the sink delivered."""
        return {k for k, status in self.statuses.items() if status == "delivered"}


def write_config(folder: Path) -> Path:
    """Write the gated hub's ``hub.toml`` and key file into ``folder``; returns the config."""
    from hub.keys import KeyRing

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hub.toml"
    path.write_text(
        CONFIG.format(owner=fixtures.OWNER, vsp=fixtures.VSP_OWNER, recipient=fixtures.RECIPIENT),
        encoding="utf-8",
    )
    keys = folder / "hub-data" / "keys.json"
    if not keys.exists():
        KeyRing.generate().write(keys)
    return path


def records_for(kinds: Iterable[str]) -> list[Record]:
    """Every fixture client (so other records link to persons), then the kinds asked for."""
    wanted = set(kinds) - {"client"}
    return [*fixtures.CLIENTS, *fixtures.records_of(wanted)]


async def run_gated_hub(
    folder: Path,
    sink: Sink,
    options: Mapping[str, Any],
    *,
    kinds: Sequence[str] = ("client",),
    receiver: Receiver | None = None,
    consented: Iterable[str] = fixtures.GATE_CONSENTED,
    timeout_seconds: float = 60.0,
) -> GatedRun:
    """Run the fixture records through a real hub whose one feed delivers through ``sink``.

    The feed sends ``kinds`` to :data:`hub.testing.fixtures.RECIPIENT` for coordination with
    ``options`` as its feed options. Consents exist for ``consented`` clients only. The sink
    is not closed here (the caller owns it).
    """
    from consent.parsing import parse_consent_file
    from hub.config import load_config
    from hub.context import make_plugins, open_context
    from hub.delivery import DeliveryWorker

    config = load_config(write_config(folder))
    feed = FeedSpec(
        name=FEED,
        recipient=fixtures.RECIPIENT,
        kinds=frozenset(kinds),
        purpose="coordination",
        connector=sink.name,
        options=dict(options),
    )
    config = dataclasses.replace(config, feeds=(feed,))
    run = GatedRun(kinds=frozenset(kinds), ingested=records_for(kinds))
    async with asyncio.timeout(timeout_seconds):
        async with open_context(config, make_plugins(config), migrate=True) as ctx:
            text = json.dumps(fixtures.consents(consented))
            await ctx.import_consents(
                parse_consent_file(
                    text, agencies=ctx.config.agencies, policy=ctx.config.consent_policy
                )
            )
            await ctx.engine.ingest(run.ingested)
            worker = DeliveryWorker(ctx, {sink.name: sink}, WORKER)
            while await worker.run_once():
                run.rounds += 1
                if run.rounds > 100:
                    raise AssertionError("the delivery worker never went idle")
            for row in await ctx.store.list_outbox(limit=10_000):
                run.statuses[(row.record_kind, row.record_source_id)] = row.status
    if receiver is not None:
        run.arrived = receiver.bodies()
    return run
