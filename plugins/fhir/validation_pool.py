"""Bundle validation in worker processes, beside the hub's own work on the Bundle.

Validating a Bundle with the ``fhir.resources`` models is pure CPU, about 100 µs per
Patient: done on the event loop, a Bundle of 1,000 Patients would stall every other
partner's request for a tenth of a second, and the validation and the hub's own work
(mapping, identity, consent, storing) would take turns on one core. With
``[fhir] validation_workers`` ≥ 1 (the default is 1), ``hub serve`` keeps that many worker
processes, and a Bundle of at least :data:`OFFLOAD_MIN_ENTRIES` entries is validated in one
of them while the event loop maps and stores it in a transaction that commits only once
the validation has passed (:func:`plugins.fhir.ingest.ingest_bundle`). Smaller Bundles,
and every Bundle when no pool runs, are validated first, in process. The entries of a large
batch Bundle are validated one by one in a worker (:meth:`ValidationPool.check_entries`):
there a bad entry fails alone.

A worker that dies (killed, out of memory, during a check or idle) breaks the pool: a new
pool replaces it, and a Bundle whose check it took down is validated in process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from hub.heap import tune_collector
from plugins.fhir.outcome import FhirError, Issue
from plugins.fhir.validation import check_entries, parse_json, validate_bundle

log = logging.getLogger("hub.fhir.validation")

POOL = "fhir_validation_pool"
"""Where ``hub serve`` keeps the running :class:`ValidationPool` (``ctx.extras``)."""

OFFLOAD_MIN_ENTRIES = 20
"""Smaller Bundles are validated in process: a round trip to a worker costs about as much
as validating 5 Patients, and the event loop is not held for long."""

_WARM_UP = (
    b'{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:'
    b'00000000-0000-4000-8000-000000000000","resource":{"resourceType":"Patient",'
    b'"name":[{"family":"Warm"}],"birthDate":"2000-01-01"},"request":{"method":"POST",'
    b'"url":"Patient"}}]}'
)

IssueTuple = tuple[str, str, tuple[str, ...], str]
Found = tuple[int, list[IssueTuple]]
"""An error as plain data: its HTTP status and issues (they cross a process boundary)."""
T = TypeVar("T")


def check_bundle_bytes(body: bytes) -> tuple[int, list[IssueTuple]] | None:
    """Parse and validate a Bundle (runs in a worker); None when it is valid, else the
    HTTP status and the issues (plain tuples: they cross a process boundary)."""
    try:
        validate_bundle(parse_json(body, "Bundle"))
    except FhirError as exc:
        return _found(exc)
    return None


def check_entry_bytes(body: bytes) -> dict[int, Found]:
    """Validate each entry of a Bundle on its own (runs in a worker); the errors of the
    invalid ones by index (the Bundle itself was checked by the caller)."""
    data = parse_json(body, "Bundle")
    entries = data.get("entry") if isinstance(data, dict) else None
    found = check_entries(entries if isinstance(entries, list) else [])
    return {index: _found(exc) for index, exc in found.items()}


def _found(exc: FhirError) -> Found:
    return exc.status, [(i.code, i.diagnostics, i.expression, i.severity) for i in exc.issues]


def _error(found: Found) -> FhirError:
    status, issues = found
    return FhirError(status, [Issue(*issue) for issue in issues])


def _start_worker(parent: int) -> None:
    """Worker initializer: the hub's collector settings (validation allocates a model tree
    per Bundle), and leave when the hub's process is gone (killed, crashed). A pool's
    worker holds both ends of its own task pipe, so it would never see the hub leave.

    Ctrl-C at a terminal reaches every process of the group: a worker ignores SIGINT (it
    would die with a KeyboardInterrupt traceback) and leaves when the hub shuts the pool
    down. It starts with SIGINT blocked (:func:`_submit`), so a Ctrl-C while it was still
    importing is pending; ignoring the signal discards it, then it is unblocked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    tune_collector()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _submit(
    pool: ProcessPoolExecutor,
    body: bytes,
    check: Callable[[bytes], T],
) -> concurrent.futures.Future[T]:
    """Hand ``check(body)`` to the pool with SIGINT blocked in this thread: a worker the
    pool spawns for it inherits the blocked signal until :func:`_start_worker` ignores it
    (a Ctrl-C during the worker's imports would otherwise end it with a traceback)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return pool.submit(check, body)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _raise_found(found: Found | None) -> None:
    if found is not None:
        raise _error(found)


class ValidationPool:
    """A pool of worker processes validating Bundles, as a ``hub serve`` service."""

    name = "fhir-validation"

    def __init__(self, ctx: Any, workers: int) -> None:
        self._ctx = ctx
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"ValidationPool(workers={self._workers}, running={self._pool is not None})"

    async def start(self) -> None:
        """Start the workers, warm them with a small Bundle, and offer the pool to
        :func:`plugins.fhir.ingest.ingest_bundle`. Workers that cannot start leave the hub
        validating in process (logged), not stopped."""
        pool = self._new_pool()
        warm_ups = [_submit(pool, _WARM_UP, check_bundle_bytes) for _ in range(self._workers)]
        try:
            await asyncio.gather(*(asyncio.wrap_future(w) for w in warm_ups))
        except Exception as exc:
            log.warning(
                "FHIR validation workers could not start; validating in process",
                extra={"error": type(exc).__name__},
            )
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
            return
        self._pool = pool
        self._ctx.extras[POOL] = self
        log.info("FHIR validation workers started", extra={"workers": self._workers})

    async def stop(self) -> None:
        """Take the pool out of use and stop its workers (checks under way are cancelled;
        their Bundles fail and store nothing)."""
        if self._ctx.extras.get(POOL) is self:
            del self._ctx.extras[POOL]
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def check(self, body: bytes) -> asyncio.Future[None]:
        """Start validating ``body`` in a worker now; the future raises
        :class:`FhirError` when the Bundle is invalid."""
        pool, running = self._start(body, check_bundle_bytes)
        return asyncio.ensure_future(self._checked(pool, running, body))

    def check_entries(self, body: bytes) -> asyncio.Future[dict[int, FhirError]]:
        """Start validating each entry of the Bundle ``body`` in a worker now; the future
        answers the errors of the invalid entries by index."""
        pool, running = self._start(body, check_entry_bytes)
        return asyncio.ensure_future(self._entries(pool, running, body))

    async def _checked(
        self,
        pool: ProcessPoolExecutor,
        running: concurrent.futures.Future[Found | None],
        body: bytes,
    ) -> None:
        _raise_found(await self._outcome(pool, running, body, check_bundle_bytes))

    async def _entries(
        self,
        pool: ProcessPoolExecutor,
        running: concurrent.futures.Future[dict[int, Found]],
        body: bytes,
    ) -> dict[int, FhirError]:
        found = await self._outcome(pool, running, body, check_entry_bytes)
        return {index: _error(error) for index, error in found.items()}

    def _start(
        self, body: bytes, check: Callable[[bytes], T]
    ) -> tuple[ProcessPoolExecutor, concurrent.futures.Future[T]]:
        """``check(body)`` handed to a worker now: the pool and the running check."""
        pool = self._pool
        if pool is None:
            raise RuntimeError("the FHIR validation pool is stopped")
        # Handed to the worker before returning: the caller's work that follows may not
        # give the event loop a turn until it awaits the result.
        try:
            return pool, _submit(pool, body, check)
        except BrokenProcessPool:  # a worker died while idle
            restarted = self._restart(pool)
            if restarted is None:
                raise RuntimeError("the FHIR validation pool is stopped") from None
            return restarted, _submit(restarted, body, check)

    def _restart(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor | None:
        """A new pool in place of a broken one (once, however many checks find it broken);
        None when the pool was stopped meanwhile."""
        if self._pool is broken:
            log.warning("a FHIR validation worker died; restarting the pool")
            self._pool = self._new_pool()
            broken.shutdown(wait=False, cancel_futures=True)
        return self._pool

    async def _outcome(
        self,
        pool: ProcessPoolExecutor,
        running: concurrent.futures.Future[T],
        body: bytes,
        check: Callable[[bytes], T],
    ) -> T:
        try:
            return await asyncio.wrap_future(running)
        except BrokenProcessPool:  # a worker died during this check: validate it here
            self._restart(pool)
            return check(body)
        finally:
            running.cancel()

    def _new_pool(self) -> ProcessPoolExecutor:
        # "spawn": the hub's process runs threads (SQLite connections), which fork must not copy.
        return ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(os.getpid(),),
        )


def running_pool(ctx: Any) -> ValidationPool | None:
    """The validation pool of a running ``hub serve``, if there is one."""
    pool = ctx.extras.get(POOL)
    return pool if isinstance(pool, ValidationPool) else None
