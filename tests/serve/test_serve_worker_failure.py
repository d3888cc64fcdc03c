"""``hub serve`` whose delivery workers stop on an error: the hub shuts down (it stops
listening) and raises the error, rather than answering on HTTP while nothing is delivered."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

from hub.delivery import DeliveryWorker
from hub.server import serve
from tests.conftest import HubFactory

SERVE_TOML = """
[http]
host = "127.0.0.1"
port = 0
"""


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


async def test_serve_stops_listening_and_raises_when_its_workers_fail(
    hub_factory: HubFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    listening = asyncio.Event()

    async def failing_run(self: DeliveryWorker, stop_event: asyncio.Event) -> None:
        # Fail only once the hub has said it is ready (its port is open by then).
        await listening.wait()
        raise RuntimeError("delivery worker fault")

    monkeypatch.setattr(DeliveryWorker, "run", failing_run)
    async with hub_factory(SERVE_TOML) as ctx:
        server = asyncio.create_task(serve(ctx))
        port = 0
        for _ in range(300):
            found = re.search(r"http listening on http://[\d.]+:(\d+)", capsys.readouterr().err)
            if found:
                port = int(found.group(1))
                break
            await asyncio.sleep(0.01)
        assert port, "hub serve never said where it listens"
        assert not await asyncio.to_thread(_refused, port)
        listening.set()
        with pytest.raises(RuntimeError, match="delivery worker fault"):
            await asyncio.wait_for(server, timeout=30)
    assert await asyncio.to_thread(_refused, port)
    assert "stopped" in capsys.readouterr().err
