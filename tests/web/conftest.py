"""A real HTTP server (127.0.0.1, OS-chosen port) over a real hub, with partner keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hub.auth import new_key
from hub.context import HubContext
from hub.web import make_app


async def add_key(ctx: HubContext, agency: str, role: str = "partner") -> str:
    """Create an API key for an agency; returns the full key."""
    key, key_id, salt, digest = new_key()
    await ctx.store.add_partner_key(key_id, agency, role, salt, digest)
    return key


@pytest.fixture
def web_hub(hub_factory: Callable[..., Any]) -> Callable[..., Any]:
    """``async with web_hub(extra_toml) as (ctx, base_url, session)``."""

    @asynccontextmanager
    async def make(extra: str = "") -> AsyncIterator[tuple[HubContext, str, aiohttp.ClientSession]]:
        async with hub_factory(extra) as ctx:
            server = TestServer(make_app(ctx), host="127.0.0.1", port=0)
            await server.start_server()
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                try:
                    yield ctx, str(server.make_url("")).rstrip("/"), session
                finally:
                    await server.close()

    return make


@pytest.fixture
def make_key() -> Callable[..., Any]:
    """``await make_key(ctx, agency, role="partner")`` → a new bearer key."""
    return add_key
