"""Validation findings and the JSON Lines report an import writes.

A finding names the file, the line, the column and the rule, and whether the row was kept
(``warning``: kept, perhaps repaired) or skipped (``error``). It never carries a data value:
``record`` is the row's HMIS id (a key, not client data), ``message`` names the column and
the rule only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import orjson

Severity = Literal["warning", "error"]
WARNING: Severity = "warning"
ERROR: Severity = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in one row (or in a file's header, line 1)."""

    file: str
    line: int
    column: str
    rule: str
    severity: Severity
    message: str
    record: str = ""

    def to_json(self) -> dict[str, object]:
        """The report line of this finding."""
        out: dict[str, object] = {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
        }
        if self.record:
            out["record"] = self.record
        return out


class Report:
    """Counts every finding and writes them to a JSON Lines file as they come.

    ``limit`` caps the lines written per (file, column, rule); past it the findings are
    still counted and one ``suppressed`` line per capped rule closes the report. 0 means no
    cap. Memory stays flat: nothing but counters is kept.
    """

    def __init__(self, path: Path | None, limit: int = 0) -> None:
        self.path = path
        self.limit = limit
        self.warnings = 0
        self.errors = 0
        self.by_file: Counter[tuple[str, Severity]] = Counter()
        self.by_rule: Counter[str] = Counter()
        self._per_key: Counter[tuple[str, str, str]] = Counter()
        self._out: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out = path.open("wb")

    def add(self, finding: Finding) -> None:
        """Count a finding and write it (unless its rule is over the cap)."""
        if finding.severity == ERROR:
            self.errors += 1
        else:
            self.warnings += 1
        self.by_file[(finding.file, finding.severity)] += 1
        self.by_rule[finding.rule] += 1
        key = (finding.file, finding.column, finding.rule)
        self._per_key[key] += 1
        if self._out is not None and (not self.limit or self._per_key[key] <= self.limit):
            self._out.write(orjson.dumps(finding.to_json()) + b"\n")

    def warn(
        self, file: str, line: int, column: str, rule: str, message: str, record: str = ""
    ) -> None:
        """Add a warning (the row is kept)."""
        self.add(Finding(file, line, column, rule, WARNING, message, record))

    def error(
        self, file: str, line: int, column: str, rule: str, message: str, record: str = ""
    ) -> None:
        """Add an error (the row is skipped)."""
        self.add(Finding(file, line, column, rule, ERROR, message, record))

    def count(self, file: str, severity: Severity) -> int:
        """Findings of one severity in one file."""
        return self.by_file[(file, severity)]

    def close(self) -> None:
        """Write the suppressed-findings lines and close the file."""
        if self._out is None:
            return
        if self.limit:
            for (file, column, rule), n in sorted(self._per_key.items()):
                if n > self.limit:
                    line = {
                        "file": file,
                        "line": 0,
                        "column": column,
                        "rule": rule,
                        "severity": "info",
                        "message": f"{n - self.limit} more findings of this rule not listed",
                        "suppressed": n - self.limit,
                    }
                    self._out.write(orjson.dumps(line) + b"\n")
        self._out.close()
        self._out = None


class MemoryReport(Report):
    """A report that keeps its findings (for what is read before the report file opens)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.findings: list[Finding] = []

    def add(self, finding: Finding) -> None:
        """Keep the finding."""
        super().add(finding)
        self.findings.append(finding)

    def replay(self, into: Report) -> None:
        """Add every kept finding to another report."""
        for finding in self.findings:
            into.add(finding)
