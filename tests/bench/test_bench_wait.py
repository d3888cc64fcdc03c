"""The delivery benchmarks' wait: a retried entry is waited for, a dead one ends the round.

A real bench hub, its delivery workers and a receiver on a loopback socket that fails the
first requests it gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from hub.bench.data import HMIS_SOURCE, clients
from hub.bench.delivery_cases import SECRET_ENV, delivery_toml
from hub.bench.hubs import SHELTER, add_consents, open_bench_hub, settled, wait_delivered
from hub.delivery import collect_sinks, run_workers

RECORDS = 12


@asynccontextmanager
async def failing_receiver(status: int, failures: int) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback receiver answering ``status`` to its first ``failures`` posts, then 200;
    yields its URL and the bodies it accepted."""
    accepted: list[bytes] = []
    failed = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal failed
        body = await request.read()
        if failed < failures:
            failed += 1
            return web.Response(status=status)
        accepted.append(body)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook", accepted
    finally:
        await runner.cleanup()


async def _deliver(root: Path, url: str, accepted: list[bytes]) -> tuple[int, dict[str, float]]:
    """Queue RECORDS permitted records, run the workers, wait as the benchmark does."""
    async with open_bench_hub(root, delivery_toml(url)) as ctx:
        records = clients(RECORDS, 7, SHELTER)
        await add_consents(ctx, [(HMIS_SOURCE, r.meta.key.id) for r in records])
        await ctx.engine.ingest(records)
        sinks = collect_sinks(ctx)
        stop = asyncio.Event()
        task = asyncio.create_task(run_workers(ctx, stop, with_scheduler=False, sinks=sinks))

        async def count() -> int:
            return len(accepted)

        try:
            got = await wait_delivered(ctx, count, RECORDS, 30.0, task)
        finally:
            stop.set()
            await task
            for sink in sinks.values():
                await sink.close()
        return got, settled(ctx)


async def test_a_retried_delivery_is_waited_for_until_it_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "test-secret")
    async with failing_receiver(503, failures=3) as (url, accepted):
        got, totals = await _deliver(tmp_path / "hub", url, accepted)
    assert got == RECORDS
    assert totals["retry"] == 3
    assert totals["delivered"] == RECORDS


async def test_a_dead_letter_ends_the_wait_naming_the_outbox_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "test-secret")
    async with failing_receiver(400, failures=1) as (url, accepted):
        with pytest.raises(RuntimeError, match=r"'dead': 1.*HTTP 400"):
            await _deliver(tmp_path / "hub", url, accepted)
