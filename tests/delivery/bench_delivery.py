"""Benchmark: outbound delivery to a loopback HTTP receiver vs the bare aiohttp client.

Not a test (no ``test_`` prefix). Run: ``python tests/delivery/bench_delivery.py [N] [--pg URL]``.
The receiver runs in a child process (so it does not share the hub's CPU); the floor is the
same aiohttp client posting the same JSON bodies directly with the same concurrency.
Prints one JSON object with records/s of both, the ratio, and the CPU time per record of
this process for both (steadier than wall time on a busy machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from consent.parsing import parse_consent_file
from hub.config import load_config
from hub.context import make_plugins, open_context
from hub.core.records import Client, Identifier, Provenance, RecordMeta, SourceKey
from hub.delivery import DeliveryWorker, collect_sinks
from hub.keys import KeyRing

SECRET_ENV = "HUB_BENCH_SECRET"


def _receiver(port_queue: Any) -> None:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


def _config(root: Path, url: str, store: str, concurrency: int) -> Path:
    text = f"""
[store]
url = "{store}"
[delivery]
batch_size = 200
poll_seconds = 0.01
[[agencies]]
id = "shelter"
kind = "hmis"
networks = ["hmis", "cie"]
[[agencies]]
id = "partner"
kind = "cie"
networks = ["cie"]
[[feeds]]
name = "bench"
recipient = "partner"
kinds = ["client"]
purpose = "coordination"
connector = "webhook"
batch_size = 200
[feeds.options]
url = "{url}"
secret_envs = ["{SECRET_ENV}"]
concurrency = {concurrency}
max_in_flight = 32
"""
    path = root / "hub.toml"
    path.write_text(text)
    KeyRing.generate().write(root / "hub-data" / "keys.json")
    return path


def _clients(n: int) -> list[Client]:
    now = datetime.now(UTC)
    return [
        Client(
            meta=RecordMeta(
                "client",
                SourceKey("hmis:1", f"B{i}"),
                "shelter",
                Provenance("b", now, "0" * 64),
                "2025-01-01T00:00:00",
            ),
            identifiers=(Identifier("urn:hmis", f"B{i}", "PI"),),
            birth_date=date(1980, 1, 1),
            sex="Female",
            veteran_status="0",
        )
        for i in range(n)
    ]


async def _floor(url: str, bodies: list[bytes], in_flight: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        sem = asyncio.Semaphore(in_flight)

        async def one(body: bytes) -> None:
            async with (
                sem,
                session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp,
            ):
                await resp.read()
                assert resp.status == 204

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(b) for b in bodies))
        return time.perf_counter() - started, time.process_time() - cpu


async def _hub(
    root: Path, url: str, n: int, store: str, concurrency: int
) -> tuple[float, float, list[bytes]]:
    cfg = load_config(_config(root, url, store, concurrency))
    async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
        consents = [
            {
                "id": f"m{i}",
                "client": {"system": "urn:hmis", "value": f"B{i}"},
                "signed_on": "2025-01-01",
            }
            for i in range(n)
        ]
        await ctx.import_consents(
            parse_consent_file(
                json.dumps(consents), agencies=cfg.agencies, policy=cfg.consent_policy
            )
        )
        records = _clients(n)
        for start in range(0, n, 1000):
            await ctx.engine.ingest(records[start : start + 1000])
        bodies = [
            orjson.dumps(
                {
                    "idempotency_key": r.idempotency_key,
                    "feed": r.feed,
                    "recipient": r.recipient,
                    "kind": r.record_kind,
                    "record": orjson.loads(r.payload),
                }
            )
            for r in await ctx.store.list_outbox(limit=n)
        ]
        sinks = collect_sinks(ctx)
        worker = DeliveryWorker(ctx, sinks, "bench")
        stop = asyncio.Event()
        started, cpu = time.perf_counter(), time.process_time()
        task = asyncio.create_task(worker.run(stop))
        while True:
            depth = await ctx.store.outbox_depth()
            if depth.get("delivered", 0) >= n:
                break
            await asyncio.sleep(0.05)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        stop.set()
        await task
        for sink in sinks.values():
            await sink.close()
        return elapsed, cpu, bodies


def main() -> None:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=10_000)
    parser.add_argument("--pg", default="")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    os.environ[SECRET_ENV] = "bench-secret"
    queue: Any = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_receiver, args=(queue,), daemon=True)
    proc.start()
    try:
        url = f"http://127.0.0.1:{queue.get(timeout=10)}/hook"
        with tempfile.TemporaryDirectory() as tmp:
            store = args.pg or "sqlite:///hub-data/hub.db"
            hub_s, hub_cpu, bodies = asyncio.run(
                _hub(Path(tmp), url, args.n, store, args.concurrency)
            )
        floor_s, floor_cpu = asyncio.run(_floor(url, bodies, 32 * args.concurrency))
    finally:
        proc.terminate()
        proc.join(5)
    result = {
        "records": args.n,
        "store": "postgresql" if args.pg else "sqlite",
        "hub_records_per_s": round(args.n / hub_s),
        "floor_records_per_s": round(args.n / floor_s),
        "ratio": round(floor_s / hub_s, 3),
        "hub_cpu_us_per_record": round(hub_cpu / args.n * 1e6),
        "floor_cpu_us_per_record": round(floor_cpu / args.n * 1e6),
        "cpu_ratio": round(floor_cpu / hub_cpu, 3),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
