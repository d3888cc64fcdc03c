"""A ``hub worker`` stand-in for the scale-out tests: ``python worker_proc.py HUB_TOML``.

Runs :func:`hub.delivery.run_workers` until SIGTERM (graceful) or SIGKILL (not).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from hub.config import load_config
from hub.context import make_plugins, open_context
from hub.delivery import run_workers


async def main(path: Path) -> None:
    """Open the hub and run the workers until SIGTERM."""
    pm = make_plugins()
    cfg = load_config(path, owned_sections=pm.owned_sections())
    async with open_context(cfg, make_plugins(cfg)) as ctx:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("worker ready", flush=True)
        await run_workers(ctx, stop)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
