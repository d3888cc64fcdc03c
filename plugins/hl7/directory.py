"""Which configured agency an HL7 provider or facility id names (PRD, referral parties).

Agencies may list identifiers in ``hub.toml`` (OIDs, NPIs …); an id found in a message is
matched against them and against the agency ids themselves. OIDs match with or without the
``urn:oid:`` prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_OID_PREFIX = "urn:oid:"


def _forms(value: str) -> tuple[str, ...]:
    value = value.strip()
    if not value:
        return ()
    if value.lower().startswith(_OID_PREFIX):
        return (value, value[len(_OID_PREFIX) :])
    if value[0].isdigit() and all(c.isdigit() or c == "." for c in value) and "." in value:
        return (value, _OID_PREFIX + value)
    return (value,)


class AgencyDirectory:
    """Look up agency ids by the identifiers the configuration gives them."""

    def __init__(self, agencies: Mapping[str, Any] | None = None) -> None:
        self._by_value: dict[str, str] = {}
        for agency_id, agency in (agencies or {}).items():
            self._by_value.setdefault(agency_id, agency_id)
            for _system, value in getattr(agency, "identifiers", ()):
                for form in _forms(str(value)):
                    self._by_value.setdefault(form, agency_id)

    def match(self, candidates: Iterable[str]) -> str | None:
        """The agency id the first matching candidate names, or None."""
        for candidate in candidates:
            for form in _forms(candidate):
                found = self._by_value.get(form)
                if found is not None:
                    return found
        return None

    def resolve(self, candidates: Iterable[str]) -> str:
        """The matching agency id, else the first non-empty candidate as given, else ''."""
        values = [c.strip() for c in candidates if c and c.strip()]
        return self.match(values) or (values[0] if values else "")
