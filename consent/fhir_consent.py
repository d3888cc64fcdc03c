"""LEAP-compatible evaluation of FHIR R4 Consent resources (plain JSON dicts).

A consent takes part in the decision when it is ``active``, its scope (``scope`` codings,
or ``category`` codings of the consentscope system as newer versions carry it) has the
requested code, it is for the patient, ``provision.period`` contains ``at`` and it has a
computable base decision: the root ``provision.type``, else ``policyRule`` OPTIN (permit)
or OPTOUT (deny). Anything else is ``NO_CONSENT``. Of the consents that take part, the
most recent ``dateTime`` wins (a consent without one is the oldest; on a tie, deny wins).

Provisions: conditions set on the root provision (other than its period) limit what the
consent covers: a request they do not match is not covered by that consent. Nested
provisions are exceptions that flip their parent's decision (their own ``type`` is not
consulted); siblings combine as OR, and when matched siblings resolve differently, deny
wins. An attribute left empty matches anything. ``actor`` matches when any identifier of
any referenced organisation or practitioner (``resolve_actor(reference)``, plus a
logical ``reference.identifier``) equals any request actor identifier. ``purpose``
matches by code (v3-ActReason, e.g. ``TREAT``). ``period`` must contain ``at``.
``action`` is not consulted (a consult always asks about access/disclosure).

Fail closed where the request cannot tell: the content attributes (``securityLabel``,
``class``, ``code``, ``data``, ``dataPeriod``), a provision purpose when the request has
none, and a provision actor when the request names no actor, are undetermined; an
undetermined provision applies when applying it can only deny, and not otherwise.

Patient: with ``patient_ids`` empty the consents are taken as already filtered for the
patient by the caller. Otherwise ``Consent.patient`` must carry (``identifier``) or
resolve to (``resolve_actor(reference)``) one of ``patient_ids``.

Dates: FHIR partial dates (``2024``, ``2024-05``, ``2024-05-01``) cover their whole span
and are read in ``at``'s time zone (UTC when ``at`` is naive); a malformed date raises
``FhirConsentError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from consent.decision import (
    CONSENT_EXPIRED,
    CONSENT_NOT_YET_VALID,
    CONSENT_REVOKED,
    NO_CONSENT,
    Decision,
)

LeapDecision = Literal["CONSENT_PERMIT", "CONSENT_DENY", "NO_CONSENT"]
"""The summary of a LEAP ``patient-consent-consult`` card."""

LEAP_PERMIT: LeapDecision = "CONSENT_PERMIT"
"""Card summary: access is permitted."""
LEAP_DENY: LeapDecision = "CONSENT_DENY"
"""Card summary: access is denied by a consent."""
LEAP_NO_CONSENT: LeapDecision = "NO_CONSENT"
"""Card summary: no applicable consent."""

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
"""Code system of Consent scopes (``patient-privacy``, ``adr``, ...)."""
POLICY_RULE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
"""Code system of the OPTIN / OPTOUT policy rules."""
PURPOSE_SYSTEMS: frozenset[str | None] = frozenset(
    {
        None,
        "http://terminology.hl7.org/CodeSystem/v3-ActReason",
        "http://terminology.hl7.org/ValueSet/v3-PurposeOfUse",
        "http://terminology.hl7.org/CodeSystem/v3-PurposeOfUse",
    }
)
"""Systems a provision purpose coding may use (none: code only)."""

_CONTENT_ATTRIBUTES = ("securityLabel", "class", "code", "data", "dataPeriod")
_FHIR_DATETIME = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)
_NO_CONSENT_REASONS = frozenset(
    {NO_CONSENT, CONSENT_REVOKED, CONSENT_EXPIRED, CONSENT_NOT_YET_VALID}
)

Identifier = tuple[str, str]
Resolver = Callable[[str], Sequence[Identifier]]
Match = bool | None  # None: the request cannot tell


class FhirConsentError(ValueError):
    """A Consent resource that cannot be evaluated (names the consent id and element)."""


class _Context:
    """One request, prepared once for all consents and provisions."""

    __slots__ = ("actors", "at", "consent_id", "purpose", "resolve", "zone")

    def __init__(
        self, actors: frozenset[Identifier], purpose: str | None, resolve: Resolver, at: datetime
    ):
        self.zone: tzinfo = at.tzinfo or UTC
        self.at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        self.actors = actors
        self.purpose = purpose
        self.resolve = resolve
        self.consent_id = "?"

    def fail(self, element: str, problem: str) -> FhirConsentError:
        """The error for an element of the consent being evaluated."""
        return FhirConsentError(f"Consent/{self.consent_id}: element {element!r}: {problem}")

    def span(self, value: object, element: str) -> tuple[datetime, datetime]:
        """The half-open instant range [start, end) a FHIR date/dateTime covers."""
        match = _FHIR_DATETIME.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.fail(element, "not a FHIR dateTime")
        try:
            year = int(match["y"])
            if match["m"] is None:
                return _until(datetime(year, 1, 1, tzinfo=self.zone), "year")
            month = int(match["m"])
            if match["d"] is None:
                return _until(datetime(year, month, 1, tzinfo=self.zone), "month")
            if match["time"] is None:
                return _until(datetime(year, month, int(match["d"]), tzinfo=self.zone), "day")
            instant = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise self.fail(element, "impossible date") from None
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=self.zone)
        return _until(instant, "instant")

    def within(self, period: object, element: str) -> bool:
        """Whether ``at`` falls inside a FHIR Period (open ends allowed)."""
        if period is None:
            return True
        if not isinstance(period, Mapping):
            raise self.fail(element, "not a Period")
        start, end = period.get("start"), period.get("end")
        if start is not None and self.at < self.span(start, f"{element}.start")[0]:
            return False
        return end is None or self.at < self.span(end, f"{element}.end")[1]


def _until(start: datetime, unit: str) -> tuple[datetime, datetime]:
    """[start, end) of the year, month, day or instant starting at ``start``; a span that
    ends past the last representable instant (year 9999, "forever") is open-ended."""
    try:
        if unit == "year":
            return start, start.replace(year=start.year + 1)
        if unit == "month":
            nxt = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
            return start, nxt
        step = timedelta(days=1) if unit == "day" else timedelta(microseconds=1)
        return start, start + step
    except (OverflowError, ValueError):
        return start, _END_OF_TIME


def _list(value: object) -> Sequence[object]:
    """A JSON list, a single value as a one-item list, or nothing."""
    if value is None:
        return ()
    if isinstance(value, list):
        return value
    return (value,)


def _codings(value: object) -> list[tuple[str | None, str]]:
    """(system, code) of Codings or CodeableConcepts, one or a list of them."""
    found: list[tuple[str | None, str]] = []
    for item in _list(value):
        if not isinstance(item, Mapping):
            continue
        codings = item.get("coding")
        for coding in _list(codings) if codings is not None else (item,):
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                system = coding.get("system")
                found.append((system if isinstance(system, str) else None, coding["code"]))
    return found


def _reference_ids(reference: object, resolve: Resolver) -> set[Identifier]:
    """Identifiers a Reference names: its logical identifier and what its target carries."""
    ids: set[Identifier] = set()
    if not isinstance(reference, Mapping):
        return ids
    ident = reference.get("identifier")
    if isinstance(ident, Mapping):
        system, value = ident.get("system"), ident.get("value")
        if isinstance(system, str) and isinstance(value, str):
            ids.add((system, value))
    literal = reference.get("reference")
    if isinstance(literal, str) and literal:
        ids.update(resolve(literal))
    return ids


def _scope_matches(consent: Mapping[str, object], scope: str) -> bool:
    """Whether the consent's scope (or consentscope category) has the requested code."""
    for system, code in _codings(consent.get("scope")):
        if code == scope and system in (None, CONSENT_SCOPE_SYSTEM):
            return True
    return (CONSENT_SCOPE_SYSTEM, scope) in _codings(consent.get("category"))


def _patient_matches(
    consent: Mapping[str, object], patient_ids: frozenset[Identifier], resolve: Resolver
) -> bool:
    """Whether ``Consent.patient`` names one of the patient's identifiers."""
    return not patient_ids.isdisjoint(_reference_ids(consent.get("patient"), resolve))


def _base_decision(consent: Mapping[str, object], root: Mapping[str, object]) -> str | None:
    """permit / deny from the root provision type, else OPTIN / OPTOUT; None if neither."""
    kind = root.get("type")
    if kind in ("permit", "deny"):
        return str(kind)
    for system, code in _codings(consent.get("policyRule")):
        if system in (None, POLICY_RULE_SYSTEM):
            if code == "OPTIN":
                return "permit"
            if code == "OPTOUT":
                return "deny"
    return None


def _matches(provision: Mapping[str, object], ctx: _Context) -> Match:
    """Whether the request meets a provision's conditions (None: cannot tell)."""
    result: Match = True
    actors = _list(provision.get("actor"))
    if actors:
        if not ctx.actors:
            result = None
        elif not any(
            not ctx.actors.isdisjoint(_reference_ids(actor.get("reference"), ctx.resolve))
            for actor in actors
            if isinstance(actor, Mapping)
        ):
            return False
    purposes = _codings(provision.get("purpose"))
    if purposes:
        if ctx.purpose is None:
            result = None
        elif not any(c == ctx.purpose and s in PURPOSE_SYSTEMS for s, c in purposes):
            return False
    if any(provision.get(name) for name in _CONTENT_ATTRIBUTES):
        result = None
    return result


def _resolve(provision: Mapping[str, object], decision: str, ctx: _Context, path: str) -> str:
    """The decision of an applying provision once its nested exceptions are considered."""
    flipped = "deny" if decision == "permit" else "permit"
    outcomes: set[str] = set()
    for i, child in enumerate(_list(provision.get("provision"))):
        if not isinstance(child, Mapping):
            raise ctx.fail(f"{path}.provision[{i}]", "not a provision")
        child_path = f"{path}.provision[{i}]"
        if not ctx.within(child.get("period"), f"{child_path}.period"):
            continue
        applies = _matches(child, ctx)
        if applies is None:
            applies = flipped == "deny"
        if applies:
            outcomes.add(_resolve(child, flipped, ctx, child_path))
    if not outcomes:
        return decision
    return "deny" if "deny" in outcomes else "permit"


def _consent_decision(consent: Mapping[str, object], ctx: _Context) -> str | None:
    """permit / deny of one in-force consent, or None when it does not cover the request."""
    root = consent.get("provision") or {}
    if not isinstance(root, Mapping):
        raise ctx.fail("provision", "not a provision")
    if not ctx.within(root.get("period"), "provision.period"):
        return None
    base = _base_decision(consent, root)
    if base is None:
        return None
    covered = _matches(root, ctx)
    if covered is None:
        covered = base == "deny"
    return _resolve(root, base, ctx, "provision") if covered else None


def evaluate_fhir_consents(
    consents: Sequence[Mapping[str, object]],
    *,
    patient_ids: Sequence[Identifier],
    scope: str,
    purpose: str | None,
    actor_ids: Sequence[Identifier],
    resolve_actor: Resolver,
    at: datetime,
) -> LeapDecision:
    """The LEAP card summary for a request, given the stored Consent resources.

    ``resolve_actor`` maps a literal reference (``Organization/1``, ``Practitioner/2``,
    ``Patient/3``) to the identifiers of its target; it returns nothing for an unknown one.
    """
    ctx = _Context(frozenset(actor_ids), purpose, resolve_actor, at)
    patients = frozenset(patient_ids)
    best: tuple[datetime, bool] | None = None
    for consent in consents:
        if consent.get("resourceType", "Consent") != "Consent":
            continue
        if consent.get("status") != "active" or not _scope_matches(consent, scope):
            continue
        if patients and not _patient_matches(consent, patients, resolve_actor):
            continue
        ctx.consent_id = str(consent.get("id", "?"))
        decision = _consent_decision(consent, ctx)
        if decision is None:
            continue
        stamp = consent.get("dateTime")
        when = datetime.min.replace(tzinfo=UTC) if stamp is None else ctx.span(stamp, "dateTime")[0]
        candidate = (when, decision == "deny")  # on equal times, deny sorts last and wins
        if best is None or candidate > best:
            best = candidate
    if best is None:
        return LEAP_NO_CONSENT
    return LEAP_DENY if best[1] else LEAP_PERMIT


def mpa_to_leap(decision: Decision) -> LeapDecision:
    """The LEAP summary for an MPA decision.

    Permits (redacted or not) are ``CONSENT_PERMIT``. A deny because there is no consent
    in force (none, revoked, expired, not yet valid) is ``NO_CONSENT``, as LEAP answers
    for inactive, expired and not-yet-valid consents; every other deny is ``CONSENT_DENY``.
    """
    if decision.permitted:
        return LEAP_PERMIT
    if not _NO_CONSENT_REASONS.isdisjoint(decision.reasons):
        return LEAP_NO_CONSENT
    return LEAP_DENY
