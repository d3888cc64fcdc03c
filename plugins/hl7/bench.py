"""Benchmarks of the HL7 v2 plugin's hot path: ADT^A01 over MLLP, ACK after commit.

The path: a real hub on SQLite (``[hl7]`` sender → ``bench-hospital``, a feed to
``bench-partner`` and a permitting consent per patient, so every message goes through
parse, identity, routing, the consent gate, the audit log and the outbox in one commit
before its ACK). The floor: a raw asyncio MLLP server doing one SQLite INSERT + COMMIT per
message and a canned ACK (:class:`hub.bench.floors.MllpCommitFloor`). Both are driven by
the same load generator in another process, one message in flight per connection.
"""

from __future__ import annotations

import contextlib

from hub.bench.data import BENCH_FACILITY, MRN_SYSTEM, people, write_messages
from hub.bench.floors import MESSAGES_FILE, MllpCommitFloor
from hub.bench.hubs import HOSPITAL, PARTNER, add_consents, open_bench_hub
from hub.bench.model import Benchmark, Measured, Params, Target
from hub.bench.procs import MllpLoad

HL7_TOML = f"""
[hl7]
port = 0

[[hl7.senders]]
facility = "{BENCH_FACILITY}"
agency = "{HOSPITAL}"

[[feeds]]
name = "bench-adt-to-partner"
recipient = "{PARTNER}"
kinds = ["client", "encounter"]
purpose = "coordination"
connector = "webhook"
"""


def prepare_messages(params: Params) -> None:
    """Write ``size`` ADT^A01 messages (one new patient each) for both sides."""
    write_messages(params.data_dir / MESSAGES_FILE, params.size, params.seed)


class MllpPath:
    """The hub's MLLP listener on a real hub; ``connections`` senders at once."""

    def __init__(self, params: Params, connections: int = 1) -> None:
        self.params = params
        self.connections = connections
        self._stack = contextlib.AsyncExitStack()
        self._load: MllpLoad | None = None

    async def setup(self) -> None:
        """Hub, consents for every patient, listener, load generator."""
        from plugins.hl7.listener import MllpListener

        ctx = await self._stack.enter_async_context(
            open_bench_hub(self.params.workdir / "hub", HL7_TOML)
        )
        refs = [(MRN_SYSTEM, p.mrn) for p in people(self.params.size, self.params.seed)]
        await add_consents(ctx, refs, recorded_by=HOSPITAL)
        listener = MllpListener(ctx, "127.0.0.1", 0, idle_timeout_seconds=600.0)
        await listener.start()
        self._stack.push_async_callback(listener.stop)
        self._load = MllpLoad(self.params.data_dir / MESSAGES_FILE, listener.port, self.connections)
        await self._load.start()
        self._stack.push_async_callback(self._load.close)

    async def run(self) -> Measured:
        """Send every message, each answered AA after its commit."""
        assert self._load is not None
        return await self._load.go()

    async def close(self) -> None:
        """Stop the load generator and the listener, close the hub."""
        await self._stack.aclose()


def path_1(params: Params) -> MllpPath:
    """The hub, one sending connection."""
    return MllpPath(params, 1)


def path_8(params: Params) -> MllpPath:
    """The hub, eight sending connections."""
    return MllpPath(params, 8)


def floor_1(params: Params) -> MllpCommitFloor:
    """The floor, one sending connection."""
    return MllpCommitFloor(params, 1)


def floor_8(params: Params) -> MllpCommitFloor:
    """The floor, eight sending connections."""
    return MllpCommitFloor(params, 8)


FLOOR_TITLE = "raw asyncio MLLP + 1 SQLite INSERT/COMMIT per message + canned ACK"


def benchmarks() -> list[Benchmark]:
    """The HL7 plugin's benchmarks (for the ``hub_benchmarks`` hook)."""
    return [
        Benchmark(
            name="hl7.mllp.1conn",
            title="HL7 ADT^A01 over MLLP, 1 connection, ACK after commit",
            unit="msg",
            path=path_1,
            floor=floor_1,
            floor_title=FLOOR_TITLE,
            prepare=prepare_messages,
            sizes={
                "tiny": (40, 80),
                "small": (300, 1_000, 3_000),
                "medium": (1_000, 10_000, 30_000),
                "large": (1_000, 10_000, 100_000),
            },
            target=Target(min_rate=3_000, min_ratio=0.35),
            note="parse, identity, gate, audit and outbox in one SQLite commit per message",
        ),
        Benchmark(
            name="hl7.mllp.8conn",
            title="HL7 ADT^A01 over MLLP, 8 connections, ACK after commit",
            unit="msg",
            path=path_8,
            floor=floor_8,
            floor_title=FLOOR_TITLE,
            prepare=prepare_messages,
            sizes={
                "tiny": (80,),
                "small": (1_000,),
                "medium": (10_000,),
                "large": (1_000, 10_000, 100_000),
            },
            target=Target(min_rate=8_000),
        ),
    ]
