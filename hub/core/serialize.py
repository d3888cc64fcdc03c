"""Canonical records to and from plain JSON-able dicts (what the store keeps as a payload).

The conversion is driven by the dataclass field types, resolved once per class, so adding a
field to a record needs no change here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import cache
from typing import Any

from hub.core.records import (
    RECORD_TYPES,
    Address,
    ContactPoint,
    HumanName,
    Identifier,
    Record,
    RecordMeta,
    SourceKey,
    SourceRow,
)

_NESTED: dict[type[Any], Any] = {
    SourceKey: SourceKey,
    Identifier: Identifier,
    HumanName: HumanName,
    Address: Address,
    ContactPoint: ContactPoint,
}

Decoder = Callable[[Any], Any]


def _to_json(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_to_json(v) for v in value)
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) != f.default
        }
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _decoder(tp: Any) -> Decoder:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        dec = _decoder(inner[0])
        return lambda v: None if v is None else dec(v)
    if origin is tuple:
        item = _decoder(typing.get_args(tp)[0])
        return lambda v: tuple(item(x) for x in v)
    if origin is frozenset:
        return lambda v: frozenset(v)
    if tp is date:
        return date.fromisoformat
    if tp is datetime:
        return datetime.fromisoformat
    if tp in _NESTED:
        fields = _field_decoders(tp)
        return lambda v: tp(**{k: fields[k](x) for k, x in v.items() if k in fields})
    if origin is not None and issubclass(origin, Mapping):
        return lambda v: dict(v)
    return lambda v: v


@cache
def _field_decoders(cls: Any) -> dict[str, Decoder]:
    hints = typing.get_type_hints(cls)
    return {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(cls) if f.name != "meta"}


def record_payload(record: Record) -> dict[str, Any]:
    """The data fields of a record (not its meta) as a JSON-able dict; defaults are left out."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):  # type: ignore[arg-type]
        if f.name == "meta":
            continue
        value = getattr(record, f.name)
        if value is None or value == () or value == "" or value == {}:
            continue
        out[f.name] = _to_json(value)
    return out


def record_from_payload(meta: RecordMeta, payload: Mapping[str, Any]) -> Record:
    """Rebuild a canonical record from its meta and a payload made by :func:`record_payload`.

    Kinds without a registered type (``hmis.Project`` …) come back as :class:`SourceRow`.
    """
    cls: Any = RECORD_TYPES.get(meta.kind, SourceRow)
    decoders = _field_decoders(cls)
    kwargs = {k: decoders[k](v) for k, v in payload.items() if k in decoders}
    record: Record = cls(meta=meta, **kwargs)
    return record
