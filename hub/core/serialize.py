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

Decoder = Callable[[Any], Any] | None
"""How to turn JSON data back into a value of a field type (None: as it is)."""


def _decoder(tp: Any) -> Decoder:
    """The decoder of a field type (see :data:`Decoder`)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        dec = _decoder(inner[0])
        if dec is None:
            return None
        return lambda v: None if v is None else dec(v)
    if origin is tuple:
        item = _decoder(typing.get_args(tp)[0])
        if item is None:
            return tuple
        return lambda v: tuple(map(item, v))
    if origin is frozenset:
        return frozenset
    if tp is date:
        return date.fromisoformat
    if tp is datetime:
        return datetime.fromisoformat
    if tp in _NESTED:
        build = _builder(tp)
        return lambda v: build(v, {})
    if origin is not None and issubclass(origin, Mapping):
        return dict
    return None


Builder = Callable[[Mapping[str, Any], dict[str, Any]], Any]
"""Builds an instance of a class from JSON data and the keyword arguments given already."""


@cache
def _builder(cls: Any) -> Builder:
    """How to build ``cls`` from JSON data: unknown keys are ignored, missing ones default.

    Built once per class from the field types; only fields whose values need converting
    (tuples, dates, nested values) are touched, the others are passed on as they are.
    """
    hints = typing.get_type_hints(cls)
    decoders = {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(cls)}
    decoders.pop("meta", None)
    names = decoders.keys()
    converted = [(name, dec) for name, dec in decoders.items() if dec is not None]

    def build(data: Mapping[str, Any], given: dict[str, Any]) -> Any:
        if data.keys() <= names:
            given.update(data)
        else:
            given.update((k, v) for k, v in data.items() if k in names)
        for name, dec in converted:
            if name in given:
                given[name] = dec(given[name])
        return cls(**given)

    return build


Encoder = Callable[[Any], Any] | None


def _encoder(tp: Any) -> Encoder:
    """How to turn a value of a field type into JSON-able data (None: as it is)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _encoder(inner[0])
    if origin is tuple:
        item = _encoder(typing.get_args(tp)[0])
        if item is None:
            return list
        return lambda v: [item(x) for x in v]
    if origin is frozenset:
        return sorted
    if tp is date or tp is datetime:
        return lambda v: v.isoformat()
    if tp in _NESTED:
        plan = _plan(tp)
        return lambda v: _encode_plan(v, plan)
    if origin is not None and issubclass(origin, Mapping):
        return dict
    return None


_REQUIRED: Any = object()
"""The default of a field that has none (a value is never left out for it)."""

PlanStep = tuple[str, Encoder, Any, bool]
"""(field, encoder, default, is a mapping) for one data field.

An empty value (None, ``""``, ``()``, an empty mapping) equal to the field's default is left
out (the payload stays small) and comes back as that default; an empty value that is not the
default (``ssn=""`` where the default is None) is written, so it comes back as it was."""


def _encode_plan(value: Any, plan: list[PlanStep]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, enc, default, mapping in plan:
        v = getattr(value, name)
        if (
            default is not _REQUIRED
            and (v is None or v == "" or v == () or (mapping and not v))
            and v == default
        ):
            continue
        out[name] = v if enc is None else enc(v)
    return out


def _default(f: dataclasses.Field[Any]) -> Any:
    """A field's default value (made once from its factory), or :data:`_REQUIRED`."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _REQUIRED


def _is_mapping(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(a) for a in typing.get_args(tp) if a is not type(None))
    return origin is not None and isinstance(origin, type) and issubclass(origin, Mapping)


@cache
def _plan(cls: Any) -> list[PlanStep]:
    """How each data field of a class is encoded (see :data:`PlanStep`)."""
    hints = typing.get_type_hints(cls)
    return [
        (f.name, _encoder(hints[f.name]), _default(f), _is_mapping(hints[f.name]))
        for f in dataclasses.fields(cls)
        if f.name != "meta"
    ]


def record_payload(record: Record) -> dict[str, Any]:
    """The data fields of a record (not its meta) as a JSON-able dict; empty values that are
    the field's default left out (see :data:`PlanStep`).

    Driven by a per-class plan built once from the field types (this is on every intake).
    """
    cls: Any = type(record)
    return _encode_plan(record, _plan(cls))


def record_from_payload(meta: RecordMeta, payload: Mapping[str, Any]) -> Record:
    """Rebuild a canonical record from its meta and a payload made by :func:`record_payload`.

    Kinds without a registered type (``hmis.Project`` …) come back as :class:`SourceRow`.
    """
    cls: Any = RECORD_TYPES.get(meta.kind, SourceRow)
    record: Record = _builder(cls)(payload, {"meta": meta})
    return record
