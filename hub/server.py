"""``hub serve``: HTTP, plugin services (MLLP …), the scheduler and delivery workers.

Plugin services and the scheduler live in the aiohttp app's ``cleanup_ctx``, so they start
with the app and stop with it. SIGTERM/SIGINT: stop accepting (close the listeners), let
in-flight work finish or be abandoned safely (every ACK follows a commit; an abandoned
delivery keeps its lease and is retried), then exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from hub.context import HubContext
from hub.core.ports import Sink
from hub.schedules import cron_trigger
from hub.web import CONTEXT, make_app

log = logging.getLogger("hub.serve")

SERVICES = web.AppKey("hub_services", list)


async def plugin_services(app: web.Application) -> AsyncIterator[None]:
    """Start every plugin's services with the app; stop them (in reverse) with it."""
    ctx = app[CONTEXT]
    services: list[Any] = [s for group in ctx.plugins.hook.hub_services(ctx=ctx) for s in group]
    started: list[Any] = []
    app[SERVICES] = started
    try:
        for service in services:
            await service.start()
            started.append(service)
            port = getattr(service, "port", None)
            announce(f"{service.name} started" + (f" on port {port}" if port else ""))
        yield
    finally:
        for service in reversed(started):
            try:
                await asyncio.wait_for(service.stop(), timeout=10)
            except Exception as exc:
                log.warning(
                    "service did not stop cleanly",
                    extra={"service": service.name, "error_type": type(exc).__name__},
                )


async def scheduler(app: web.Application) -> AsyncIterator[None]:
    """Run the plugins' scheduled jobs (APScheduler) while the app runs."""
    ctx = app[CONTEXT]
    jobs = [j for group in ctx.plugins.hook.hub_scheduled_jobs(ctx=ctx) for j in group]
    sched = AsyncIOScheduler(timezone="UTC")
    for job in jobs:
        if job.cron:
            trigger: Any = cron_trigger(job.cron)
        else:
            trigger = IntervalTrigger(seconds=job.interval_seconds or 60)
        sched.add_job(job.func, trigger, id=job.name, max_instances=1, coalesce=True)
    if jobs:
        sched.start()
    try:
        yield
    finally:
        if jobs:
            sched.shutdown(wait=False)


def announce(message: str) -> None:
    """A start-up line on stderr (ports, services): what an operator needs to see."""
    print(message, file=sys.stderr, flush=True)


async def serve(ctx: HubContext, *, workers: bool = True) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully.

    Delivery is checked before the hub listens (:func:`hub.delivery.prepare_delivery`): a
    hub that cannot deliver does not say it is ready. Should the delivery workers stop on
    an error, the hub shuts down and the error is raised.
    """
    from hub.delivery import close_sinks, prepare_delivery

    sinks = prepare_delivery(ctx) if workers else None
    try:
        await _serve(ctx, sinks)
    finally:
        if sinks is not None:
            await close_sinks(sinks)


async def _serve(ctx: HubContext, sinks: Mapping[str, Sink] | None) -> None:
    from hub.delivery import run_workers

    app = make_app(ctx)
    app.cleanup_ctx.append(plugin_services)
    app.cleanup_ctx.append(scheduler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    ssl_context = None
    if ctx.config.http_tls is not None:
        from hub.tls import server_context

        ssl_context = server_context(ctx.config.http_tls)
    site = web.TCPSite(
        runner,
        ctx.config.http_host,
        ctx.config.http_port,
        shutdown_timeout=5,
        ssl_context=ssl_context,
    )
    await site.start()
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else ctx.config.http_port
    scheme = "https" if ssl_context is not None else "http"
    announce(f"http listening on {scheme}://{ctx.config.http_host}:{port}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker_task: asyncio.Task[None] | None = None
    if sinks is not None:
        worker_task = asyncio.create_task(run_workers(ctx, stop, sinks=sinks))
        worker_task.add_done_callback(lambda _task: stop.set())
    announce("hub ready")
    await stop.wait()
    announce("shutting down")
    failed: BaseException | None = None
    if worker_task is not None:
        try:
            await asyncio.wait_for(worker_task, timeout=25)
        except (TimeoutError, asyncio.CancelledError):
            worker_task.cancel()
        except Exception as exc:
            log.error(
                "delivery workers stopped on an error; shutting down",
                extra={"error_type": type(exc).__name__},
            )
            failed = exc
    await runner.cleanup()
    announce("stopped")
    if failed is not None:
        raise failed
