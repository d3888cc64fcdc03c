"""The tamper-evident disclosure audit model: hash-chained entries and their verification.

Each entry's ``hash`` is SHA-256 over a canonical JSON list of a format tag, every field
of the entry and the previous entry's hash, so changing, removing or reordering entries
breaks the chain. Removing entries from the *end* of the log cannot be seen from the
entries alone: callers that need that keep the last (seq, hash) somewhere else and compare.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from consent.decision import Decision
from consent.value_types import value_type

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first entry of a log."""

_FORMAT = "cie-hub-audit/1"

ProblemKind = Literal["altered", "missing", "reordered"]
"""How a chain is broken."""


@value_type
class AuditEntry:
    """One decision in the audit log (client is the hub's internal person id, never a name)."""

    seq: int
    at: str
    client: str
    owner: str
    recipient: str
    purpose: str
    decision: str
    released: tuple[str, ...]
    withheld: tuple[str, ...]
    consent_id: str | None
    reasons: tuple[str, ...]
    payload_hash: str | None
    record: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first break found in a chain: the entry's seq, its kind and a message."""

    seq: int
    kind: ProblemKind
    message: str


def canonical_json(value: list[object]) -> bytes:
    """The encoding hashed: compact, ASCII-only JSON of a list (``json.dumps`` with
    ``ensure_ascii=True`` and no spaces). A faster encoder may be passed to
    :func:`make_entry` if it gives the same bytes for every entry."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def compute_hash(
    prev_hash: str,
    *,
    seq: int,
    at: str,
    client: str,
    owner: str,
    recipient: str,
    purpose: str,
    decision: str,
    released: Sequence[str],
    withheld: Sequence[str],
    consent_id: str | None,
    reasons: Sequence[str],
    payload_hash: str | None,
    record: str | None,
    encode: Callable[[list[object]], bytes] = canonical_json,
) -> str:
    """SHA-256 (hex) of an entry's fields chained to ``prev_hash``.

    The encoding is a JSON list in a fixed order (compact, ASCII-only), so no two
    different entries encode alike (:func:`canonical_json`).
    """
    canonical = [
        _FORMAT,
        seq,
        at,
        client,
        owner,
        recipient,
        purpose,
        decision,
        list(released),
        list(withheld),
        consent_id,
        list(reasons),
        payload_hash,
        record,
        prev_hash,
    ]
    return hashlib.sha256(encode(canonical)).hexdigest()


def entry_hash(entry: AuditEntry) -> str:
    """The hash ``entry`` should carry, recomputed from its fields and ``prev_hash``."""
    return compute_hash(
        entry.prev_hash,
        seq=entry.seq,
        at=entry.at,
        client=entry.client,
        owner=entry.owner,
        recipient=entry.recipient,
        purpose=entry.purpose,
        decision=entry.decision,
        released=entry.released,
        withheld=entry.withheld,
        consent_id=entry.consent_id,
        reasons=entry.reasons,
        payload_hash=entry.payload_hash,
        record=entry.record,
    )


def format_time(at: datetime) -> str:
    """``at`` as the ISO UTC text entries carry (``2025-03-01T12:00:00.000000Z``)."""
    global _last_time
    last_at, last_text = _last_time
    if at is last_at:  # a batch of decisions shares one clock reading
        return last_text
    if at.tzinfo is None:
        raise ValueError("audit time must be timezone-aware")
    text = at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    _last_time = (at, text)
    return text


_last_time: tuple[datetime | None, str] = (None, "")


def make_entry(
    prev: tuple[int, str] | None,
    *,
    at: datetime | str,
    client: str,
    owner: str,
    recipient: str,
    purpose: str,
    decision: Decision,
    payload_hash: str | None,
    record: str | None,
    encode: Callable[[list[object]], bytes] = canonical_json,
) -> AuditEntry:
    """The entry that follows ``prev`` = (seq, hash) of the last entry, or starts the log.

    ``at`` may be an aware datetime (formatted by ``format_time``) or text already in
    that form. ``encode`` replaces :func:`canonical_json` (it must give the same bytes).
    """
    seq, prev_hash = (1, GENESIS_HASH) if prev is None else (prev[0] + 1, prev[1])
    when = at if isinstance(at, str) else format_time(at)
    released = tuple(sorted(decision.released))
    withheld = tuple(sorted(decision.redacted))
    digest = compute_hash(
        prev_hash,
        seq=seq,
        at=when,
        client=client,
        owner=owner,
        recipient=recipient,
        purpose=purpose,
        decision=decision.outcome,
        released=released,
        withheld=withheld,
        consent_id=decision.consent_id,
        reasons=decision.reasons,
        payload_hash=payload_hash,
        record=record,
        encode=encode,
    )
    return AuditEntry(
        seq=seq,
        at=when,
        client=client,
        owner=owner,
        recipient=recipient,
        purpose=purpose,
        decision=decision.outcome,
        released=released,
        withheld=withheld,
        consent_id=decision.consent_id,
        reasons=decision.reasons,
        payload_hash=payload_hash,
        record=record,
        prev_hash=prev_hash,
        hash=digest,
    )


def verify_chain(
    entries: Iterable[AuditEntry],
    *,
    start_prev_hash: str = GENESIS_HASH,
    start_seq: int = 1,
) -> ChainProblem | None:
    """The first break in ``entries`` (in stored order), or None when the chain is intact.

    One streaming pass, constant memory. ``altered``: an entry whose hash does not match
    its fields, or (named by the earlier seq) an entry the next one does not chain to.
    ``missing``: a gap in seq never filled later. ``reordered``: an entry that comes
    after a later one. A gap is classified once the rest of the log has been seen.
    """
    expected_seq = start_seq
    expected_prev = start_prev_hash
    gap: tuple[int, int] | None = None  # missing seqs [gap[0], gap[1])
    for entry in entries:
        seq = entry.seq
        if gap is not None:
            if gap[0] <= seq < gap[1]:
                return ChainProblem(seq, "reordered", f"entry {seq} appears after entry {gap[1]}")
            continue
        if entry_hash(entry) != entry.hash:
            return ChainProblem(seq, "altered", f"entry {seq} does not match its hash")
        if seq == expected_seq:
            if entry.prev_hash != expected_prev:
                if seq > start_seq:
                    return ChainProblem(
                        seq - 1,
                        "altered",
                        f"entry {seq} does not chain to entry {seq - 1}: "
                        f"entry {seq - 1} was altered or replaced",
                    )
                return ChainProblem(seq, "altered", f"entry {seq} does not chain to the start")
            expected_seq = seq + 1
            expected_prev = entry.hash
        elif seq > expected_seq:
            gap = (expected_seq, seq)
        else:
            return ChainProblem(
                seq, "reordered", f"entry {seq} appears after entry {expected_seq - 1}"
            )
    if gap is not None:
        lo, hi = gap
        which = f"entry {lo} is" if hi - lo == 1 else f"entries {lo}-{hi - 1} are"
        return ChainProblem(lo, "missing", f"{which} missing (before entry {hi})")
    return None
