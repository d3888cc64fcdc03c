"""Group commit: concurrent inbound messages share one transaction, each in a savepoint.

A listener with many connections calls :meth:`GroupCommit.ingest` once per message, as it
would call :meth:`hub.core.engine.Engine.ingest`. Calls that arrive while a transaction is
being written wait for the next one, and all waiting calls are written together: one
``BEGIN`` … ``COMMIT`` (one WAL append, one fsync where the store syncs) for the group, a
savepoint per message so a message that fails is rolled back alone and its caller gets the
exception while the others commit. Every caller returns only after the commit that holds
its message, so an acknowledgement sent after ``ingest`` returns is still sent after the
message is durable. With one sender at a time a group is one message: nothing waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hub.core.records import Record

if TYPE_CHECKING:
    from hub.core.engine import Engine, InboundMessage, IngestRequest, IngestResult

log = logging.getLogger("hub.engine")

MAX_GROUP = 64
"""At most this many messages per transaction (bounds the latency a group adds)."""


class GroupCommit:
    """``ingest`` with the engine's signature, writing concurrent calls in one transaction."""

    def __init__(self, engine: Engine, max_group: int = MAX_GROUP) -> None:
        self.engine = engine
        self.max_group = max_group
        self._waiting: list[tuple[IngestRequest, asyncio.Future[IngestResult]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.groups = 0
        """Transactions written so far (with :attr:`messages`, the mean group size)."""
        self.messages = 0

    async def ingest(
        self,
        records: Sequence[Record],
        *,
        message: InboundMessage | None = None,
        response: bytes = b"",
    ) -> IngestResult:
        """As :meth:`Engine.ingest`; returns after the commit that holds these records."""
        from hub.core.engine import IngestRequest

        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        # Retrieved here so a caller that went away leaves no "never retrieved" warning.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append((IngestRequest(records, message, response), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_groups(), name="hub-group-commit")
            self._writer.add_done_callback(self._writer_stopped)
        # A cancelled caller (its connection closed) does not cancel the group: its message
        # still commits, and a re-send is answered from the de-duplication table.
        return await asyncio.shield(future)

    def _writer_stopped(self, writer: asyncio.Task[None]) -> None:
        """A writer cancelled (the hub is stopping), even before it ran: nobody is left
        waiting for an answer forever."""
        if not writer.cancelled():
            return
        stopped = RuntimeError("the hub stopped before the message was stored")
        for _, future in self._waiting:
            if not future.done():
                future.set_exception(stopped)
        self._waiting.clear()

    async def _write_groups(self) -> None:
        # One turn of the loop first: connections whose messages are ready join this group.
        await asyncio.sleep(0)
        while self._waiting:
            group = self._waiting[: self.max_group]
            del self._waiting[: self.max_group]
            try:
                results = await self.engine.ingest_many([request for request, _ in group])
            except BaseException as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(
                            exc
                            if isinstance(exc, Exception)
                            else RuntimeError("the hub stopped before the message was stored")
                        )
                if not isinstance(exc, Exception):
                    raise
                continue
            self.groups += 1
            self.messages += len(group)
            for (_, future), result in zip(group, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Wait for the group being written (if any) to finish."""
        if self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])
