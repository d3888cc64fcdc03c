"""Feeds: which partner wants which records, for what purpose, in which format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.core.records import Record


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One subscription of a recipient agency.

    ``categories`` is the minimum necessary the feed asks for (None: every non-sensitive
    category); ``connector`` names the sink that delivers it (``webhook``, ``fhir-push``,
    ``hl7-mllp``, ``csv-file`` …); ``options`` are the sink's own settings.
    ``person_has`` selects only persons with a record of one of those kinds (e.g. clients
    with an ADT ``encounter``); ``where`` selects records whose field has one of the values
    (a list field: one of whose values is one of them).
    """

    name: str
    recipient: str
    kinds: frozenset[str]
    purpose: str
    connector: str
    categories: frozenset[str] | None = None
    schedule: str = "on-change"
    owners: frozenset[str] = frozenset()
    person_has: frozenset[str] = frozenset()
    where: Mapping[str, frozenset[str]] = field(default_factory=dict)
    batch_size: int = 100
    max_attempts: int = 8
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def on_change(self) -> bool:
        """Whether records are queued as they arrive (else on the feed's schedule)."""
        return self.schedule == "on-change"

    def wants(self, record: Record, person_kinds: Sequence[str] = ()) -> bool:
        """Whether this feed selects the record."""
        meta = record.meta
        if meta.kind not in self.kinds or meta.deleted:
            return False
        if self.owners and meta.owner not in self.owners:
            return False
        if self.person_has and not self.person_has.intersection(person_kinds):
            return False
        for name, allowed in self.where.items():
            value = getattr(record, name, None)
            if value is None and hasattr(record, "fields"):
                value = record.fields.get(name)
            if isinstance(value, tuple | list | set | frozenset):
                # A list field (a referral's service codes, a client's race) matches when
                # one of its values is allowed.
                if not any(str(v) in allowed for v in value):
                    return False
            elif str(value) not in allowed:
                return False
        return True
