"""Outbox claims while a receiver is down or hanging: what its entries cost the other feeds.

``held_back``: the path's outbox holds ``size`` entries for a recipient that is down (ten
per person: the first waiting for a retry an hour away, nine behind it) and 2,000 due
entries for a healthy recipient; the floor's outbox holds the same 2,000 due entries alone.
Both claim the 2,000 in claims of 50, as a delivery worker does. A claim that walked the
held-back entries would slow in proportion to ``size``; walking only the due heads (schema
5), it costs about what the floor does (its indexes are deeper: 84% of the floor at 10,000
held back, 75% at 100,000, where walking them made a claim 75 times slower).

``busy_feed``: the same, but the ``size`` entries are due (each its own person, due before
the healthy ones) for a feed whose partner hangs, so the worker skips that feed while its
lanes are all busy. Claims go feed by feed (schema 9), so passing it by costs nothing; a
claim that walked the due heads in one order and skipped that feed's walked all of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.bench.hubs import PARTNER, open_bench_hub
from hub.bench.model import Measured, Params
from hub.core.ports import OutboxRow

DUE = 2_000
"""Entries due for the healthy recipient, claimed by both sides."""
CLAIM = 50
DOWN = "bench-down"
"""The recipient that is down (no agency of that name needs to exist for the outbox)."""


def _entry(i: int, recipient: str, person: str, status: str, due: str) -> OutboxRow:
    return OutboxRow(
        0,
        "bench-feed",
        recipient,
        person,
        "client",
        "bench",
        str(i),
        "1",
        f"{recipient}-{i}",
        status,
        0,
        due,
        due,
        payload=b'{"id":"bench"}',
    )


HANGING_FEED = "bench-hanging"
"""The feed whose partner hangs (skipped by every claim of ``busy_feed``)."""


class ClaimPath:
    """Claims of the due entries with ``size`` entries held back (``size`` 0: the floor)."""

    held = True
    skip: tuple[str, ...] = ()

    def backlog(self, start: int, stop: int, past: str, later: str) -> list[OutboxRow]:
        """Entries ``start``…``stop`` of the recipient that is down."""
        return [
            _entry(i, DOWN, f"p{i // 10}", "retry", later)
            if i % 10 == 0
            else _entry(i, DOWN, f"p{i // 10}", "pending", past)
            for i in range(start, stop)
        ]

    def __init__(self, params: Params) -> None:
        self.params = params
        self._stack = contextlib.AsyncExitStack()
        self._ctx: Any = None

    async def setup(self) -> None:
        """A hub whose outbox holds the held-back entries (path only) and the due ones."""
        self._ctx = await self._stack.enter_async_context(
            open_bench_hub(self.params.workdir / "hub")
        )
        now = datetime.now(UTC)
        past = (now - timedelta(minutes=1)).isoformat(timespec="microseconds")
        later = (now + timedelta(hours=1)).isoformat(timespec="microseconds")
        held = self.params.size if self.held else 0
        async with self._ctx.store.transaction() as tx:
            for start in range(0, held, 10_000):
                await tx.enqueue_many(self.backlog(start, min(held, start + 10_000), past, later))
            await tx.enqueue_many(
                [_entry(10**9 + i, PARTNER, f"q{i}", "pending", past) for i in range(DUE)]
            )

    async def run(self) -> Measured:
        """Claim until nothing is due; items = entries claimed."""
        claimed = 0
        while True:
            got = await self._ctx.store.claim_outbox("bench-worker", CLAIM, 600, self.skip)
            if not got:
                break
            if any(e.recipient != PARTNER for e in got):
                raise RuntimeError("a held-back entry was claimed")
            claimed += len(got)
        if claimed != DUE:
            raise RuntimeError(f"{claimed} of {DUE} due entries were claimed")
        return Measured(claimed)

    async def close(self) -> None:
        """Close the hub."""
        await self._stack.aclose()


class ClaimFloor(ClaimPath):
    """The same claims with nothing held back."""

    held = False


class BusyFeedClaimPath(ClaimPath):
    """Claims of the due entries, skipping a hanging partner's feed of ``size`` due ones."""

    skip = (HANGING_FEED,)

    def backlog(self, start: int, stop: int, past: str, later: str) -> list[OutboxRow]:
        """Entries ``start``…``stop`` of the hanging feed, due before the healthy ones."""
        earlier = (datetime.fromisoformat(past) - timedelta(minutes=1)).isoformat()
        return [
            dataclasses.replace(_entry(i, DOWN, f"p{i}", "pending", earlier), feed=HANGING_FEED)
            for i in range(start, stop)
        ]


class BusyFeedClaimFloor(BusyFeedClaimPath):
    """The same claims with nothing else in the outbox."""

    held = False
