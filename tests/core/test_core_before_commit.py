"""``Engine.ingest(..., before_commit=)``: a check awaited last in the transaction; what it
raises rolls back the records, their outbox entries and their audit entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hub.core.engine import IngestRequest
from hub.synthetic import client
from tests.core.test_core_gate_flow import FEEDS, audit_entries, consents, mpa


class CheckFailed(Exception):
    pass


async def test_a_failing_check_stores_nothing(hub_factory: Callable[..., Any]) -> None:
    async with hub_factory(FEEDS) as ctx:
        await consents(ctx, mpa("m1", "1"))
        seen: list[int] = []

        async def check() -> None:
            seen.append(1)
            raise CheckFailed("bundle invalid")

        with pytest.raises(CheckFailed):
            await ctx.engine.ingest([client("1")], before_commit=check)
        assert seen == [1]
        assert (await ctx.store.count_records()).get("client", 0) == 0
        assert await ctx.store.list_outbox() == []
        assert await audit_entries(ctx) == []

        async def passes() -> None:
            seen.append(2)

        result = await ctx.engine.ingest([client("1")], before_commit=passes)
        assert seen == [1, 2] and result.enqueued == 1
        assert (await ctx.store.count_records())["client"] == 1
        assert len(await audit_entries(ctx)) == 1


async def test_in_a_group_only_the_failing_request_is_rolled_back(
    hub_factory: Callable[..., Any],
) -> None:
    async with hub_factory(FEEDS) as ctx:
        await consents(ctx, mpa("m1", "1"), mpa("m2", "2"))

        async def fails() -> None:
            raise CheckFailed("second request's check")

        results = await ctx.engine.ingest_many(
            [IngestRequest([client("1")]), IngestRequest([client("2")], before_commit=fails)]
        )
        assert not isinstance(results[0], Exception) and results[0].enqueued == 1
        assert isinstance(results[1], CheckFailed)
        stored = [r async for batch in ctx.store.iter_records("client") for r in batch]
        assert [r.source_id for r in stored] == ["1"]
        assert len(await ctx.store.list_outbox()) == 1
