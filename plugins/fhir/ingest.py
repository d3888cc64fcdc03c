"""FHIR Bundle ingest: the one entry point for transaction Bundles (API and benchmark).

``ingest_bundle(ctx, agency, bundle_bytes)`` parses the JSON once (orjson), validates the
Bundle once with the ``fhir.resources.R4B`` model (its entries with it), maps Patients to
dict-based canonical Client records and stores everything in one engine call, i.e. one store
transaction. It returns the transaction-response Bundle (a dict).
"""

from __future__ import annotations

import asyncio
from typing import Any

from plugins.fhir.access import Viewer
from plugins.fhir.transaction import run_transaction
from plugins.fhir.validation import parse_json, validate_bundle

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

    Raises :class:`plugins.fhir.outcome.FhirError` (nothing stored) when any entry is bad.
    """
    data = parse_json(bundle_bytes, "Bundle")
    validate_bundle(data)
    viewer = Viewer(ctx, agency, purpose)
    async with write_lock(ctx):
        return await run_transaction(viewer, data)
