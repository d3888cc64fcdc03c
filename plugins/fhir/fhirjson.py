"""Small helpers on FHIR JSON (plain dicts) shared by the mappings."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

from plugins.fhir import codes

Json = dict[str, Any]

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})")


def ext(url: str, value: str) -> Json:
    """A hub extension carrying a source value as ``valueString``."""
    return {"url": url, "valueString": value}


def ext_values(obj: Mapping[str, Any], url: str) -> list[str]:
    """The string values of every extension with this URL, in order."""
    out: list[str] = []
    for item in obj.get("extension") or ():
        if isinstance(item, Mapping) and item.get("url") == url:
            value = item.get("valueString", item.get("valueCode"))
            if isinstance(value, str):
                out.append(value)
    return out


def ext_value(obj: Mapping[str, Any], url: str) -> str | None:
    """The value of the first extension with this URL, or None."""
    found = ext_values(obj, url)
    return found[0] if found else None


def _source_url(element: str) -> str:
    return f"{codes.EXT_SOURCE_CODE}-{element}"


def put_code(
    out: Json, element: str, value: str, allowed: frozenset[str], fallback: str | None = None
) -> None:
    """Write a source code into a FHIR code element; keep codes FHIR lacks in an extension."""
    if not value:
        return
    if value in allowed and value != fallback:
        out[element] = value
        return
    if fallback is not None:
        out[element] = fallback
    out.setdefault("extension", []).append(ext(_source_url(element), value))


def get_code(obj: Mapping[str, Any], element: str) -> str:
    """Read back what :func:`put_code` wrote (or a partner's plain code)."""
    source = ext_value(obj, _source_url(element))
    if source is not None:
        return source
    value = obj.get(element)
    return value if isinstance(value, str) else ""


def coding_of(text: str) -> Json:
    """A Coding from ``system|code`` or a bare code."""
    system, sep, code = text.rpartition("|")
    return {"system": system, "code": code} if sep and system else {"code": text}


def coding_text(coding: Mapping[str, Any]) -> str:
    """``system|code`` (or the bare code) of a Coding: inverse of :func:`coding_of`."""
    code = str(coding.get("code", ""))
    system = coding.get("system")
    return f"{system}|{code}" if system else code


def reference_to(kind: str, value: str) -> Json:
    """A Reference to ``kind/value`` when value is a FHIR id, else a display-only one."""
    if _FHIR_ID.fullmatch(value):
        return {"reference": f"{kind}/{value}"}
    return {"display": value}


def reference_value(ref: Any, kind: str) -> str:
    """The id of a ``kind/id`` reference, else its display (inverse of :func:`reference_to`)."""
    if not isinstance(ref, Mapping):
        return ""
    literal = ref.get("reference")
    if isinstance(literal, str) and literal.startswith(kind + "/"):
        return literal[len(kind) + 1 :]
    display = ref.get("display")
    return display if isinstance(display, str) else ""


def fhir_datetime(value: str) -> str:
    """An ISO date-time as a FHIR dateTime: a naive one is taken as UTC."""
    if "T" not in value or DATETIME.fullmatch(value):
        return value
    return datetime.fromisoformat(value).isoformat() + "+00:00"


def canonical_datetime(value: str) -> str:
    """A FHIR dateTime as the ISO text a canonical record payload holds."""
    return datetime.fromisoformat(value).isoformat()


def dedupe(items: Iterable[Any]) -> list[Any]:
    """JSON values without repeats, first occurrence kept, in order."""
    seen: set[bytes] = set()
    out: list[Any] = []
    for item in items:
        key = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def identifier_type(ident: Mapping[str, Any]) -> str:
    """The type code of an Identifier (v2-0203 preferred, e.g. ``MR``), or ``""``."""
    concept = ident.get("type")
    if not isinstance(concept, Mapping):
        return ""
    codings = [c for c in concept.get("coding") or () if isinstance(c, Mapping)]
    for coding in codings:
        if coding.get("system") == codes.V2_0203 and coding.get("code"):
            return str(coding["code"])
    for coding in codings:
        if coding.get("code"):
            return str(coding["code"])
    text = concept.get("text")
    return text if isinstance(text, str) else ""
