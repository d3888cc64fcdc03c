"""The composition root: builds the store, keys, gate, engine and plugins from the config."""

from __future__ import annotations

import dataclasses
import functools
import logging
import tomllib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from consent import ConsentRecord
from hub.config import HubConfig
from hub.core.engine import Engine
from hub.core.gate import ConsentGate
from hub.core.identity import BlindIndex, identifier_key, identifier_value_key
from hub.core.ports import Transaction
from hub.keys import IndexKeyMismatch, KeyRing, load_keyring
from hub.metrics import Metrics
from hub.plugins import PluginManager
from hub.store import SqlStore, open_store_from_url

log = logging.getLogger("hub")

DEFAULT_KEYS_FILE = "hub-data/keys.json"


class ConsentImportError(ValueError):
    """A consent file could not be imported (nothing of it was)."""


def consent_client_value(consent: ConsentRecord, blind: BlindIndex) -> str:
    """The blinded client identifier a consent is stored with (``consents.client_value``):
    of the system and value, or of the value alone when the consent names no system."""
    ref = consent.client
    if ref.system:
        return blind(identifier_key(ref.system, ref.value))
    return blind(identifier_value_key(ref.value))


def _keeping_revocation(imported: ConsentRecord, stored: ConsentRecord | None) -> ConsentRecord:
    """``imported``, with the stored revocation date when that is earlier and the imported
    record was not signed after it (a new signature under the same id replaces it)."""
    if stored is None or stored.revoked_on is None:
        return imported
    kept = stored.revoked_on
    if imported.signed_on > kept:
        return imported
    if imported.revoked_on is not None and imported.revoked_on <= kept:
        return imported
    log.warning(
        "a consent imported again keeps its stored revocation",
        extra={"consent_id": imported.id, "revoked_on": kept.isoformat()},
    )
    return dataclasses.replace(imported, revoked_on=kept)


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

        A consent naming its client by value alone must match at most one person. A stored
        revocation stands: a consent imported again without it (an old roster re-sent), or
        with a later date, keeps the stored date, unless the record imported was signed
        after that revocation (a new signature under the same id: rule 4, the newer
        replaces the older).
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
            stored = await self._stored_consents(tx, [c.id for c in records])
            records = [_keeping_revocation(c, stored.get(c.id)) for c in records]
            generation = await self._put_consents(tx, records)
        self.gate.consents_written(records, generation)
        return len(records)

    async def revoke_consent(self, consent_id: str, day: date) -> tuple[date, bool] | None:
        """Record that a consent was revoked on ``day``; None when no such consent exists.

        Returns the revocation date in force afterwards and whether this call recorded it:
        a revocation only stands or moves earlier, so a consent already revoked on or before
        ``day`` keeps its date. Raises :class:`ConsentImportError` when ``day`` is before the
        consent was signed. Read and written in one transaction, so a revocation racing
        another writer (an import, another revocation) is not lost.
        """
        async with self.store.transaction() as tx:
            current = (await self._stored_consents(tx, [consent_id])).get(consent_id)
            if current is None:
                return None
            if current.revoked_on is not None and current.revoked_on <= day:
                return current.revoked_on, False
            if day < current.signed_on:
                raise ConsentImportError(
                    f"consent {consent_id}: the revocation date is before it was signed"
                )
            revoked = dataclasses.replace(current, revoked_on=day)
            generation = await self._put_consents(tx, [revoked])
        self.gate.consents_written([revoked], generation)
        return day, True

    async def _stored_consents(
        self, tx: Transaction, consent_ids: Sequence[str]
    ) -> dict[str, ConsentRecord]:
        """The stored consents with these ids, locked until the transaction ends."""
        bodies = await tx.stored_consents(consent_ids)
        return {c.id: c for c in map(self.gate.parse_stored, bodies)}

    async def _put_consents(self, tx: Transaction, records: Sequence[ConsentRecord]) -> int:
        return await tx.put_consents(
            [
                (
                    c.id,
                    c.client.system,
                    consent_client_value(c, self.keys.blind),
                    orjson.dumps(c.to_json()),
                )
                for c in records
            ]
        )

    async def reload_consents(self) -> int:
        """Load the stored consents the gate does not hold yet (all of them at start-up);
        returns how many. The gate also does this by itself in every transaction that
        decides, so consents written by other processes take effect at once."""
        async with self.store.transaction() as tx:
            return await self.gate.refresh(tx)


def keys_path(config: HubConfig) -> Path:
    """The key file the config names, or the default beside the config."""
    return config.keys_file or config.resolve(DEFAULT_KEYS_FILE)


def make_plugins(
    config: HubConfig | None = None, *, disabled: frozenset[str] | None = None
) -> PluginManager:
    """A plugin manager with every installed plugin loaded, minus the disabled ones (those
    of ``config``, or ``disabled`` as read by :func:`disabled_plugins_in`)."""
    from hub import __version__
    from hub.sinks import plugin as builtin_sinks

    if disabled is None:
        disabled = config.disabled_plugins if config else frozenset()
    pm = PluginManager()
    pm.register(builtin_sinks, name="hub", version=__version__)
    pm.load_entry_points(disabled)
    return pm


def disabled_plugins_in(config_path: Path) -> frozenset[str]:
    """``[plugins] disabled`` of a config file, read before any plugin is loaded (the
    config itself is validated with the plugins' help: a disabled plugin that cannot even
    be imported must not be loaded for that). Empty when the file is missing or does not
    say; a malformed file is reported by the full load that follows."""
    try:
        with config_path.open("rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return frozenset()
    section = raw.get("plugins")
    names = section.get("disabled") if isinstance(section, dict) else None
    if not isinstance(names, list):
        return frozenset()
    return frozenset(n for n in names if isinstance(n, str))


def keys_origin(keys: KeyRing) -> str:
    """Where a key ring came from, for messages: its key file, or ``$HUB_KEYS``."""
    return "$HUB_KEYS" if keys.source is None else str(keys.source)


async def checked_keys(store: SqlStore, keys: KeyRing) -> KeyRing:
    """``keys``, once the store is known to have been built with their blind-index key.

    The store keeps the key's check value (recording it at its first open). A key ring
    whose *pending* key has that check value is from a ``hub keys rotate-index`` that
    committed the store and died before it promoted the key in the key file: the key is
    promoted here. Any other key raises :class:`IndexKeyMismatch` (naming the key file,
    never a key): with it the hub would match no one already stored.
    """
    recorded = await store.index_key_check(keys.index_check)
    if recorded == keys.index_check:
        return keys
    if recorded == keys.pending_index_check:
        return _finish_interrupted_rotation(keys)
    raise IndexKeyMismatch(
        f"{keys_origin(keys)}: the blind-index key (check value {keys.index_check}) is not "
        f"the one this store was built with (check value {recorded}): with it no arriving "
        "client would match anyone stored and no stored consent would apply. Use the key "
        "file this store was built with (a restored backup of keys and store must be of "
        "the same hub); if 'hub keys rotate-index' was interrupted, run it again with the "
        "key file it was writing."
    )


def _finish_interrupted_rotation(keys: KeyRing) -> KeyRing:
    """Promote the pending blind-index key the store was already re-keyed to, in the key
    file (or refuse: the pending key is in ``$HUB_KEYS``, which the hub cannot rewrite)."""
    if keys.source is None:
        raise IndexKeyMismatch(
            "$HUB_KEYS: this store was re-keyed to its pending_index_key by 'hub keys "
            "rotate-index', which stopped before making it the index_key: put the key file "
            "the rotation wrote in $HUB_KEYS, or move pending_index_key to index_key there"
        )
    promoted = keys.promoted()
    promoted.write(keys.source)
    log.warning(
        "an interrupted blind-index key rotation was completed: the key file's pending key "
        "is now its index key",
        extra={"key_file": str(keys.source), "index_key_check": promoted.index_check},
    )
    return promoted


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
        keys = await checked_keys(store, load_keyring(keys_path(config)))
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
