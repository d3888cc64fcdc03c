"""Fixtures for the delivery tests: a real hub in tmp_path, a loopback receiver, records.

Everything listens on 127.0.0.1 with an OS-chosen port; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from consent.parsing import parse_consent_file
from hub.config import HubConfig, load_config
from hub.context import HubContext, make_plugins, open_context
from hub.core.records import Client, Identifier, Provenance, RecordMeta, SourceKey
from hub.keys import KeyRing

SECRET_ENV = "HUB_TEST_HOOK_SECRET"
SECRET = "s3cret-for-tests"
PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

AGENCIES = """
[[agencies]]
id = "shelter"
kind = "hmis"
networks = ["hmis", "cie"]

[[agencies]]
id = "partner"
kind = "cie"
networks = ["cie"]

[[agencies]]
id = "clinic"
kind = "health"
networks = ["cie"]
"""


def webhook_feed(name: str, recipient: str, url: str, **extra: Any) -> str:
    """A [[feeds]] table for a webhook feed of client records."""
    options = {
        "url": url,
        "secret_envs": [SECRET_ENV],
        "timeout_seconds": 2,
        **extra.pop("options", {}),
    }
    lines = [
        "[[feeds]]",
        f'name = "{name}"',
        f'recipient = "{recipient}"',
        f"kinds = {json.dumps(extra.pop('kinds', ['client']))}",
        'purpose = "coordination"',
        f'connector = "{extra.pop("connector", "webhook")}"',
    ]
    for key, value in extra.items():
        lines.append(f"{key} = {json.dumps(value)}")
    lines.append("[feeds.options]")
    for key, value in options.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@dataclass
class HubFactory:
    """Writes hub.toml + keys in a folder and opens contexts on it."""

    root: Path
    store_url: str = ""

    def write(self, feeds: str = "", extra: str = "", **delivery: Any) -> Path:
        """Write the config (SQLite in the folder unless a store URL was set)."""
        settings = {
            "workers": 1,
            "batch_size": 50,
            "backoff_base_seconds": 0.05,
            "backoff_max_seconds": 0.2,
            "lease_seconds": 30.0,
            "poll_seconds": 0.02,
            "feed_settle_seconds": 0.0,
            **delivery,
        }
        store = self.store_url or "sqlite:///hub-data/hub.db"
        text = f'[store]\nurl = "{store}"\n\n[delivery]\n'
        text += "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
        text += AGENCIES + "\n" + feeds + "\n" + extra
        path = self.root / "hub.toml"
        path.write_text(text, encoding="utf-8")
        keys = self.root / "hub-data" / "keys.json"
        if not keys.exists():
            KeyRing.generate().write(keys)
        return path

    def config(self) -> HubConfig:
        """The config as written (validated with every installed plugin)."""
        pm = make_plugins()
        return load_config(
            self.root / "hub.toml",
            owned_sections=pm.owned_sections(),
            validate_section=lambda s, v, a: [
                e
                for r in pm.hook.hub_validate_config(section=s, value=v, agencies=a)
                if r
                for e in r
            ],
        )

    @asynccontextmanager
    async def open(self) -> AsyncIterator[HubContext]:
        """An open hub on the written config."""
        cfg = self.config()
        async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
            yield ctx


def client(value: str, owner: str = "shelter", version: str = "2025-01-01T00:00:00") -> Client:
    """A client record with a distinct HMIS id (no name: nothing links two of them)."""
    return Client(
        meta=RecordMeta(
            "client",
            SourceKey("hmis:1", value),
            owner,
            Provenance("test", datetime.now(UTC), "0" * 64),
            version,
        ),
        identifiers=(Identifier("urn:hmis", value, "PI"),),
        birth_date=date(1980, 1, 1),
        sex="Female",
        veteran_status="0",
    )


def consent_json(value: str, **overrides: Any) -> dict[str, Any]:
    """An MPA consent for a client (cie + hmis networks, default purposes)."""
    return {
        "id": f"mpa-{value}",
        "client": {"system": "urn:hmis", "value": value},
        "signed_on": "2025-01-01",
        **overrides,
    }


async def add_clients(ctx: HubContext, values: list[str], *, consent: bool = True) -> None:
    """Ingest clients (consents first, so the engine queues them at once)."""
    if consent:
        text = json.dumps([consent_json(v) for v in values])
        await ctx.import_consents(
            parse_consent_file(text, agencies=ctx.config.agencies, policy=ctx.config.consent_policy)
        )
    await ctx.engine.ingest([client(v) for v in values])


@dataclass
class Seen:
    """One request the receiver got."""

    key: str
    body: bytes
    headers: dict[str, str]
    status: int = 0

    @property
    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """A loopback HTTP receiver; ``behaviour`` picks the answer for each request."""

    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    behaviour: Callable[
        [Seen], Awaitable[tuple[int, dict[str, str]]] | tuple[int, dict[str, str]]
    ] = lambda _s: (200, {})

    def delivered_keys(self) -> list[str]:
        """Idempotency keys answered 2xx, in order (duplicates kept)."""
        return [s.key for s in self.requests if 200 <= s.status < 300]

    async def handle(self, request: web.Request) -> web.Response:
        seen = Seen(
            request.headers.get("Idempotency-Key", ""), await request.read(), dict(request.headers)
        )
        answer = self.behaviour(seen)
        if not isinstance(answer, tuple):
            answer = await answer
        seen.status, headers = answer
        self.requests.append(seen)
        return web.Response(status=seen.status, headers=headers)


@asynccontextmanager
async def serve_receiver() -> AsyncIterator[Receiver]:
    """Start a :class:`Receiver` on 127.0.0.1, port chosen by the OS."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.url = f"http://{host}:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def wait_until(cond: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    """Poll a condition (sync or async) until true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
def _hook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store: "" (SQLite in the hub folder) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return ""
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def hub(tmp_path: Path) -> HubFactory:
    """A hub factory in a fresh folder (SQLite)."""
    return HubFactory(tmp_path)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running loopback receiver."""
    async with serve_receiver() as r:
        yield r


@dataclass
class Helpers:
    """Module-level helpers handed to tests (tests cannot import conftest)."""

    client: Callable[..., Client] = client
    consent_json: Callable[..., dict[str, Any]] = consent_json
    add_clients: Callable[..., Awaitable[None]] = add_clients
    wait_until: Callable[..., Awaitable[None]] = wait_until
    webhook_feed: Callable[..., str] = webhook_feed
    serve_receiver: Callable[[], Any] = serve_receiver
    secret: str = SECRET
    secret_env: str = SECRET_ENV


@pytest.fixture
def h() -> Helpers:
    """The helpers."""
    return Helpers()


async def _pg_reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, uniquely named PostgreSQL database (dropped afterwards)."""
    if not await _pg_reachable(PG_URL):
        if os.environ.get("HUB_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable at {PG_URL.split('@')[-1]}")
        pytest.skip("PostgreSQL unreachable (set HUB_TEST_PG_URL)")
    name = f"hub_dlv_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _db = PG_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_URL, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
