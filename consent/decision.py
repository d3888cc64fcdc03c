"""The gate's answer: an outcome, what is released and withheld, and why."""

from __future__ import annotations

from typing import Literal

from consent.value_types import value_type

Outcome = Literal["permit", "permit-redacted", "deny"]
"""The three outcomes of a decision."""

PERMIT: Outcome = "permit"
"""Outcome: everything asked for is released."""
PERMIT_REDACTED: Outcome = "permit-redacted"
"""Outcome: part of what was asked for is released, the rest withheld."""
DENY: Outcome = "deny"
"""Outcome: nothing is released."""

# Reason codes, in the order of the CONSENT.md rules. A plain permit has no reason.
SAME_AGENCY = "SAME_AGENCY"
"""Rule 1: the recipient owns the record; not a disclosure."""
RECIPIENT_UNKNOWN = "RECIPIENT_UNKNOWN"
"""Rule 2: the recipient is not an agency of the network."""
RECIPIENT_NOT_ACTIVE = "RECIPIENT_NOT_ACTIVE"
"""Rule 2: the recipient does not participate at the time of the decision."""
OWNER_UNKNOWN = "OWNER_UNKNOWN"
"""Rule 3 cannot be checked: the owner is not an agency (fail closed)."""
VSP_RECORD = "VSP_RECORD"
"""Rule 3: records of a victim service provider never leave it (VAWA)."""
NO_CONSENT = "NO_CONSENT"
"""Rule 4: the client has no consent."""
CONSENT_REVOKED = "CONSENT_REVOKED"
"""Rule 5: the consent in force was revoked on or before the decision date."""
CONSENT_EXPIRED = "CONSENT_EXPIRED"
"""Rule 5: the consent in force expired on or before the decision date."""
CONSENT_NOT_YET_VALID = "CONSENT_NOT_YET_VALID"
"""Rule 5: the client's only consents are signed after the decision date."""
MINOR_NEEDS_GUARDIAN = "MINOR_NEEDS_GUARDIAN"
"""Rule 6: a minor signed for themselves."""
GUARDIAN_CONSENT_LAPSED = "GUARDIAN_CONSENT_LAPSED"
"""Rule 6: a guardian signed, and the client has come of age since."""
AGE_UNKNOWN = "AGE_UNKNOWN"
"""Rule 6 note: no birth date known; the client is presumed an adult."""
OUT_OF_NETWORK_SCOPE = "OUT_OF_NETWORK_SCOPE"
"""Rule 7: the recipient belongs to none of the networks the consent covers."""
AGENCY_EXCLUDED = "AGENCY_EXCLUDED"
"""Rule 8: the consent names the recipient in ``exclude_agencies``."""
PURPOSE_NOT_PERMITTED = "PURPOSE_NOT_PERMITTED"
"""Rule 9: the purpose is not in the consent, or is research or marketing."""
CATEGORY_UNKNOWN = "CATEGORY_UNKNOWN"
"""Rule 10 (fail closed): a category asked for is not one of ``CATEGORIES``; withheld."""
REDACTED_SENSITIVE = "REDACTED_SENSITIVE"
"""Rule 10: a sensitive category the consent does not opt in; withheld."""
VERBAL_NOT_ACCEPTED = "VERBAL_NOT_ACCEPTED"
"""Rule 10: a sensitive category under a verbal consent; withheld."""
PART2_RECIPIENT_NOT_NAMED = "PART2_RECIPIENT_NOT_NAMED"
"""Rule 10: substance-use data to a recipient neither named nor a health/Part 2 TPO user."""
DV_LOCATION_WITHHELD = "DV_LOCATION_WITHHELD"
"""Rule 10: the client is fleeing DV; address and location fields are withheld."""
NOTHING_LEFT = "NOTHING_LEFT"
"""Rule 11: every category asked for was withheld."""

REASON_CODES: tuple[str, ...] = (
    SAME_AGENCY,
    RECIPIENT_UNKNOWN,
    RECIPIENT_NOT_ACTIVE,
    OWNER_UNKNOWN,
    VSP_RECORD,
    NO_CONSENT,
    CONSENT_REVOKED,
    CONSENT_EXPIRED,
    CONSENT_NOT_YET_VALID,
    MINOR_NEEDS_GUARDIAN,
    GUARDIAN_CONSENT_LAPSED,
    AGE_UNKNOWN,
    OUT_OF_NETWORK_SCOPE,
    AGENCY_EXCLUDED,
    PURPOSE_NOT_PERMITTED,
    CATEGORY_UNKNOWN,
    REDACTED_SENSITIVE,
    VERBAL_NOT_ACCEPTED,
    PART2_RECIPIENT_NOT_NAMED,
    DV_LOCATION_WITHHELD,
    NOTHING_LEFT,
)
"""Every reason code, in rule order (the order reasons appear in a decision)."""


@value_type
class Decision:
    """The outcome of one consent decision.

    ``released`` and ``redacted`` are disjoint subsets of the categories asked for; on a
    deny ``released`` is empty and ``redacted`` holds everything asked for.
    ``location_withheld`` tells the caller to drop address and location fields even from
    released categories (a client fleeing domestic violence).
    """

    outcome: Outcome
    released: frozenset[str]
    redacted: frozenset[str]
    reasons: tuple[str, ...]
    consent_id: str | None
    location_withheld: bool = False

    @property
    def permitted(self) -> bool:
        """Whether anything is released (``permit`` or ``permit-redacted``)."""
        return self.outcome != DENY

    def to_json(self) -> dict[str, object]:
        """The ``hub consent check`` JSON object (sorted category lists)."""
        return {
            "decision": self.outcome,
            "released": sorted(self.released),
            "redacted": sorted(self.redacted),
            "reasons": list(self.reasons),
            "consent_id": self.consent_id,
        }
