"""Validation at the trust boundary: JSON parsing and fhir.resources R4B models.

Everything that comes in is validated once with the ``fhir.resources.R4B`` model of its type
(never the default R5 package): an R5-only element is an unknown element here. Pydantic's
error locations become element expressions; its messages are not used, because they can
quote the offending value (client data). fhir.resources checks structure and types, not
terminology, so the codes the hub's workflow relies on are checked here too
(:data:`plugins.fhir.codes.REQUIRED_CODES`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from plugins.fhir import codes
from plugins.fhir.outcome import FhirError, Issue

MAX_ISSUES = 20

_MISSING = {"missing", "model_field_validation.missing"}
_EXTRA = {"extra_forbidden"}


@cache
def _model(resource_type: str) -> Any:
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None


def is_resource_type(name: str) -> bool:
    """Whether ``name`` is a FHIR R4 resource type."""
    return isinstance(name, str) and name[:1].isupper() and _model(name) is not None


def parse_json(body: bytes, what: str = "request body") -> Any:
    """Decode JSON, or a 400 naming the line and column (never the text)."""
    if not body or body.isspace():
        raise FhirError.of(400, "invalid", f"the {what} is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FhirError.of(
            400,
            "invalid",
            f"the {what} is not valid JSON (line {exc.lineno}, column {exc.colno})",
        ) from None


def expression(base: str, loc: Iterable[Any]) -> str:
    """A FHIRPath-like element expression from a pydantic error location."""
    out = base
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str):
            if not part.replace("_", "").isalnum():
                continue  # a validator or union tag, not an element
            if part.endswith("__ext"):
                part = "_" + part[: -len("__ext")]
            elif part.endswith("_fhir"):
                part = part[: -len("_fhir")]
            elif part == "resource_type":
                part = "resourceType"
            out += f".{part}"
    return out


def _issue(error: Mapping[str, Any], base: str) -> Issue:
    where = expression(base, error.get("loc", ()))
    kind = str(error.get("type", ""))
    if kind in _MISSING:
        return Issue("required", f"{where}: required element is missing", (where,))
    if kind in _EXTRA:
        return Issue("structure", f"{where}: unknown element (not part of FHIR R4)", (where,))
    if "resource_type" in kind:
        return Issue("structure", f"{where}: wrong resource type", (where,))
    return Issue("value", f"{where}: invalid value ({kind.split('.')[-1]})", (where,))


def _check_types(data: Any, path: str) -> None:
    """Every resourceType (the root and contained resources) is an R4 resource type.

    fhir.resources fails with a KeyError, not a validation error, on an unknown nested type.
    """
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise FhirError.of(
            400, "required", f"{path}.resourceType: required", f"{path}.resourceType"
        )
    if not is_resource_type(rtype):
        raise FhirError.of(
            400,
            "not-supported",
            f"{path}.resourceType: not a FHIR R4 resource type",
            f"{path}.resourceType",
        )
    for i, item in enumerate(data.get("contained") or ()):
        if not isinstance(item, Mapping):
            raise FhirError.of(400, "structure", f"{path}.contained[{i}]: not a resource")
        _check_types(item, f"{path}.contained[{i}]")


_CODES_BY_TYPE: dict[str, list[tuple[str, frozenset[str]]]] = {}
for (_kind, _element), _allowed in codes.REQUIRED_CODES.items():
    _CODES_BY_TYPE.setdefault(_kind, []).append((_element, _allowed))


def check_codes(resource: Mapping[str, Any], path: str) -> None:
    """The R4 required-binding codes the hub relies on (status, intent, priority …)."""
    for element, allowed in _CODES_BY_TYPE.get(str(resource.get("resourceType")), ()):
        if element in resource and resource[element] not in allowed:
            where = f"{path}.{element}"
            raise FhirError.of(400, "code-invalid", f"{where}: not a code of its value set", where)


def validate_resource(data: Any, expected: str | None = None, path: str = "") -> str:
    """Validate one resource with its R4B model; returns its resource type.

    ``expected`` is the type the endpoint takes; ``path`` prefixes element expressions
    (``Bundle.entry[3].resource``). Raises :class:`FhirError` (400) on any problem.
    """
    if not isinstance(data, Mapping):
        raise FhirError.of(400, "structure", f"{path or 'body'}: expected a JSON object")
    rtype = data.get("resourceType")
    base = path or expected or (rtype if isinstance(rtype, str) and rtype else "Resource")
    _check_types(data, base)
    if expected is not None and rtype != expected:
        where = f"{base}.resourceType"
        raise FhirError.of(400, "invalid", f"{where}: {expected} expected here", where)
    _validate_model(_model(str(rtype)), data, base, str(rtype))
    check_codes(data, base)
    return str(rtype)


def _validate_model(model: Any, data: Any, base: str, what: str) -> None:
    """``model.model_validate(data)``; a 400 whose issues name elements under ``base``."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        issues = _dedupe(_issue(e, base) for e in exc.errors(include_input=False))
        raise FhirError(400, issues[:MAX_ISSUES]) from None
    except Exception:
        raise FhirError.of(400, "structure", f"{base}: not a valid {what}", base) from None


def validate_bundle(data: Any) -> None:
    """Validate a Bundle once (its entries' resources with it), naming entry and element."""
    entries = _bundle_entries(data)
    for i, entry in enumerate(entries):
        _check_entry_shape(entry, f"Bundle.entry[{i}]")
    validate_resource(data, "Bundle", "Bundle")
    for i, entry in enumerate(entries):
        resource = entry.get("resource")
        if isinstance(resource, Mapping):
            check_codes(resource, f"Bundle.entry[{i}].resource")


def _bundle_entries(data: Any) -> list[Any]:
    """The entries of a body that must be a Bundle (refused, naming what is wrong, else)."""
    if not isinstance(data, Mapping):
        raise FhirError.of(400, "structure", "body: expected a JSON object")
    if data.get("resourceType") != "Bundle":
        raise FhirError.of(400, "invalid", "resourceType: expected Bundle", "Bundle.resourceType")
    entries = data.get("entry") or []
    if not isinstance(entries, list):
        raise FhirError.of(400, "structure", "Bundle.entry: expected a list", "Bundle.entry")
    return entries


def _check_entry_shape(entry: Any, where: str) -> None:
    """An entry is an object, its resource (if any) an object of well-typed elements."""
    if not isinstance(entry, Mapping):
        raise FhirError.of(400, "structure", f"{where}: expected an object", where)
    resource = entry.get("resource")
    if resource is not None:
        if not isinstance(resource, Mapping):
            raise FhirError.of(400, "structure", f"{where}.resource: expected a resource")
        _check_types(resource, f"{where}.resource")


def _dedupe(issues: Iterable[Issue]) -> list[Issue]:
    seen: set[tuple[str, tuple[str, ...]]] = set()
    out: list[Issue] = []
    for issue in issues:
        key = (issue.code, issue.expression)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


def validate_batch_shell(data: Any) -> list[Any]:
    """Validate a batch Bundle but for its entries' content; its entries. Each entry is
    validated on its own (:func:`check_entries`): in a batch, a bad entry fails alone."""
    entries = _bundle_entries(data)
    validate_resource({k: v for k, v in data.items() if k != "entry"}, "Bundle", "Bundle")
    return entries


def validate_entry(entry: Any, index: int) -> None:
    """Validate entry ``index`` of a Bundle (its request and its resource) with the R4B
    ``BundleEntry`` model, as :func:`validate_bundle` validates it within its Bundle."""
    where = f"Bundle.entry[{index}]"
    _check_entry_shape(entry, where)
    _validate_model(_model("BundleEntry"), entry, where, "Bundle entry")
    resource = entry.get("resource")
    if isinstance(resource, Mapping):
        check_codes(resource, f"{where}.resource")


def check_entries(entries: Iterable[Any]) -> dict[int, FhirError]:
    """The validation error of each invalid entry, by index (valid ones left out)."""
    found: dict[int, FhirError] = {}
    for index, entry in enumerate(entries):
        try:
            validate_entry(entry, index)
        except FhirError as exc:
            found[index] = exc
    return found
