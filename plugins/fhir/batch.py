"""Batch Bundles (``Bundle.type = batch``): each entry on its own.

Entries may ``POST`` and ``PUT`` as in a transaction (:mod:`plugins.fhir.transaction`: the
same reading of the entry, the same write path — intake, identity, consent gate, audit) and
``GET`` (a read or a search through the same path as the REST GET, :mod:`plugins.fhir.reads`:
an entry reading what the caller may not see answers the same ``404`` as the plain GET).
One entry failing fails no other: the ``batch-response`` Bundle has one entry per request
entry, in order, each with ``response.status`` — and ``location``, ``etag`` and
``lastModified`` as a transaction gives them, or an OperationOutcome in ``response.outcome``
naming the entry and the element, never a value.

References between entries are not resolved: a reference to another entry's ``fullUrl``
is that entry's error (400). Entries run in order; the writes of all entries are planned
first, then stored in one store transaction with a savepoint per entry
(:meth:`plugins.fhir.writes.Batch.commit_parts`: batched statements while nothing fails, so
a batch of many Patients costs what a transaction of them does), then the GET entries read.
Entries that write the same record, or that build on what another entry of the batch
planned (an update of a Task another entry updates too), are stored together: if storing
one of them fails, the others answer ``409``.

Each entry is validated on its own, an invalid one answers its validation errors whatever
else it made fail on the way; a large batch is validated in a worker process while the hub
plans and stores it (:meth:`plugins.fhir.validation_pool.ValidationPool.check_entries`),
and no gate decision is made, nor anything stored, for an entry that turns out invalid.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from plugins.fhir.access import Viewer
from plugins.fhir.outcome import FhirError, Issue, at_entry, operation_outcome
from plugins.fhir.patients import read_ahead_identifiers
from plugins.fhir.reads import Reader, read_url
from plugins.fhir.transaction import (
    Plan,
    apply_plan,
    bundle_entries,
    entry_response,
    patient_identifier_criteria,
    plan_entry,
    status_text,
)
from plugins.fhir.writes import Batch, Outcome, Part, part_groups, write_lock

log = logging.getLogger("hub.fhir")

METHODS = ("GET", "POST", "PUT")


class EntryChecks:
    """The validation of a batch's entries: done already (in process) or under way in a
    worker process; the errors of the invalid entries by index."""

    def __init__(
        self,
        done: dict[int, FhirError] | None = None,
        running: asyncio.Future[dict[int, FhirError]] | None = None,
    ) -> None:
        self._done = done
        self._running = running

    @property
    def pending(self) -> bool:
        """Whether the validation runs beside the hub's work on the batch."""
        return self._running is not None

    def now(self) -> dict[int, FhirError] | None:
        """The errors, if known already."""
        if self._done is not None:
            return self._done
        running = self._running
        if running is None or not running.done() or running.cancelled():
            return None
        return running.result() if running.exception() is None else None

    async def all(self) -> dict[int, FhirError]:
        """The errors (waiting for the validation)."""
        if self._done is not None:
            return self._done
        assert self._running is not None
        return await self._running

    def cancel(self) -> None:
        """Stop a validation under way (the request is over)."""
        if self._running is not None:
            self._running.cancel()


def failed(error: FhirError) -> dict[str, Any]:
    """The response entry of an entry that failed: its status and OperationOutcome (and the
    current ``etag`` of a version conflict)."""
    response: dict[str, Any] = {
        "status": status_text(error.status),
        "outcome": operation_outcome(error.issues),
    }
    if "ETag" in error.headers:
        response["etag"] = error.headers["ETag"]
    return {"response": response}


def _references(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(element path, reference) of every Reference in a resource."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):
            yield path, ref
        for key, item in value.items():
            if isinstance(item, dict | list):
                yield from _references(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _references(item, f"{path}[{i}]")


def refuse_local_references(plan: Plan, full_urls: Mapping[str, int]) -> None:
    """A 400 naming the first element of the entry's resource that refers to another entry
    of the batch (by its ``fullUrl``): a batch resolves no reference between entries."""
    for where, ref in _references(plan.resource, f"Bundle.entry[{plan.index}].resource"):
        other = full_urls.get(ref)
        if other is not None and other != plan.index:
            raise FhirError.of(
                400,
                "invalid",
                f"{where}: refers to Bundle.entry[{other}] of the same batch (references "
                "between the entries of a batch are not resolved)",
                where,
            )


async def run_batch(
    viewer: Viewer, bundle: Mapping[str, Any], checks: EntryChecks, reader: Reader
) -> dict[str, Any]:
    """Carry out a batch Bundle for the caller; the batch-response Bundle.

    ``checks`` is the entries' validation (an invalid entry answers its errors); ``reader``
    says how GET entries read (they read after the writes, with a view of their own).
    """
    entries = bundle_entries(bundle, "batch")
    answers: dict[int, dict[str, Any]] = {}
    full_urls = {
        str(e["fullUrl"]): i
        for i, e in enumerate(entries)
        if isinstance(e, Mapping) and isinstance(e.get("fullUrl"), str)
    }
    known = checks.now() or {}
    plans: list[Plan] = []
    for i, entry in enumerate(entries):
        if i in known:
            continue  # answered with its validation errors below
        try:
            plan = plan_entry(i, entry, METHODS)
            if plan.method != "GET" and full_urls:
                refuse_local_references(plan, full_urls)
        except FhirError as exc:
            answers[i] = failed(at_entry(exc, i))
            continue
        plans.append(plan)
    writes = [p for p in plans if p.method != "GET"]
    if writes:
        async with write_lock(viewer.ctx):
            await _write(viewer, writes, checks, answers)
    invalid = await checks.all()
    reads = [p for p in plans if p.method == "GET" and p.index not in invalid]
    if reads:
        await _read(dataclasses.replace(reader, viewer=_fresh(viewer), _views={}), reads, answers)
    for i, error in invalid.items():
        answers[i] = failed(error)
    return {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [answers[i] for i in range(len(entries))],
    }


def _fresh(viewer: Viewer) -> Viewer:
    """A view of the hub after the batch's writes, for its reads."""
    return Viewer(viewer.ctx, viewer.agency, viewer.purpose)


async def _write(
    viewer: Viewer, plans: list[Plan], checks: EntryChecks, answers: dict[int, dict[str, Any]]
) -> None:
    """Plan each write entry as a part of one :class:`Batch` (a part that fails is undone
    alone), then store the parts, each group in a savepoint of its own."""
    await read_ahead_identifiers(viewer, patient_identifier_criteria(plans))
    planning = -1
    if checks.pending:

        async def validated() -> None:
            """The first gate decision waits for the validation: none is made for an
            entry that turns out invalid."""
            error = (await checks.all()).get(planning)
            if error is not None:
                raise error

        viewer.before_disclosure = validated
    batch = Batch(viewer)
    parts: list[Part] = []
    for plan in plans:
        if plan.index in (checks.now() or {}):
            continue
        planning = plan.index
        batch.begin_part(plan.index)
        try:
            await apply_plan(batch, plan)
        except FhirError as exc:
            batch.undo_part()
            answers[plan.index] = failed(at_entry(exc, plan.index))
            continue
        except Exception as exc:
            batch.undo_part()
            # What an invalid entry's data made fail is no error of the hub: the entry
            # answers its validation errors.
            if plan.index not in (await checks.all() if checks.pending else {}):
                answers[plan.index] = _not_done(viewer, plan.index, exc, "FHIR batch entry failed")
            continue
        parts.append(batch.end_part())
    planning = -1
    outcomes: dict[int, Outcome] = {p.index: p.outcomes[-1] for p in parts}
    check = None
    if checks.pending:
        invalid = checks.now()
        if invalid is None:  # still under way: each group waits for it before it commits
            check = _group_check(checks)
        else:  # known already: the groups of invalid entries are not even tried
            parts = _valid_groups(parts, invalid, answers)
    for indices, error in await batch.commit_parts(parts, check):
        if error is None:
            for i in indices:
                answers[i] = {"response": entry_response(outcomes[i])}
            continue
        invalid = await checks.all() if isinstance(error, FhirError) else {}
        at_fault = next((i for i in indices if i in invalid), None)
        for i in indices:
            if at_fault is None:
                answers[i] = _not_done(viewer, i, error, "FHIR batch entry not stored")
            elif i != at_fault:
                answers[i] = failed(_not_stored(i, at_fault))


def _valid_groups(
    parts: list[Part], invalid: Mapping[int, FhirError], answers: dict[int, dict[str, Any]]
) -> list[Part]:
    """The parts of the groups without an invalid entry; the other parts of a group with
    one answer 409 (the invalid entry answers its validation errors)."""
    kept: list[Part] = []
    for group in part_groups(parts):
        at_fault = next((p.index for p in group if p.index in invalid), None)
        if at_fault is None:
            kept.extend(group)
            continue
        for part in group:
            if part.index != at_fault:
                answers[part.index] = failed(_not_stored(part.index, at_fault))
    kept.sort(key=lambda p: p.index)
    return kept


def _group_check(checks: EntryChecks) -> Callable[[tuple[int, ...]], Awaitable[None]]:
    """Before a group of entries commits: all of them are valid (else the first one's
    validation error rolls the group back)."""

    async def check(indices: tuple[int, ...]) -> None:
        """Raise the validation error of the first invalid entry among ``indices``."""
        invalid = await checks.all()
        for i in indices:
            if i in invalid:
                raise invalid[i]

    return check


def _not_stored(index: int, at_fault: int) -> FhirError:
    where = f"Bundle.entry[{index}]"
    return FhirError.of(
        409,
        "conflict",
        f"{where}: not stored: it changes what Bundle.entry[{at_fault}] changes, which failed",
        where,
    )


def _not_done(viewer: Viewer, index: int, exc: Exception, message: str) -> dict[str, Any]:
    """The answer of an entry an unexpected error stopped (logged by type and entry index
    only; the other entries go on)."""
    log.error(message, extra={"entry": index, "error_type": type(exc).__name__})
    metrics = getattr(viewer.ctx, "metrics", None)
    if metrics is not None:
        metrics.errors.labels("fhir", type(exc).__name__).inc()
    where = f"Bundle.entry[{index}]"
    issue = Issue("exception", f"{where}: the hub could not complete this entry", (where,))
    return failed(FhirError(500, [issue]))


async def _read(reader: Reader, plans: list[Plan], answers: dict[int, dict[str, Any]]) -> None:
    """Each GET entry as the REST API's GET of its URL answers it: the resource, or the
    very OperationOutcome the plain GET answers (a hidden resource is not found)."""
    for plan in plans:
        try:
            answer = await read_url(reader, plan.url)
        except FhirError as exc:
            response = failed(exc)
            answers[plan.index] = response
            continue
        result: dict[str, Any] = {"status": status_text(200)}
        stored = answer.stored
        if stored is not None:
            result["location"] = f"{stored.type}/{stored.id}/_history/{stored.version}"
            result["etag"] = stored.etag
            if stored.last_updated:
                result["lastModified"] = stored.last_updated
        answers[plan.index] = {"resource": answer.resource, "response": result}
