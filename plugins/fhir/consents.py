"""Stored FHIR Consents for the LEAP-compatible consent consult.

The hub's ``POST /cds-services/patient-consent-consult`` (in ``hub/``) calls
``ctx.extras["fhir_consents_for"](ctx, patient_ids, at)`` — :func:`fhir_consents_for` — to get
the Consent resources partners posted for a patient. A Consent is the patient's when its
``patient`` names one of the identifiers by ``Reference.identifier``, or when it is linked to
a Client record of the person those identifiers find. The resources come back with
``patient.identifier`` set to the matching requested identifier, so an evaluator that checks
the patient itself (``evaluate_fhir_consents(patient_ids=...)``) matches them too.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime
from typing import Any

from hub.core.identity import identifier_value_key
from plugins.fhir.consent_mapping import MIRROR_PREFIX, consent_patient_identifiers, mirror_id
from plugins.fhir.patients import identifier_keys, persons_with
from plugins.fhir.repo import Repository
from plugins.fhir.systems import canonical_system


def _matching(
    wanted: Sequence[tuple[str, str]],
    got: Sequence[tuple[str, str]],
    unique_values: Collection[str],
) -> tuple[str, str] | None:
    """The first wanted identifier the Consent's patient names. Systems must match
    (canonically); a value without a system matches only another value without one, and
    only when at most one person carries it (``unique_values``), as the gate decides."""
    for system, value in wanted:
        for g_system, g_value in got:
            if value != g_value:
                continue
            if system and g_system:
                if canonical_system(system) == canonical_system(g_system):
                    return system, value
            elif not system and not g_system and value in unique_values:
                return system, value
    return None


async def _unique_values(ctx: Any, wanted: Sequence[tuple[str, str]]) -> set[str]:
    """The system-less wanted values that at most one person in the hub carries."""
    unique: set[str] = set()
    for value in {v for s, v in wanted if not s}:
        if len(await persons_with(ctx, [ctx.keys.blind(identifier_value_key(value))])) <= 1:
            unique.add(value)
    return unique


async def _revoked_mirrors(ctx: Any, day: date) -> set[str]:
    """The ids of the MPA copies of FHIR Consents revoked on or before ``day`` (the gate's
    consents, brought up to date first: a revocation may come from another process)."""
    async with ctx.store.transaction() as tx:
        await ctx.gate.refresh(tx)
    return {
        c.id
        for c in ctx.gate.all_consents()
        if c.id.startswith(MIRROR_PREFIX) and c.revoked_on is not None and c.revoked_on <= day
    }


async def fhir_consents_for(
    ctx: Any, patient_ids: list[tuple[str, str]], at: datetime | None = None
) -> list[dict[str, Any]]:
    """The stored FHIR Consent resources about the patient these identifiers name, but
    those whose MPA copy (:func:`mirror_id`) is revoked on or before ``at`` (default: now):
    ``hub consent revoke`` revokes the copy, not the stored resource.

    Fails closed on an ambiguous request: a Consent linked to a Client record is found only
    when the identifiers find exactly one person.
    """
    wanted = [(str(s or ""), str(v)) for s, v in patient_ids if v]
    if not wanted:
        return []
    revoked = await _revoked_mirrors(ctx, (at or datetime.now(UTC)).date())
    keys = [
        k
        for system, value in wanted
        for k in identifier_keys(ctx.keys.blind, f"{system}|{value}" if system else value)
    ]
    persons = await persons_with(ctx, keys)
    unique = await _unique_values(ctx, wanted)
    repo = Repository(ctx.store)
    consents = await repo.all("Consent")
    linked = await repo.persons_of([c.client for c in consents if c.client is not None])
    out: list[dict[str, Any]] = []
    for stored in consents:
        if mirror_id(str(stored.resource.get("id"))) in revoked:
            continue
        match = _matching(wanted, consent_patient_identifiers(stored.resource), unique)
        if (
            match is None
            and len(persons) == 1
            and stored.client is not None
            and linked.get(stored.client) in persons
        ):
            match = wanted[0]
        if match is None:
            continue
        resource = dict(stored.resource)
        ident = {"system": match[0], "value": match[1]} if match[0] else {"value": match[1]}
        patient = resource.get("patient")
        resource["patient"] = {
            **(patient if isinstance(patient, dict) else {}),
            "identifier": ident,
        }
        out.append(resource)
    return out
