"""Hubs for benchmarks: a ``hub.toml`` and a key file in a temporary directory, opened for real.

Every benchmark hub has the same agencies — a hospital (``bench-hospital``, health, CIE), a
shelter (``bench-shelter``, HMIS, both networks, HMIS organisation 1) and a CIE partner
(``bench-partner``) — plus whatever sections the benchmark adds (``[hl7]`` senders, feeds).
PostgreSQL benchmarks get a database of their own, created for the round and dropped after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from consent.parsing import parse_consent_file
from hub.bench.model import Skip
from hub.config import HubConfig, load_config
from hub.context import HubContext, make_plugins, open_context
from hub.keys import KeyRing
from hub.plugins import PluginManager

HOSPITAL = "bench-hospital"
SHELTER = "bench-shelter"
PARTNER = "bench-partner"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

AGENCIES_TOML = f"""
[[agencies]]
id = "{HOSPITAL}"
name = "Bench Hospital"
kind = "health"
networks = ["cie"]

[[agencies]]
id = "{SHELTER}"
name = "Bench Shelter"
kind = "hmis"
networks = ["hmis", "cie"]
hmis_organization_ids = ["1"]

[[agencies]]
id = "{PARTNER}"
name = "Bench Partner"
kind = "cie"
networks = ["cie"]
"""


def pg_url(options: Mapping[str, str]) -> str:
    """The PostgreSQL server to use: ``options["pg_url"]``, ``HUB_TEST_PG_URL`` or the default."""
    return options.get("pg_url") or os.environ.get("HUB_TEST_PG_URL") or DEFAULT_PG_URL


def hub_toml(store_url: str = "sqlite:///hub-data/hub.db", extra: str = "") -> str:
    """The text of a benchmark ``hub.toml``: store, keys, the agencies, and ``extra``."""
    return (
        f'[store]\nurl = "{store_url}"\n\n[keys]\nfile = "hub-data/keys.json"\n\n'
        f'[logging]\nlevel = "WARNING"\n{AGENCIES_TOML}\n{extra}\n'
    )


def write_hub(root: Path, toml_text: str) -> Path:
    """Write ``hub.toml`` and a fresh key file under ``root``; the config's path."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "hub.toml"
    path.write_text(toml_text, encoding="utf-8")
    keys = root / "hub-data" / "keys.json"
    if not keys.exists():
        KeyRing.generate().write(keys)
    return path


def load_hub_config(path: Path, plugins: PluginManager) -> HubConfig:
    """Load a config as the CLI does: plugin-owned sections validated by their hooks."""
    return load_config(
        path,
        owned_sections=plugins.owned_sections(),
        validate_section=lambda s, v, a: [
            e
            for r in plugins.hook.hub_validate_config(section=s, value=v, agencies=a)
            if r
            for e in r
        ],
    )


@asynccontextmanager
async def open_bench_hub(
    root: Path, extra_toml: str = "", *, store_url: str = "sqlite:///hub-data/hub.db"
) -> AsyncIterator[HubContext]:
    """A real hub (store migrated, keys, consents loaded) in ``root``; closed on exit."""
    plugins = make_plugins()
    config = load_hub_config(write_hub(root, hub_toml(store_url, extra_toml)), plugins)
    async with open_context(config, plugins, migrate=True) as ctx:
        yield ctx


def consent_json(refs: Iterable[tuple[str | None, str]], recorded_by: str = SHELTER) -> str:
    """A consent file (JSON array) with one full MPA consent per ``(system, value)``."""
    records: list[dict[str, Any]] = []
    for i, (system, value) in enumerate(refs):
        client: dict[str, str] = {"value": value}
        if system:
            client["system"] = system
        records.append(
            {
                "id": f"bench-mpa-{i}",
                "client": client,
                "signed_on": "2025-01-01",
                "method": "written",
                "given_by": "client",
                "networks": ["hmis", "cie"],
                "purposes": ["coordination", "referral", "treatment", "eligibility"],
                "recorded_by": recorded_by,
            }
        )
    return orjson.dumps(records).decode()


async def add_consents(
    ctx: HubContext, refs: Iterable[tuple[str | None, str]], recorded_by: str = SHELTER
) -> int:
    """Import one permitting consent per client reference (stored and loaded in the gate)."""
    records = parse_consent_file(
        consent_json(refs, recorded_by),
        agencies=ctx.config.agencies,
        policy=ctx.config.consent_policy,
    )
    return await ctx.import_consents(records)


@asynccontextmanager
async def fresh_pg_database(options: Mapping[str, str]) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the benchmark server; its URL. Dropped on exit.

    Raises :class:`Skip` when no server answers (an error instead when ``HUB_REQUIRE_PG`` is
    set, as in CI).
    """
    import asyncpg

    base = pg_url(options)
    try:
        admin = await asyncpg.connect(base, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"no PostgreSQL server at {base} ({type(exc).__name__})"
        if os.environ.get("HUB_REQUIRE_PG"):
            raise RuntimeError(f"{reason}, and HUB_REQUIRE_PG is set") from None
        raise Skip(reason) from None
    name = f"hub_bench_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.PostgresError as exc:
        await admin.close()
        raise Skip(f"cannot create a database on {base}: {type(exc).__name__}") from None
    try:
        yield urlsplit(base)._replace(path=f"/{name}").geturl()
    finally:
        with contextlib.suppress(Exception):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def settled(ctx: HubContext) -> dict[str, float]:
    """Outbox entries this process's delivery workers settled, by status (every feed), from
    the metrics they keep in memory: looking costs no query."""
    totals: dict[str, float] = {}
    for metric in ctx.metrics.records_out.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                status = sample.labels["status"]
                totals[status] = totals.get(status, 0.0) + sample.value
    return totals


FINAL_FAILURES = ("dead", "withheld")
"""Outbox statuses an entry does not leave by itself: a round that meets one cannot end."""


async def wait_delivered(
    ctx: HubContext,
    count: Callable[[], Awaitable[int]],
    expected: int,
    within: float,
    workers: asyncio.Task[None] | None = None,
) -> int:
    """Wait until ``count()`` (what the receiver holds) reaches ``expected``; that count.

    An entry settled ``retry`` is waited for: the workers send it again once its backoff
    has passed (the benchmark hubs use a short one), as they would for a partner. Fails at
    once — naming the outbox state and the first error — when an entry went to ``dead`` or
    ``withheld``: the round would never complete. Progress is read from the delivery
    workers' counters in memory (:func:`settled`), so the waiting costs the measured process
    next to nothing; the receiver (another process) is asked only once ``expected`` entries
    were settled as delivered. With ``workers`` (the task running the delivery workers), a
    worker that stopped fails the wait at once with its error.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if workers is not None and workers.done():
            workers.result()
            raise RuntimeError("the delivery workers stopped early")
        done = settled(ctx)
        if any(done.get(s) for s in FINAL_FAILURES):
            depth = await ctx.store.outbox_depth()
            stuck = [s for s in FINAL_FAILURES if depth.get(s)]
            rows = await ctx.store.list_outbox(status=stuck[0], limit=1) if stuck else []
            error = rows[0].last_error if rows else ""
            raise RuntimeError(
                f"outbox {dict(depth)} with the receiver at {await count()} of {expected}: {error}"
            )
        if done.get("delivered", 0) >= expected:
            got = await count()
            if got >= expected:
                return got
        if loop.time() > deadline:
            raise TimeoutError(f"the receiver got {await count()} of {expected} in {within:.0f} s")
        await asyncio.sleep(0.001)
