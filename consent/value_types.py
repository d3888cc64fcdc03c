"""Value types that are immutable to the type checker and cost no more to build than
plain objects.

A ``@dataclass(frozen=True)`` sets each field in ``__init__`` through
``object.__setattr__`` (about 60 ns a field, against 8 for a plain slot), to get past the
``__setattr__`` that makes it frozen at run time. Building them was 4.7 µs of each
delivered record's 32 µs send-time check, more than half of it the gate's own values: the
decision, its audit entry and stored row, the client's facts (docs/performance.md, session 13).

:func:`value_type` gives a slotted dataclass that mypy treats as frozen (an assignment to a
field is a type error, PEP 681) and that hashes and compares by value like a frozen one,
but that does not refuse an assignment at run time. The types are only ever changed with
``dataclasses.replace``, as before. It is for the gate's own values built on a hot path
(decisions, audit entries, client facts); what plugins are handed (records, their meta,
deliveries) stays ``frozen=True``, as plugin code need not be type-checked with the hub.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def value_type(cls: type[T]) -> type[T]:
    """A slotted dataclass, frozen for the type checker, hashed and compared by value."""
    return dataclasses.dataclass(slots=True, unsafe_hash=True)(cls)
