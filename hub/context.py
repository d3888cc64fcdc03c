"""The composition root: builds the store, keys, gate, engine and plugins from the config."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from consent import ConsentRecord
from hub.config import HubConfig
from hub.core.engine import Engine
from hub.core.gate import ConsentGate
from hub.core.identity import identifier_key, identifier_value_key
from hub.keys import KeyRing, load_keyring
from hub.metrics import Metrics
from hub.plugins import PluginManager
from hub.store import SqlStore, open_store_from_url

log = logging.getLogger("hub")

DEFAULT_KEYS_FILE = "hub-data/keys.json"


class ConsentImportError(ValueError):
    """A consent file could not be imported (nothing of it was)."""


@dataclass
class HubContext:
    """Everything a running hub holds; plugins receive it in their hooks."""

    config: HubConfig
    plugins: PluginManager
    store: SqlStore
    keys: KeyRing
    gate: ConsentGate
    engine: Engine
    metrics: Metrics
    extras: dict[str, Any] = field(default_factory=dict)

    async def import_consents(self, records: Sequence[ConsentRecord]) -> int:
        """Store consents (all or nothing) and make the gate use them at once.

        A consent naming its client by value alone must match at most one person.
        """
        async with self.store.transaction() as tx:
            for c in records:
                if c.client.system is None:
                    found = await tx.persons_with_keys(
                        [self.keys.blind(identifier_value_key(c.client.value))]
                    )
                    persons = sorted(set().union(*found.values())) if found else []
                    if len(persons) > 1:
                        raise ConsentImportError(
                            f"consent {c.id}: field 'client.value' is ambiguous: it identifies "
                            f"persons {persons[0]} and {persons[1]}; add client.system"
                        )
            generation = await tx.put_consents(
                [
                    (
                        c.id,
                        c.client.system,
                        self.keys.blind(
                            identifier_key(c.client.system, c.client.value)
                            if c.client.system
                            else identifier_value_key(c.client.value)
                        ),
                        orjson.dumps(c.to_json()),
                    )
                    for c in records
                ]
            )
        self.gate.consents_written(records, generation)
        return len(records)

    async def reload_consents(self) -> int:
        """Load the stored consents the gate does not hold yet (all of them at start-up);
        returns how many. The gate also does this by itself in every transaction that
        decides, so consents written by other processes take effect at once."""
        async with self.store.transaction() as tx:
            return await self.gate.refresh(tx)


def keys_path(config: HubConfig) -> Path:
    """The key file the config names, or the default beside the config."""
    return config.keys_file or config.resolve(DEFAULT_KEYS_FILE)


def make_plugins(config: HubConfig | None = None) -> PluginManager:
    """A plugin manager with every installed plugin loaded (minus disabled ones)."""
    from hub import __version__
    from hub.sinks import plugin as builtin_sinks

    pm = PluginManager()
    pm.register(builtin_sinks, name="hub", version=__version__)
    pm.load_entry_points(config.disabled_plugins if config else frozenset())
    return pm


@asynccontextmanager
async def open_context(
    config: HubConfig, plugins: PluginManager, *, migrate: bool = False
) -> AsyncIterator[HubContext]:
    """Open the store (migrating it if asked), load keys and consents; close on exit."""
    store = open_store_from_url(config.store_url, config.base_dir)
    await store.open()
    try:
        if migrate:
            await store.migrate()
        await store.check_schema()
        keys = load_keyring(keys_path(config))
        store.cipher = keys.cipher()
        metrics = Metrics()
        # Label look-ups cost more than the increment: keep each labelled child once.
        decided = functools.cache(metrics.decisions.labels)
        records_in = functools.cache(metrics.records_in.labels)
        gate = ConsentGate(
            config.agencies,
            config.consent_policy,
            keys.blind,
            on_decision=lambda outcome: decided(outcome).inc(),
        )
        engine = Engine(
            store,
            gate,
            keys.blind,
            config.feeds,
            on_ingest=lambda kind, outcome: records_in(kind, outcome).inc(),
        )
        ctx = HubContext(config, plugins, store, keys, gate, engine, metrics)
        await ctx.reload_consents()
        yield ctx
    finally:
        await store.close()
