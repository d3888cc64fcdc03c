"""``hub keys rotate-index``: a new blind-index key, and every blinded value made again with
it, offline (no other hub may use the store meanwhile).

The key file and the store change in an order a crash at any point survives:

1. the new key is written to the key file as ``pending_index_key`` (the active
   ``index_key`` still blinds: a crash here changes nothing, and a second run takes the
   pending key up again);
2. one store transaction replaces every match key and consent client value with the new
   key's, and records the new key's check value;
3. the key file's pending key becomes its ``index_key`` (the old key is dropped).

A crash between 2 and 3 leaves a store whose check value is the pending key's: the next
hub to open it (:func:`hub.context.checked_keys`), or a second run of this, promotes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hub.context import HubContext, consent_client_value
from hub.core.identity import BlindIndex, match_keys
from hub.core.ports import RecordRow
from hub.core.records import Client
from hub.core.rows import row_to_record
from hub.keys import KeyRing

NEW_INDEX_KEY_BYTES = 32
"""The length of a generated blind-index key."""


def client_match_keys(blind: BlindIndex) -> Callable[[RecordRow], Sequence[str]]:
    """The match keys the engine indexes for a stored record, blinded with ``blind``: those
    of :func:`hub.core.identity.match_keys` for a client record, none for another kind."""

    def keys(row: RecordRow) -> Sequence[str]:
        record = row_to_record(row)
        return match_keys(record, blind).all() if isinstance(record, Client) else ()

    return keys


def stored_consent_value(ctx: HubContext, blind: BlindIndex) -> Callable[[bytes], str]:
    """The blinded client value a stored consent body is kept with, blinded with ``blind``
    (as :meth:`HubContext.import_consents` stores it)."""

    def value(body: bytes) -> str:
        return consent_client_value(ctx.gate.parse_stored(body), blind)

    return value


def _summary(
    ring: KeyRing, counts: dict[str, int] | None = None, *, resumed: bool
) -> dict[str, Any]:
    """What ``hub keys rotate-index`` prints: the new key's check value (never the key),
    what was re-blinded, and whether an interrupted rotation was taken up."""
    counts = counts or {}
    return {
        "index_key_check": ring.index_check,
        "person_keys": counts.get("person_keys", 0),
        "person_keys_before": counts.get("person_keys_before", 0),
        "client_records": counts.get("client_records", 0),
        "consents": counts.get("consents", 0),
        "unreadable": counts.get("unreadable", 0),
        "resumed": resumed,
    }


async def rotate_index(ctx: HubContext, path: Path, before: KeyRing) -> dict[str, Any]:
    """Rotate the blind-index key of the key file at ``path`` (read as ``before`` ahead of
    opening ``ctx``, whose opening may already have promoted an interrupted rotation's key)
    and re-blind the store; returns the summary printed.

    Raises :class:`hub.store.StoreError` (nothing changed) when another hub uses the store.
    """
    ring = ctx.keys
    interrupted = before.pending_index_key
    if interrupted is not None and ring.index_key == interrupted:
        return _summary(ring, resumed=True)  # the store was re-keyed: opening promoted it
    await ctx.store.hold_alone()
    pending = ring.with_pending_index_key(
        ring.pending_index_key or secrets.token_bytes(NEW_INDEX_KEY_BYTES)
    )
    if ring.pending_index_key is None:
        pending.write(path)
    new = pending.promoted()
    counts = await ctx.store.reblind(
        ring.index_check,
        new.index_check,
        client_match_keys(new.blind),
        stored_consent_value(ctx, new.blind),
    )
    new.write(path)
    return _summary(new, counts, resumed=ring.pending_index_key is not None)
