"""The loopback HTTP receiver: ``python -m hub.bench.receiver``.

A partner's endpoint for the delivery benchmarks, in a process of its own so it does not
share the measured hub's CPU. It binds 127.0.0.1 on a free port, prints ``{"port": N}``,
and answers every ``POST``/``PUT`` with 200 and ``{}`` (a webhook receiver, or a FHIR server
accepting a transaction). It counts requests and *items* — the entries of a posted Bundle,
else one per request — and tells them at ``GET /__count``. It stops when stdin closes.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiohttp import web

COUNT_PATH = "/__count"


class Counter:
    """Requests and items received so far."""

    def __init__(self) -> None:
        self.requests = 0
        self.items = 0

    async def receive(self, request: web.Request) -> web.Response:
        """Take one delivery: read and count it, answer 200."""
        body = await request.read()
        self.requests += 1
        items = 1
        if body[:1] == b"{" and b'"entry"' in body:
            entries = orjson.loads(body).get("entry")
            if isinstance(entries, list):
                items = len(entries)
        self.items += items
        return web.Response(body=b"{}", content_type="application/json")

    async def count(self, _request: web.Request) -> web.Response:
        """The counts, as JSON."""
        return web.json_response({"count": self.items, "requests": self.requests})


async def serve() -> None:
    """Serve until stdin reaches end of file."""
    counter = Counter()
    app = web.Application(client_max_size=1 << 28)
    app.router.add_get(COUNT_PATH, counter.count)
    app.router.add_route("POST", "/{tail:.*}", counter.receive)
    app.router.add_route("PUT", "/{tail:.*}", counter.receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(orjson.dumps({"port": port}).decode() + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def main() -> None:
    """Command-line entry point."""
    asyncio.run(serve())


if __name__ == "__main__":
    main()
