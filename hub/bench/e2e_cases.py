"""End to end: HL7 ADT in over MLLP, FHIR Patients out to a loopback FHIR receiver.

One hub as ``hub serve`` runs it — the services plugins offer (the MLLP listener) and the
delivery workers in the same process — with a ``fhir-push`` feed to ``bench-partner`` and a
consent per patient. The load generator sends N ADT^A01 messages over one connection; the
round ends when the receiver (another process) holds N Patients. Nothing here imports a
plugin: the listener comes from ``hub_services`` and the sink from ``hub_sinks``, so the
benchmark is skipped when those plugins are not installed. The floor is the HL7 floor
(MLLP + one SQLite commit per message): the hub's end-to-end rate is reported beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from hub.bench.data import BENCH_FACILITY, MRN_SYSTEM, people, write_messages
from hub.bench.floors import MESSAGES_FILE, MllpCommitFloor
from hub.bench.hubs import HOSPITAL, PARTNER, add_consents, open_bench_hub, wait_delivered
from hub.bench.model import Measured, Params, Skip
from hub.bench.procs import MllpLoad, Receiver

LISTENER = "hl7-mllp-listener"
WAIT_TIMEOUT = 3_600.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def e2e_toml(port: int, fhir_base: str) -> str:
    """``[hl7]`` listening on ``port`` and a ``fhir-push`` feed to ``fhir_base``."""
    return f"""
[hl7]
port = {port}
idle_timeout_seconds = 600

[[hl7.senders]]
facility = "{BENCH_FACILITY}"
agency = "{HOSPITAL}"

[delivery]
batch_size = 200
poll_seconds = 0.05
backoff_base_seconds = 0.05
backoff_max_seconds = 0.5

[[feeds]]
name = "bench-fhir-push"
recipient = "{PARTNER}"
kinds = ["client"]
purpose = "coordination"
connector = "fhir-push"
batch_size = 100
[feeds.options]
base_url = "{fhir_base}"
allow_insecure_http = true
"""


def prepare_messages(params: Params) -> None:
    """Write the ADT messages (same as the HL7 benchmarks')."""
    write_messages(params.data_dir / MESSAGES_FILE, params.size, params.seed)


class EndToEnd:
    """MLLP in, identity, gate, outbox, delivery workers, FHIR push out."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.receiver = Receiver()
        self._stack = contextlib.AsyncExitStack()
        self._load: MllpLoad | None = None
        self._stop = asyncio.Event()
        self._workers: asyncio.Task[None] | None = None
        self._ctx: Any = None

    async def setup(self) -> None:
        """Receiver, hub, consents, listener, workers, load generator."""
        from hub.delivery import collect_sinks, run_workers

        await self.receiver.start()
        self._stack.push_async_callback(self.receiver.close)
        port = free_port()
        ctx: Any = await self._stack.enter_async_context(
            open_bench_hub(
                self.params.workdir / "hub", e2e_toml(port, self.receiver.base_url + "/fhir")
            )
        )
        self._ctx = ctx
        if "fhir-push" not in collect_sinks(ctx):
            raise Skip("no fhir-push sink installed (the FHIR plugin)")
        services = [
            s
            for result in ctx.plugins.hook.hub_services(ctx=ctx)
            for s in result or ()
            if getattr(s, "name", "") == LISTENER
        ]
        if not services:
            raise Skip("no MLLP listener installed (the HL7 plugin)")
        refs = [(MRN_SYSTEM, p.mrn) for p in people(self.params.size, self.params.seed)]
        await add_consents(ctx, refs, recorded_by=HOSPITAL)
        listener = services[0]
        await listener.start()
        self._stack.push_async_callback(listener.stop)
        self._workers = asyncio.create_task(run_workers(ctx, self._stop, with_scheduler=False))
        self._stack.push_async_callback(self._stop_workers)
        self._load = MllpLoad(self.params.data_dir / MESSAGES_FILE, int(listener.port), 1)
        await self._load.start()
        self._stack.push_async_callback(self._load.close)

    async def _stop_workers(self) -> None:
        self._stop.set()
        if self._workers is not None:
            await self._workers

    async def run(self) -> Measured:
        """Send every message; done when the receiver holds every Patient."""
        assert self._load is not None
        acked = await self._load.go()
        received = await wait_delivered(
            self._ctx, self.receiver.count, self.params.size, WAIT_TIMEOUT, self._workers
        )
        return Measured(
            self.params.size,
            notes={"ack_seconds": round(acked.seconds or 0.0, 6), "received": received},
        )

    async def close(self) -> None:
        """Stop everything."""
        await self._stack.aclose()


def path(params: Params) -> EndToEnd:
    """The whole hub."""
    return EndToEnd(params)


def floor(params: Params) -> MllpCommitFloor:
    """The HL7 floor, one connection."""
    return MllpCommitFloor(params, 1)
