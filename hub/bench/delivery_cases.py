"""Outbound delivery of N permitted records to a loopback HTTP receiver.

``prepare`` builds a hub once per size: a ``webhook`` feed to ``bench-partner``, a consent
per client, N Client records ingested (so the outbox holds N permitted entries), and the
bodies the sink will post. Each round of the path copies that hub, points the feed at a
fresh receiver (another process) and times the delivery workers (``run_workers``: claim,
the gate again at send time with its audit entry, signing, POST, settle) until every entry
is delivered. The floor posts the same bodies with the same aiohttp client and the same
number of requests in flight, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from typing import Any

import orjson

from hub.bench.data import HMIS_SOURCE, clients
from hub.bench.floors import HttpPostFloor
from hub.bench.hubs import (
    PARTNER,
    SHELTER,
    add_consents,
    open_bench_hub,
    settled,
    wait_delivered,
)
from hub.bench.model import Measured, Params
from hub.bench.procs import Receiver

SECRET_ENV = "HUB_BENCH_WEBHOOK_SECRET"
HUB_DIR = "hub"
BODIES_FILE = "bodies.jsonl"
LANES = 2
PER_LANE = 16
IN_FLIGHT = LANES * PER_LANE
"""Requests in flight: the feed's ``concurrency`` lanes × the sink's ``max_in_flight``."""
INGEST_CHUNK = 1_000
WAIT_TIMEOUT = 3_600.0


def delivery_toml(url: str) -> str:
    """``[delivery]`` tuned for throughput and a webhook feed to ``url``."""
    return f"""
[delivery]
batch_size = 500
poll_seconds = 0.01
backoff_base_seconds = 0.05
backoff_max_seconds = 0.5

[[feeds]]
name = "bench-webhook"
recipient = "{PARTNER}"
kinds = ["client"]
purpose = "coordination"
connector = "webhook"
batch_size = 500
[feeds.options]
url = "{url}"
secret_envs = ["{SECRET_ENV}"]
concurrency = {LANES}
max_in_flight = {PER_LANE}
"""


def _secret() -> None:
    os.environ.setdefault(SECRET_ENV, "bench-only-secret")


async def _build(params: Params) -> None:
    _secret()
    root = params.data_dir / HUB_DIR
    async with open_bench_hub(root, delivery_toml("http://127.0.0.1:9/hook")) as ctx:
        records = clients(params.size, params.seed, SHELTER)
        await add_consents(ctx, [(HMIS_SOURCE, r.meta.key.id) for r in records])
        for start in range(0, len(records), INGEST_CHUNK):
            await ctx.engine.ingest(records[start : start + INGEST_CHUNK])
        rows = await ctx.store.list_outbox(limit=params.size + 1)
        if len(rows) != params.size:
            raise RuntimeError(f"{len(rows)} of {params.size} records were queued")
        with (params.data_dir / BODIES_FILE).open("wb") as out:
            for r in rows:
                body = {
                    "idempotency_key": r.idempotency_key,
                    "feed": r.feed,
                    "recipient": r.recipient,
                    "kind": r.record_kind,
                    "record": orjson.loads(r.payload),
                }
                out.write(orjson.dumps(body) + b"\n")


def prepare_outbox(params: Params) -> None:
    """Build the hub with N queued deliveries, and the bodies for the floor."""
    asyncio.run(_build(params))


class DeliveryPath:
    """The delivery workers draining the prepared outbox to the receiver."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.receiver = Receiver()
        self._stack = contextlib.AsyncExitStack()
        self._ctx: Any = None
        self._sinks: dict[str, Any] = {}

    async def setup(self) -> None:
        """Copy the prepared hub, start a receiver, point the feed at it."""
        _secret()
        await self.receiver.start()
        self._stack.push_async_callback(self.receiver.close)
        root = self.params.workdir / HUB_DIR
        shutil.copytree(self.params.data_dir / HUB_DIR, root)
        toml = delivery_toml(self.receiver.base_url + "/hook")
        self._ctx = await self._stack.enter_async_context(open_bench_hub(root, toml))
        from hub.delivery import collect_sinks

        self._sinks = collect_sinks(self._ctx)
        for sink in self._sinks.values():
            self._stack.push_async_callback(sink.close)

    async def run(self) -> Measured:
        """Run the workers until every entry is delivered."""
        from hub.delivery import run_workers

        ctx = self._ctx
        stop = asyncio.Event()
        task = asyncio.create_task(run_workers(ctx, stop, with_scheduler=False, sinks=self._sinks))
        try:
            await wait_delivered(ctx, self.receiver.count, self.params.size, WAIT_TIMEOUT, task)
        finally:
            stop.set()
            await task
        depth = await ctx.store.outbox_depth()
        # Retries stay in the round (its time includes them); the notes say how many.
        retried = int(settled(ctx).get("retry", 0))
        return Measured(depth.get("delivered", 0), notes={**depth, "retried": retried})

    async def close(self) -> None:
        """Close the hub and stop the receiver."""
        await self._stack.aclose()


def path(params: Params) -> DeliveryPath:
    """The hub's delivery."""
    return DeliveryPath(params)


def floor(params: Params) -> HttpPostFloor:
    """The same bodies posted by plain aiohttp."""
    bodies = [line for line in (params.data_dir / BODIES_FILE).read_bytes().split(b"\n") if line]
    return HttpPostFloor(bodies, IN_FLIGHT)
