"""OperationOutcome errors: what the FHIR API answers when something is wrong.

An error names the problem and the element (a FHIRPath-like expression such as
``Bundle.entry[2].resource.status``); it never carries a value from the request, so no
client data can leak through an error, and never a stack trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome issue: FHIR issue type code, message, element expressions."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"

    def to_json(self) -> dict[str, Any]:
        """The issue as FHIR JSON."""
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class FhirError(Exception):
    """A request the FHIR API refuses; becomes an OperationOutcome with ``status``."""

    def __init__(self, status: int, issues: Sequence[Issue], headers: dict[str, str] | None = None):
        super().__init__("; ".join(i.diagnostics for i in issues))
        self.status = status
        self.issues = tuple(issues)
        self.headers = headers or {}

    @classmethod
    def of(cls, status: int, code: str, diagnostics: str, *expression: str) -> FhirError:
        """An error with one issue."""
        return cls(status, [Issue(code, diagnostics, tuple(e for e in expression if e))])

    def with_prefix(self, prefix: str) -> FhirError:
        """The same error with every expression (and message) placed under ``prefix``."""
        issues = [
            Issue(
                i.code,
                f"{prefix}: {i.diagnostics}",
                tuple(f"{prefix}.{e}" if e else prefix for e in i.expression) or (prefix,),
                i.severity,
            )
            for i in self.issues
        ]
        return FhirError(self.status, issues, self.headers)


def at_entry(error: FhirError, index: int) -> FhirError:
    """The error of one Bundle entry: every issue names the entry."""
    mark = f"Bundle.entry[{index}]"
    issues = [
        i
        if any(e.startswith(mark) for e in i.expression) or i.diagnostics.startswith(mark)
        else Issue(i.code, f"{mark}: {i.diagnostics}", i.expression or (mark,), i.severity)
        for i in error.issues
    ]
    return FhirError(error.status, issues, error.headers)


def operation_outcome(issues: Sequence[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def fhir_response(
    body: dict[str, Any] | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A response with an ``application/fhir+json`` body (none for ``None``)."""
    resp = web.Response(
        body=b"" if body is None else orjson.dumps(body),
        status=status,
        content_type=FHIR_JSON,
        charset="utf-8",
    )
    if headers:
        resp.headers.update(headers)
    return resp


def error_response(error: FhirError) -> web.Response:
    """The OperationOutcome response of an error."""
    return fhir_response(operation_outcome(error.issues), error.status, error.headers)


_ISSUE_TYPES = {
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    413: "too-costly",
    429: "throttled",
}


def core_error(status: int, _code: str, message: str, headers: dict[str, str]) -> web.Response:
    """An error the hub's core answers on a FHIR path (a missing or wrong credential, a rate
    limit, an unexpected failure), as the OperationOutcome a FHIR client expects."""
    issue = Issue(
        _ISSUE_TYPES.get(status, "exception" if status >= 500 else "processing"),
        message,
        (),
        "fatal" if status >= 500 else "error",
    )
    return fhir_response(operation_outcome([issue]), status, headers)


def not_found() -> FhirError:
    """The one answer for a resource that does not exist *or* that the caller may not see.

    Its body is the same whatever the id, so it tells nothing about what exists.
    """
    return FhirError.of(404, "not-found", "resource not found")
