"""Helper processes a case starts in ``setup``: the MLLP load generator, the HTTP receiver.

Both speak JSON lines on stdout and are stopped (killed if need be) in ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from hub.bench.model import Measured

START_TIMEOUT = 30.0


class HelperProcess:
    """A ``python -m MODULE ARGS…`` child that prints JSON lines on stdout."""

    def __init__(self, module: str, *args: str) -> None:
        self.module = module
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> dict[str, Any]:
        """Start it and return its first JSON line."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return await self.read(START_TIMEOUT)

    async def read(self, within: float) -> dict[str, Any]:
        """The next JSON line, waiting at most ``within`` seconds (``RuntimeError`` when the
        process ended)."""
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), within)
        if not line:
            code = await self.proc.wait()
            raise RuntimeError(f"helper {self.module} exited with code {code}")
        data: dict[str, Any] = orjson.loads(line)
        return data

    async def send(self, text: str) -> None:
        """Write one line to its stdin."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        """Terminate it (kill after a few seconds)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


class MllpLoad:
    """The MLLP load generator (:mod:`hub.bench.mllp_client`) aimed at a listening port."""

    def __init__(
        self, messages: Path, port: int, connections: int, timeout: float = 3600.0
    ) -> None:
        self.helper = HelperProcess(
            "hub.bench.mllp_client",
            str(messages),
            "--port",
            str(port),
            "--connections",
            str(connections),
        )
        self.timeout = timeout

    async def start(self) -> None:
        """Start the generator; returns once its connections are open."""
        ready = await self.helper.start()
        if not ready.get("ready"):
            raise RuntimeError("the MLLP load generator did not start")

    async def go(self) -> Measured:
        """Send every message; the generator's own timing. Fails on any non-AA answer."""
        await self.helper.send("go")
        result = await self.helper.read(self.timeout)
        if "error" in result:
            raise RuntimeError(f"MLLP load generator: {result['error']}")
        rejected = int(result.get("rejected", 0))
        if rejected:
            raise RuntimeError(f"{rejected} of {result['items']} messages were not accepted (AA)")
        return Measured(int(result["items"]), float(result["seconds"]))

    async def close(self) -> None:
        """Stop the generator."""
        await self.helper.stop()


class Receiver:
    """The loopback HTTP receiver (:mod:`hub.bench.receiver`) in a process of its own."""

    def __init__(self) -> None:
        self.helper = HelperProcess("hub.bench.receiver")
        self.port = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start the receiver and learn its port."""
        ready = await self.helper.start()
        self.port = int(ready["port"])
        self._session = aiohttp.ClientSession()

    async def count(self) -> int:
        """How many requests it has answered so far."""
        assert self._session is not None
        async with self._session.get(f"{self.base_url}/__count") as resp:
            data = await resp.json()
            return int(data["count"])

    async def wait_for(self, expected: int, within: float, poll: float = 0.02) -> int:
        """Wait until it has answered ``expected`` requests; the count reached."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        count = await self.count()
        while count < expected:
            if loop.time() > deadline:
                raise TimeoutError(f"receiver got {count} of {expected} requests in time")
            await asyncio.sleep(poll)
            count = await self.count()
        return count

    async def close(self) -> None:
        """Stop the receiver."""
        if self._session is not None:
            await self._session.close()
        await self.helper.stop()
