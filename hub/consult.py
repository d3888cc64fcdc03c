"""LEAP-compatible consent decision service (CDS Hooks ``patient-consent-consult``).

Evaluates the client's MPA consent (the gate's policy, without the rules about one record's
owner) and, only when the MPA holds no consent at all for the client, the FHIR R4 Consent
resources partners posted to ``/fhir/Consent``. The answer is one card whose summary is
``CONSENT_PERMIT``, ``CONSENT_DENY`` or ``NO_CONSENT``; it never reveals more than that (no
consent ids, no person ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from consent import (
    ClientFacts,
    ConsentRecord,
    DecisionRequest,
    FhirConsentError,
    evaluate_consent,
    evaluate_fhir_consents,
    mpa_to_leap,
)
from consent.categories import DEFAULT_CATEGORIES, PURPOSES
from hub.context import HubContext
from hub.core.identity import identifier_key
from hub.web import CONTEXT, json_error, json_response

SERVICE_ID = "patient-consent-consult"

# v3-ActReason purpose-of-use codes → MPA purposes.
PURPOSE_CODES: dict[str, str] = {
    "TREAT": "treatment",
    "ETREAT": "treatment",
    "HPAYMT": "payment",
    "HOPERAT": "operations",
    "COC": "coordination",
    "CAREMGT": "coordination",
    "HRESCH": "research",
    "HMARKT": "marketing",
    "ELIG": "eligibility",
    "REFERRAL": "referral",
}

AGENCY_SYSTEM = "urn:cie-hub:agency"

# A purpose no consent can list (consents list known MPA purposes only): a purpose of use
# that maps to none, or none given, is denied by rule 9, never read as a permitted one.
UNMAPPED_PURPOSE = ""

INDICATORS = {"CONSENT_PERMIT": "info", "CONSENT_DENY": "critical", "NO_CONSENT": "warning"}
"""Card indicator per summary, as LEAP sets it."""


class ConsultError(ValueError):
    """A consult request that cannot be evaluated; ``field`` names the bad context field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"context.{field}: {problem}")
        self.field = field


def _identifiers(value: Any, field: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("value"), str):
            raise ConsultError(field, "expected a list of {system, value} objects")
        out.append((str(item.get("system") or ""), item["value"]))
    return out


def _scope(context: Mapping[str, Any]) -> str:
    scope = context.get("scope")
    if isinstance(scope, str) and scope:
        return scope
    category = context.get("category")
    if isinstance(category, list):
        for concept in category:
            codings = concept.get("coding", [concept]) if isinstance(concept, Mapping) else []
            for coding in codings:
                if isinstance(coding, Mapping) and coding.get("code"):
                    return str(coding["code"])
    raise ConsultError("scope", "required (scope, or category codings)")


def _purpose_code(item: Any) -> str | None:
    """The code of one purposeOfUse item: a string, a Coding ``{code}`` or a
    CodeableConcept ``{coding: [{code}]}`` (its first coding with a code)."""
    if isinstance(item, str):
        return item or None
    if not isinstance(item, Mapping):
        return None
    codings = item.get("coding", item)
    for coding in codings if isinstance(codings, list) else [codings]:
        if isinstance(coding, Mapping) and isinstance(coding.get("code"), str) and coding["code"]:
            return str(coding["code"])
    return None


def _purpose(context: Mapping[str, Any]) -> tuple[str | None, str]:
    """(the v3 code as sent, or None; the MPA purpose it maps to, or ``UNMAPPED_PURPOSE``)."""
    raw = context.get("purposeOfUse")
    items = raw if isinstance(raw, list) else [raw]
    code = next((c for c in map(_purpose_code, items) if c is not None), None)
    if code is None:
        return None, UNMAPPED_PURPOSE
    mpa = PURPOSE_CODES.get(code.upper()) or (code if code in PURPOSES else UNMAPPED_PURPOSE)
    return code, mpa


def actor_agencies(ctx: HubContext, actors: Sequence[tuple[str, str]]) -> list[str]:
    """Configured agencies that any of the actor identifiers names."""
    found: list[str] = []
    for agency in ctx.config.agencies.values():
        ids = {(s, v) for s, v in agency.identifiers} | {(AGENCY_SYSTEM, agency.id)}
        if any(a in ids or (not a[0] and a[1] == agency.id) for a in actors):
            found.append(agency.id)
    return found


async def consult(ctx: HubContext, body: Mapping[str, Any], at: datetime) -> str:
    """The card summary for one consult request body."""
    context = body.get("context")
    if not isinstance(context, Mapping):
        raise ConsultError("patientId", "required (the request has no context object)")
    if "patientId" not in context:
        raise ConsultError("patientId", "required")
    patients = _identifiers(context.get("patientId"), "patientId")
    if not patients:
        raise ConsultError("patientId", "required")
    scope = _scope(context)
    actors = _identifiers(context.get("actor"), "actor")
    code, purpose = _purpose(context)

    if scope == "patient-privacy":
        client = await _mpa_client(ctx, patients)
        if client is not None:
            return _mpa_summary(ctx, client, actors, purpose, at)
    fetch = ctx.extras.get("fhir_consents_for")
    if fetch is None:
        return "NO_CONSENT"
    resources: list[Mapping[str, Any]] = await fetch(ctx, patients, at)
    resolver = ctx.extras.get("fhir_resolve_actor") or (lambda ref: _resolve_org(ctx, ref))
    try:
        return evaluate_fhir_consents(
            resources,
            patient_ids=[],
            scope=scope,
            purpose=code,
            actor_ids=actors,
            resolve_actor=resolver,
            at=at,
        )
    except FhirConsentError:
        return "NO_CONSENT"


def _resolve_org(ctx: HubContext, reference: str) -> list[tuple[str, str]]:
    kind, _, ident = reference.partition("/")
    agency = ctx.config.agencies.get(ident) if kind == "Organization" else None
    if agency is None:
        return []
    return [(AGENCY_SYSTEM, agency.id), *agency.identifiers]


async def _mpa_client(
    ctx: HubContext, patients: Sequence[tuple[str, str]]
) -> tuple[tuple[ConsentRecord, ...], ClientFacts] | None:
    """The MPA consents and facts of the one person the identifiers name, or None when the
    MPA has no consent at all for the client (person unknown or without consents)."""
    keys = [ctx.keys.blind(identifier_key(s, v)) for s, v in patients if s]
    async with ctx.store.transaction() as tx:
        found = await tx.persons_with_keys(keys) if keys else {}
        persons = sorted(set().union(*found.values())) if found else []
        if len(persons) != 1:
            return None
        consents = await ctx.gate.consents_for(tx, persons[0])
        if not consents:
            return None
        return consents, await ctx.gate.facts(tx, persons[0])


def _mpa_summary(
    ctx: HubContext,
    client: tuple[Sequence[ConsentRecord], ClientFacts],
    actors: Sequence[tuple[str, str]],
    purpose: str,
    at: datetime,
) -> str:
    """The summary of the client's MPA consents for every actor agency (deny wins)."""
    consents, facts = client
    recipients = actor_agencies(ctx, actors)
    if not recipients:
        return "CONSENT_DENY"
    # A consult asks about the client, not about one agency's record: no owner, so neither
    # SAME_AGENCY nor VSP_RECORD applies (the gate applies both to every real disclosure).
    summaries = {
        mpa_to_leap(
            evaluate_consent(
                DecisionRequest(facts, "", recipient, purpose, DEFAULT_CATEGORIES, at),
                consents,
                ctx.gate.agencies,
                ctx.gate.policy,
            )
        )
        for recipient in recipients
    }
    for summary in ("CONSENT_DENY", "CONSENT_PERMIT"):
        if summary in summaries:
            return summary
    return "NO_CONSENT"


def card(summary: str) -> dict[str, Any]:
    """The CDS Hooks response with one card."""
    return {
        "cards": [
            {
                "summary": summary,
                "indicator": INDICATORS.get(summary, "warning"),
                "source": {"label": "CIE Hub consent decision service"},
                "extension": {"decision": summary},
            }
        ]
    }


async def discovery(request: web.Request) -> web.Response:
    """``GET /cds-services``: the services offered."""
    return json_response(
        {
            "services": [
                {
                    "hook": SERVICE_ID,
                    "id": SERVICE_ID,
                    "title": "Patient consent consult",
                    "description": "Decides whether an actor may access a patient's data "
                    "under the client's MPA consent or FHIR Consent resources.",
                    "prefetch": {},
                }
            ]
        }
    )


async def consult_handler(request: web.Request) -> web.Response:
    """``POST /cds-services/patient-consent-consult``."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return json_error(400, "invalid_json", "the request body is not valid JSON")
    if not isinstance(body, Mapping):
        return json_error(400, "invalid_request", "the request body must be a JSON object")
    try:
        summary = await consult(request.app[CONTEXT], body, datetime.now(UTC))
    except ConsultError as exc:
        return json_error(400, "invalid_request", str(exc))
    request.app[CONTEXT].metrics.decisions.labels(summary).inc()
    return json_response(card(summary))


def add_consult_routes(app: web.Application) -> None:
    """Register the discovery and consult endpoints."""
    app.router.add_get("/cds-services", discovery)
    app.router.add_post(f"/cds-services/{SERVICE_ID}", consult_handler)
