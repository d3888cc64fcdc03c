"""The fixed vocabularies of the MPA consent policy: categories, purposes, agency kinds."""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "identity",
    "demographics",
    "housing",
    "services",
    "income",
    "health",
    "behavioral_health",
    "substance_use",
    "hiv",
    "dv",
)
"""Every category a field of a record can carry, in a stable order."""

SENSITIVE_CATEGORIES: frozenset[str] = frozenset(
    {"behavioral_health", "substance_use", "hiv", "dv"}
)
"""Categories released only when the consent opts them in (``sensitive``)."""

DEFAULT_CATEGORIES: frozenset[str] = frozenset(CATEGORIES) - SENSITIVE_CATEGORIES
"""What a check asks for when no categories are named: every non-sensitive category."""

ALL_CATEGORIES: frozenset[str] = frozenset(CATEGORIES)
"""``CATEGORIES`` as a set, for membership tests."""

SUBSTANCE_USE = "substance_use"
"""The category 42 CFR Part 2 governs (extra recipient rule)."""

PURPOSES: tuple[str, ...] = (
    "coordination",
    "referral",
    "treatment",
    "eligibility",
    "payment",
    "operations",
    "research",
    "marketing",
)
"""Every purpose of use a disclosure can be asked for."""

NEVER_PERMITTED_PURPOSES: frozenset[str] = frozenset({"research", "marketing"})
"""Purposes the MPA never covers, whatever the consent lists."""

PART2_TPO_PURPOSES: frozenset[str] = frozenset({"treatment", "payment", "operations"})
"""Purposes for which a health or Part 2 recipient may receive substance-use data."""

AGENCY_KINDS: tuple[str, ...] = ("hmis", "cie", "health", "part2", "vsp")
"""Kinds of agency: HMIS, CIE partner, HIPAA covered entity, Part 2 program, victim service."""

PART2_RECIPIENT_KINDS: frozenset[str] = frozenset({"health", "part2"})
"""Agency kinds that may receive substance-use data for treatment, payment or operations."""

NETWORKS: tuple[str, ...] = ("hmis", "cie")
"""Trust networks an agency can belong to and a consent can cover."""

METHODS: tuple[str, ...] = ("written", "electronic", "verbal")
"""How a consent was given."""

GIVEN_BY: tuple[str, ...] = ("client", "guardian")
"""Who gave a consent."""
