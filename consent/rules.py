"""The MPA decision: CONSENT.md rules 1-11, in order, first deny wins.

Conventions (all dates are compared with the calendar day of ``request.at`` in the
policy's ``timezone``, the network's; with the default UTC, in ``at``'s own zone):

- The consent in force is the client's consent with the latest ``signed_on`` on or before
  the decision date. Consents signed after it are not in force yet: a newer, future-dated
  consent does not displace an older valid one until its signing date; when every consent
  is future-dated the answer is ``CONSENT_NOT_YET_VALID``. Two consents signed the same
  day: a revoked one wins over an unrevoked one, then the greatest ``id``, then (the
  same id twice, a data error) the greater JSON form: the answer never depends on the
  order consents are passed in.
- ``revoked_on`` on or before the decision date revokes; the day of expiry is expired.
- Ages use birthday arithmetic; someone born on 29 February comes of age on 1 March in
  non-leap years. A guardian's consent lapses when the client comes of age after
  ``signed_on`` (on or before the decision date). With no birth date known the client is
  presumed an adult and ``AGE_UNKNOWN`` is noted (for a guardian's consent it notes that
  the lapse could not be checked).
- A birth date known only to the year or month (``ClientFacts.birth_date_latest`` set) is
  read the way that fails closed: the client's own consent counts only once even the
  latest possible birthday has made them an adult; a guardian's consent lapses as soon as
  any possible birthday after ``signed_on`` may have done so. (One date cannot serve both:
  the latest end alone would keep a guardian's consent for up to a year after the client
  may have come of age, the earliest would take a possible minor's own consent.)
- Per category, the first failing check of rule 10 names the reason. Unknown categories
  are withheld (``CATEGORY_UNKNOWN``). Withheld location (DV) makes a permit
  ``permit-redacted`` even when no whole category is withheld.
- Denies by rules 2-9 carry one reason; ``NOTHING_LEFT`` carries the notes and the
  redaction reasons that led to it. A plain permit has no reason, or only ``AGE_UNKNOWN``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import MAXYEAR, date, datetime

from consent.categories import (
    ALL_CATEGORIES,
    DEFAULT_CATEGORIES,
    NEVER_PERMITTED_PURPOSES,
    PART2_RECIPIENT_KINDS,
    PART2_TPO_PURPOSES,
    SENSITIVE_CATEGORIES,
    SUBSTANCE_USE,
)
from consent.decision import (
    AGE_UNKNOWN,
    AGENCY_EXCLUDED,
    CATEGORY_UNKNOWN,
    CONSENT_EXPIRED,
    CONSENT_NOT_YET_VALID,
    CONSENT_REVOKED,
    DENY,
    DV_LOCATION_WITHHELD,
    GUARDIAN_CONSENT_LAPSED,
    MINOR_NEEDS_GUARDIAN,
    NO_CONSENT,
    NOTHING_LEFT,
    OUT_OF_NETWORK_SCOPE,
    OWNER_UNKNOWN,
    PART2_RECIPIENT_NOT_NAMED,
    PERMIT,
    PERMIT_REDACTED,
    PURPOSE_NOT_PERMITTED,
    RECIPIENT_NOT_ACTIVE,
    RECIPIENT_UNKNOWN,
    REDACTED_SENSITIVE,
    SAME_AGENCY,
    VERBAL_NOT_ACCEPTED,
    VSP_RECORD,
    Decision,
)
from consent.model import Agency, ConsentPolicy, ConsentRecord, DecisionRequest

_EMPTY: frozenset[str] = frozenset()
_NO_REASONS: tuple[str, ...] = ()
_AGE_UNKNOWN: tuple[str, ...] = (AGE_UNKNOWN,)
_REDACTION_ORDER: tuple[str, ...] = (
    CATEGORY_UNKNOWN,
    REDACTED_SENSITIVE,
    VERBAL_NOT_ACCEPTED,
    PART2_RECIPIENT_NOT_NAMED,
)


def _recency(consent: ConsentRecord) -> tuple[date, bool, str]:
    """Greater is newer: a later signing day, then a revoked consent, then the greater id."""
    return (consent.signed_on, consent.revoked_on is not None, consent.id)


def _newer(a: ConsentRecord, b: ConsentRecord) -> bool:
    """Whether ``a`` replaces ``b``; a total order, so the input order never matters."""
    ka, kb = _recency(a), _recency(b)
    if ka != kb:
        return ka > kb
    # The same id signed the same day twice (a data error): still decide the same way.
    fa = json.dumps(a.to_json(), sort_keys=True)
    fb = json.dumps(b.to_json(), sort_keys=True)
    return fa > fb


def _select(
    consents: Sequence[ConsentRecord], day: date
) -> tuple[ConsentRecord | None, ConsentRecord | None]:
    """The consent in force on ``day`` and the latest consent signed after it."""
    current: ConsentRecord | None = None
    future: ConsentRecord | None = None
    for consent in consents:
        if consent.signed_on <= day:
            if current is None or _newer(consent, current):
                current = consent
        elif future is None or _newer(consent, future):
            future = consent
    return current, future


def consent_in_force(consents: Sequence[ConsentRecord], at: datetime) -> ConsentRecord | None:
    """The consent that rule 4 applies at ``at``: latest ``signed_on`` on or before it.

    It may still be revoked or expired (rule 5); None when no consent was signed by then.
    """
    return _select(consents, at.date())[0]


def _coming_of_age(birth: date, years: int) -> date:
    """The day someone born on ``birth`` turns ``years`` (29 Feb -> 1 Mar in other years)."""
    year = birth.year + years
    if year > MAXYEAR:
        return date.max
    try:
        return birth.replace(year=year)
    except ValueError:  # 29 February in a non-leap year
        return date(year, 3, 1)


def _deny(request: DecisionRequest, reason: str, consent_id: str | None = None) -> Decision:
    """A deny for rules 2-9: nothing released, everything asked for withheld."""
    return Decision(DENY, _EMPTY, request.categories, (reason,), consent_id)


def _category_reason(
    category: str,
    consent: ConsentRecord,
    recipient: Agency,
    recipient_id: str,
    purpose: str,
    policy: ConsentPolicy,
) -> str | None:
    """Rule 10 for one category: the reason to withhold it, or None to release it."""
    if category not in SENSITIVE_CATEGORIES:
        return None if category in ALL_CATEGORIES else CATEGORY_UNKNOWN
    if category not in consent.sensitive:
        return REDACTED_SENSITIVE
    if consent.method == "verbal" and not policy.accept_verbal_sensitive:
        return VERBAL_NOT_ACCEPTED
    if (
        category == SUBSTANCE_USE
        and recipient_id not in consent.part2_recipients
        and not (recipient.kind in PART2_RECIPIENT_KINDS and purpose in PART2_TPO_PURPOSES)
    ):
        return PART2_RECIPIENT_NOT_NAMED
    return None


def _by_category(
    request: DecisionRequest,
    consent: ConsentRecord,
    recipient: Agency,
    policy: ConsentPolicy,
    notes: tuple[str, ...],
) -> Decision:
    """Rules 10 and 11: release, redact, or deny when nothing is left."""
    asked = request.categories
    if asked and asked <= DEFAULT_CATEGORIES:  # the common case: nothing sensitive
        released, redacted, reasons = asked, _EMPTY, notes
    else:
        withheld: list[str] = []
        codes: set[str] = set()
        for category in asked:
            code = _category_reason(
                category, consent, recipient, request.recipient, request.purpose, policy
            )
            if code is not None:
                withheld.append(category)
                codes.add(code)
        redacted = frozenset(withheld) if withheld else _EMPTY
        released = asked - redacted if withheld else asked
        reasons = notes + tuple(code for code in _REDACTION_ORDER if code in codes)
        if not released:
            return Decision(DENY, _EMPTY, asked, (*reasons, NOTHING_LEFT), consent.id)
    if request.client.fleeing_dv:
        reasons = (*reasons, DV_LOCATION_WITHHELD)
        return Decision(PERMIT_REDACTED, released, redacted, reasons, consent.id, True)
    outcome = PERMIT_REDACTED if redacted else PERMIT
    return Decision(outcome, released, redacted, reasons, consent.id)


def evaluate(
    request: DecisionRequest,
    consents: Sequence[ConsentRecord],
    agencies: Mapping[str, Agency],
    policy: ConsentPolicy,
) -> Decision:
    """Decide whether ``request.recipient`` may see ``request.categories`` of the record.

    ``consents`` are all the consents of the record's client. Pure and deterministic: the
    same arguments always give the same decision, whatever the order of ``consents``.
    """
    request = _in_local_time(request, policy)
    # 1. Not a disclosure.
    if request.recipient == request.owner:
        return Decision(PERMIT, request.categories, _EMPTY, (SAME_AGENCY,), None)
    # 2. The recipient must be a participating agency.
    recipient = agencies.get(request.recipient)
    if recipient is None:
        return _deny(request, RECIPIENT_UNKNOWN)
    if not recipient.is_active(request.at):
        return _deny(request, RECIPIENT_NOT_ACTIVE)
    # 3. VAWA: a victim service provider's records never leave it.
    owner = agencies.get(request.owner)
    if owner is None:
        return _deny(request, OWNER_UNKNOWN)
    if owner.kind == "vsp":
        return _deny(request, VSP_RECORD)
    return _under_consent(request, consents, recipient, policy)


def evaluate_consent(
    request: DecisionRequest,
    consents: Sequence[ConsentRecord],
    agencies: Mapping[str, Agency],
    policy: ConsentPolicy,
) -> Decision:
    """What the client's consent lets ``request.recipient`` see, whoever holds the data:
    rule 2 and rules 4–11, without the rules about one record's owner (1 and 3).

    For a consent consult, which asks about a client rather than a record: no agency's
    own records are implied (``request.owner`` is not read), so no ``SAME_AGENCY`` permit
    passes a consent that is revoked, expired or excludes the recipient.
    """
    request = _in_local_time(request, policy)
    recipient = agencies.get(request.recipient)
    if recipient is None:
        return _deny(request, RECIPIENT_UNKNOWN)
    if not recipient.is_active(request.at):
        return _deny(request, RECIPIENT_NOT_ACTIVE)
    return _under_consent(request, consents, recipient, policy)


def _in_local_time(request: DecisionRequest, policy: ConsentPolicy) -> DecisionRequest:
    """The request with its time in the network's zone, whose calendar days the rules use."""
    local = policy.local(request.at)
    return request if local is request.at else dataclasses.replace(request, at=local)


def _under_consent(
    request: DecisionRequest,
    consents: Sequence[ConsentRecord],
    recipient: Agency,
    policy: ConsentPolicy,
) -> Decision:
    """Rules 4–11: the consent in force, and what it releases to ``recipient``."""
    at = request.at
    # 4. The consent in force.
    day = at.date()
    consent, future = _select(consents, day)
    if consent is None:
        if future is None:
            return _deny(request, NO_CONSENT)
        return _deny(request, CONSENT_NOT_YET_VALID, future.id)
    # 5. Revocation and expiry (the day of either counts).
    if consent.revoked_on is not None and consent.revoked_on <= day:
        return _deny(request, CONSENT_REVOKED, consent.id)
    if consent.expires_on <= day:
        return _deny(request, CONSENT_EXPIRED, consent.id)
    # 6. Age and who signed.
    birth = request.client.birth_date
    if birth is None:
        notes = _AGE_UNKNOWN
    else:
        notes = _NO_REASONS
        # A partial birth date is a range [birth, latest]: each test takes the end that
        # denies (see the module docstring).
        latest = request.client.birth_date_latest or birth
        majority = _coming_of_age(latest, policy.age_of_majority)
        if consent.given_by == "client":
            if day < majority:
                return _deny(request, MINOR_NEEDS_GUARDIAN, consent.id)
        elif consent.signed_on < majority and _coming_of_age(birth, policy.age_of_majority) <= day:
            return _deny(request, GUARDIAN_CONSENT_LAPSED, consent.id)
    # 7. Network scope.
    if recipient.networks.isdisjoint(consent.networks):
        return _deny(request, OUT_OF_NETWORK_SCOPE, consent.id)
    # 8. Agencies the client excluded.
    if request.recipient in consent.exclude_agencies:
        return _deny(request, AGENCY_EXCLUDED, consent.id)
    # 9. Purpose.
    purpose = request.purpose
    if purpose not in consent.purposes or purpose in NEVER_PERMITTED_PURPOSES:
        return _deny(request, PURPOSE_NOT_PERMITTED, consent.id)
    # 10-11. Per category.
    return _by_category(request, consent, recipient, policy, notes)
