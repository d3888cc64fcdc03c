"""FHIR Bundle ingest: the one entry point for transaction and batch Bundles (API and
benchmark).

``ingest_bundle(ctx, agency, bundle_bytes)`` parses the JSON once (orjson), validates the
Bundle once with the ``fhir.resources.R4B`` model (its entries with it; a large Bundle in a
worker process, see :mod:`plugins.fhir.validation_pool`), maps Patients to dict-based
canonical Client records and stores everything in one engine call, i.e. one store
transaction. It returns the transaction-response Bundle (a dict). A batch Bundle
(:mod:`plugins.fhir.batch`) is validated entry by entry instead, and answered with a
batch-response Bundle.
"""

from __future__ import annotations

from typing import Any

from plugins.fhir.access import ScopeCheck, Viewer
from plugins.fhir.batch import EntryChecks, run_batch
from plugins.fhir.outcome import FhirError
from plugins.fhir.reads import Reader
from plugins.fhir.settings import SECTION, settings_of
from plugins.fhir.transaction import bundle_entries, run_transaction
from plugins.fhir.validation import (
    check_entries,
    parse_json,
    validate_batch_shell,
    validate_bundle,
)
from plugins.fhir.validation_pool import OFFLOAD_MIN_ENTRIES, running_pool
from plugins.fhir.writes import WRITE_LOCK, write_lock

__all__ = [
    "READ_METHODS",
    "WRITE_LOCK",
    "ScopeCheck",
    "apply_bundle",
    "check_entry_scopes",
    "ingest_bundle",
    "write_lock",
]


async def ingest_bundle(
    ctx: Any, agency: str, bundle_bytes: bytes, *, purpose: str = "coordination"
) -> dict[str, Any]:
    """Validate and apply a transaction (or batch) Bundle sent by ``agency``; the response
    Bundle.

    With a running validation pool (``hub serve``) a large Bundle is validated in a worker
    process while it is mapped and stored here, in a transaction that commits only once the
    validation has passed; otherwise it is validated first. Either way nothing is stored
    from an invalid Bundle, and its validation errors are the ones reported.

    Raises :class:`plugins.fhir.outcome.FhirError` (nothing stored) when any entry of a
    transaction is bad.
    """
    return await apply_bundle(Viewer(ctx, agency, purpose), bundle_bytes)


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
    viewer: Viewer,
    bundle_bytes: bytes,
    *,
    allows: ScopeCheck | None = None,
    reader: Reader | None = None,
) -> dict[str, Any]:
    """:func:`ingest_bundle` for a caller's view (``POST /fhir/`` calls this); with
    ``allows`` (a SMART token's scopes), every entry must be within them. ``reader`` says
    how the GET entries of a batch read (default: ``[fhir]`` settings, relative links)."""
    ctx = viewer.ctx
    data = parse_json(bundle_bytes, "Bundle")
    if allows is not None:
        check_entry_scopes(data, allows)
    if isinstance(data, dict) and data.get("type") == "batch":
        return await _apply_batch(viewer, data, bundle_bytes, reader, allows)
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


async def _apply_batch(
    viewer: Viewer,
    data: dict[str, Any],
    bundle_bytes: bytes,
    reader: Reader | None,
    allows: ScopeCheck | None,
) -> dict[str, Any]:
    """A batch Bundle: the Bundle checked as a whole, each entry validated on its own (a
    large batch in a worker, while the hub plans and stores it)."""
    entries = validate_batch_shell(data)
    bundle_entries(data, "batch")  # too many entries: refused before any validation
    pool = running_pool(viewer.ctx)
    if pool is None or len(entries) < OFFLOAD_MIN_ENTRIES:
        checks = EntryChecks(check_entries(entries))
    else:
        checks = EntryChecks(running=pool.check_entries(bundle_bytes))
    if reader is None:
        settings = settings_of(viewer.ctx.config.section(SECTION))
        reader = Reader(viewer, settings.base_url, settings, allows=allows)
    try:
        return await run_batch(viewer, data, checks, reader)
    finally:
        checks.cancel()


def _entry_count(data: Any) -> int:
    entries = data.get("entry") if isinstance(data, dict) else None
    return len(entries) if isinstance(entries, list) else 0
