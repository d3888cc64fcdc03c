"""The value objects of the consent engine: agencies, consent records, policy, requests.

All are frozen, slotted dataclasses. Client identifier values and birth dates are kept out
of ``repr`` so that they never reach a log line or an exception message by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from consent.categories import AGENCY_KINDS, GIVEN_BY, METHODS, NETWORKS
from consent.value_types import value_type

_T = TypeVar("_T")

DEFAULT_NETWORKS: frozenset[str] = frozenset({"hmis", "cie"})
"""Networks a consent record covers when it names none."""

DEFAULT_PURPOSES: frozenset[str] = frozenset(
    {"coordination", "referral", "treatment", "eligibility"}
)
"""Purposes a consent record permits when it names none."""


@dataclass(frozen=True, slots=True)
class Agency:
    """An organisation of the network.

    ``active_from`` and ``active_until`` bound participation by date, both inclusive:
    an agency with ``active_until = 2025-06-30`` is active all of that day.
    """

    id: str
    name: str
    kind: str
    networks: frozenset[str]
    active: bool = True
    active_from: date | None = None
    active_until: date | None = None
    identifiers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("agency: field 'id' must be a non-empty string")
        if self.kind not in AGENCY_KINDS:
            raise ValueError(f"agency {self.id}: field 'kind': unknown kind {self.kind!r}")
        unknown = sorted(self.networks.difference(NETWORKS))
        if unknown:
            raise ValueError(f"agency {self.id}: field 'networks': unknown network {unknown[0]!r}")
        if (
            self.active_from is not None
            and self.active_until is not None
            and self.active_until < self.active_from
        ):
            raise ValueError(f"agency {self.id}: field 'active_until' is before 'active_from'")

    def is_active(self, at: datetime) -> bool:
        """Whether the agency participates at ``at`` (dates compared with ``at.date()``)."""
        if not self.active:
            return False
        if self.active_from is None and self.active_until is None:
            return True
        day = at.date()
        if self.active_from is not None and day < self.active_from:
            return False
        return self.active_until is None or day <= self.active_until


@dataclass(frozen=True, slots=True)
class ClientRef:
    """How a consent names its client: an identifier value, optionally in a system."""

    system: str | None
    value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One MPA consent, validated, with ``expires_on`` already resolved.

    ``recorded_by`` is the empty string when the record does not say who recorded it.
    """

    id: str
    client: ClientRef
    signed_on: date
    expires_on: date
    method: str = "written"
    given_by: str = "client"
    networks: frozenset[str] = DEFAULT_NETWORKS
    exclude_agencies: frozenset[str] = frozenset()
    sensitive: frozenset[str] = frozenset()
    part2_recipients: frozenset[str] = frozenset()
    purposes: frozenset[str] = DEFAULT_PURPOSES
    revoked_on: date | None = None
    recorded_by: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"consent {self.id}: field 'method': unknown method {self.method!r}")
        if self.given_by not in GIVEN_BY:
            raise ValueError(
                f"consent {self.id}: field 'given_by': unknown value {self.given_by!r}"
            )
        if self.expires_on < self.signed_on:
            raise ValueError(f"consent {self.id}: field 'expires_on' is before 'signed_on'")
        if self.revoked_on is not None and self.revoked_on < self.signed_on:
            raise ValueError(f"consent {self.id}: field 'revoked_on' is before 'signed_on'")

    def to_json(self) -> dict[str, object]:
        """The record in the CONSENT.md JSON shape (ISO dates, sorted lists)."""
        client: dict[str, object] = {"value": self.client.value}
        if self.client.system is not None:
            client = {"system": self.client.system, "value": self.client.value}
        return {
            "id": self.id,
            "client": client,
            "signed_on": self.signed_on.isoformat(),
            "expires_on": self.expires_on.isoformat(),
            "method": self.method,
            "given_by": self.given_by,
            "networks": sorted(self.networks),
            "exclude_agencies": sorted(self.exclude_agencies),
            "sensitive": sorted(self.sensitive),
            "part2_recipients": sorted(self.part2_recipients),
            "purposes": sorted(self.purposes),
            "revoked_on": None if self.revoked_on is None else self.revoked_on.isoformat(),
            "recorded_by": self.recorded_by or None,
        }


_POLICY_KEYS = frozenset(
    {"default_term_days", "age_of_majority", "accept_verbal_sensitive", "timezone"}
)


def _typed(m: Mapping[str, object], key: str, typ: type[_T], default: _T) -> _T:
    """``m[key]`` checked to be exactly of ``typ`` (a bool is not an int here)."""
    value = m.get(key, default)
    if isinstance(value, typ) and (typ is bool or not isinstance(value, bool)):
        return value
    raise ValueError(
        f"consent policy: key {key!r} must be {typ.__name__}, not {type(value).__name__}"
    )


@dataclass(frozen=True, slots=True)
class ConsentPolicy:
    """The configurable numbers and switches of the policy (``[consent]`` in hub.toml)."""

    default_term_days: int = 1095
    age_of_majority: int = 18
    accept_verbal_sensitive: bool = False
    timezone: str = "UTC"
    """The network's time zone: the calendar day of a decision (signing, expiry and
    revocation days, birthdays, an agency's active dates) is the day there."""

    def __post_init__(self) -> None:
        if self.default_term_days < 1:
            raise ValueError("consent policy: key 'default_term_days' must be at least 1")
        if self.age_of_majority < 0:
            raise ValueError("consent policy: key 'age_of_majority' must not be negative")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"consent policy: key 'timezone': unknown time zone {self.timezone!r} "
                "(an IANA name such as 'America/Los_Angeles')"
            ) from None

    def local(self, at: datetime) -> datetime:
        """``at`` in the network's time zone (a naive ``at``, or the UTC default: as given,
        its date read in its own zone)."""
        if self.timezone == "UTC" or at.tzinfo is None:
            return at
        return at.astimezone(ZoneInfo(self.timezone))

    @classmethod
    def from_mapping(cls, m: Mapping[str, object]) -> ConsentPolicy:
        """Build a policy from a config table; unknown keys or wrong types raise ValueError."""
        unknown = sorted(set(m).difference(_POLICY_KEYS))
        if unknown:
            raise ValueError(f"consent policy: unknown key {unknown[0]!r}")
        d = cls()
        return cls(
            default_term_days=_typed(m, "default_term_days", int, d.default_term_days),
            age_of_majority=_typed(m, "age_of_majority", int, d.age_of_majority),
            accept_verbal_sensitive=_typed(
                m, "accept_verbal_sensitive", bool, d.accept_verbal_sensitive
            ),
            timezone=_typed(m, "timezone", str, d.timezone),
        )


@value_type
class ClientFacts:
    """What the hub knows about the client that the rules need (never shown in repr).

    A birth date known only to the year or month is a range: ``birth_date`` is its first
    day and ``birth_date_latest`` its last (None: ``birth_date`` is exact). The rules read
    such a range the way that fails closed (see :mod:`consent.rules`).
    """

    birth_date: date | None = field(default=None, repr=False)
    fleeing_dv: bool = field(default=False, repr=False)
    birth_date_latest: date | None = field(default=None, repr=False)


@value_type
class DecisionRequest:
    """One question to the gate: may ``recipient`` see these categories of ``owner``'s record."""

    client: ClientFacts
    owner: str
    recipient: str
    purpose: str
    categories: frozenset[str]
    at: datetime
