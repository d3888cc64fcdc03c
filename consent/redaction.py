"""Applying a decision to a record's fields: keep only what was released."""

from __future__ import annotations

from collections.abc import Mapping

from consent.decision import Decision


def redact(
    fields: Mapping[str, object],
    field_categories: Mapping[str, str],
    decision: Decision,
    location_fields: frozenset[str] = frozenset(),
) -> dict[str, object]:
    """The fields of a record that ``decision`` lets leave its owner.

    A field is kept only when its category (from ``field_categories``) was released; a
    field with no category is dropped (fail closed). When the decision withholds location,
    ``location_fields`` are dropped whatever their category.
    """
    released = decision.released
    if not released:
        return {}
    if decision.location_withheld and location_fields:
        return {
            name: value
            for name, value in fields.items()
            if field_categories.get(name) in released and name not in location_fields
        }
    return {name: value for name, value in fields.items() if field_categories.get(name) in released}
