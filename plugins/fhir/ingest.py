"""FHIR Bundle ingest: the one entry point for transaction Bundles (API and benchmark).

``ingest_bundle(ctx, agency, bundle_bytes)`` parses the JSON once (orjson), validates the
Bundle once with the ``fhir.resources.R4B`` model (its entries with it; a large Bundle in a
worker process, see :mod:`plugins.fhir.validation_pool`), maps Patients to dict-based
canonical Client records and stores everything in one engine call, i.e. one store
transaction. It returns the transaction-response Bundle (a dict).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from plugins.fhir.access import Viewer
from plugins.fhir.outcome import FhirError
from plugins.fhir.transaction import run_transaction
from plugins.fhir.validation import parse_json, validate_bundle
from plugins.fhir.validation_pool import OFFLOAD_MIN_ENTRIES, running_pool

WRITE_LOCK = "fhir_write_lock"


def write_lock(ctx: Any) -> asyncio.Lock:
    """The lock that serialises FHIR writes of one hub process (read-check-write of
    versions and Task status must not interleave)."""
    lock = ctx.extras.get(WRITE_LOCK)
    if lock is None:
        lock = ctx.extras[WRITE_LOCK] = asyncio.Lock()
    return lock  # type: ignore[no-any-return]


async def ingest_bundle(
    ctx: Any, agency: str, bundle_bytes: bytes, *, purpose: str = "coordination"
) -> dict[str, Any]:
    """Validate and apply a transaction Bundle sent by ``agency``; the response Bundle.

    With a running validation pool (``hub serve``) a large Bundle is validated in a worker
    process while it is mapped and stored here, in a transaction that commits only once the
    validation has passed; otherwise it is validated first. Either way nothing is stored
    from an invalid Bundle, and its validation errors are the ones reported.

    Raises :class:`plugins.fhir.outcome.FhirError` (nothing stored) when any entry is bad.
    """
    return await apply_bundle(Viewer(ctx, agency, purpose), bundle_bytes)


ScopeCheck = Callable[[str, bool], bool]
"""Whether the caller may read (False) or write (True) resources of a FHIR type."""

READ_METHODS = frozenset({"GET", "HEAD"})


def check_entry_scopes(data: Any, allows: ScopeCheck) -> None:
    """Raise a 403 :class:`FhirError` naming the first entry the caller's scopes do not cover
    (its type from its resource, else from its request URL; a GET entry reads, any other
    method writes). Malformed entries are left to the Bundle's validation."""
    entries = data.get("entry") if isinstance(data, dict) else None
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue
        request = entry.get("request")
        method = request.get("method") if isinstance(request, dict) else None
        resource = entry.get("resource")
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(rtype, str) and isinstance(request, dict):
            url = request.get("url")
            rtype = url.split("?")[0].split("/")[0] if isinstance(url, str) else None
        if not isinstance(rtype, str) or not rtype:
            continue
        write = str(method).upper() not in READ_METHODS
        if not allows(rtype, write):
            access = "write" if write else "read"
            raise FhirError.of(
                403,
                "forbidden",
                f"entry {index}: the access token's scopes do not allow {access} of {rtype}",
            )


async def apply_bundle(
    viewer: Viewer, bundle_bytes: bytes, *, allows: ScopeCheck | None = None
) -> dict[str, Any]:
    """:func:`ingest_bundle` for a caller's view (``POST /fhir/`` calls this); with
    ``allows`` (a SMART token's scopes), every entry must be within them."""
    ctx = viewer.ctx
    data = parse_json(bundle_bytes, "Bundle")
    if allows is not None:
        check_entry_scopes(data, allows)
    pool = running_pool(ctx)
    if pool is None or _entry_count(data) < OFFLOAD_MIN_ENTRIES:
        validate_bundle(data)
        async with write_lock(ctx):
            return await run_transaction(viewer, data)
    checked = pool.check(bundle_bytes)

    async def validated() -> None:
        await checked

    # Creates of new Patients (the bulk of a large Bundle) overlap the validation; a gate
    # decision (a conditional write matching a stored client) waits for it.
    viewer.before_disclosure = validated
    try:
        async with write_lock(ctx):
            return await run_transaction(viewer, data, validated)
    except Exception:
        # An invalid Bundle is answered with its validation errors, as when it is validated
        # first, whatever its unvalidated data made fail on the way.
        await checked
        raise
    finally:
        checked.cancel()


def _entry_count(data: Any) -> int:
    entries = data.get("entry") if isinstance(data, dict) else None
    return len(entries) if isinstance(entries, list) else 0
