"""The audit log outside the gate: storage form, verification, signed checkpoints, accounting."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature

from consent.audit import GENESIS_HASH, AuditEntry, ChainProblem, verify_chain
from hub.core.gate import QUEUED_FOR_DELIVERY
from hub.core.ports import AuditRow
from hub.keys import KeyRing

UNREADABLE_ENTRY = "this audit entry cannot be read (altered?): run 'hub audit verify'"


def entry_from_row(row: AuditRow) -> AuditEntry:
    """The entry a stored row holds (its body; the seq column names where it sits).

    Raises ``ValueError`` (or ``TypeError``) when the body is not an entry's JSON object.
    """
    data = orjson.loads(row.body)
    if not isinstance(data, dict):
        raise ValueError(f"audit entry {row.seq}: the body is not a JSON object")
    for name in ("released", "withheld", "reasons"):
        data[name] = tuple(data.get(name) or ())
    data.setdefault("seq", row.seq)
    return AuditEntry(**data)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of ``hub audit verify``."""

    entries: int
    head: tuple[int, str] | None
    problem: ChainProblem | None
    checkpoint_problem: str | None

    @property
    def ok(self) -> bool:
        """Whether the chain and every checkpoint check out."""
        return self.problem is None and self.checkpoint_problem is None


def _entry_at(row: AuditRow, moved: dict[int, int]) -> AuditEntry:
    """The entry a row holds, verified where it is stored (its seq column)."""
    try:
        entry = entry_from_row(row)
    except (ValueError, TypeError):
        # An unreadable body is an altered entry; keep the seq so that it is named.
        return AuditEntry(
            row.seq, "", "", "", "", "", "", (), (), None, (), None, None, row.prev_hash, ""
        )
    if entry.seq != row.seq:
        # An entry stored at another entry's position: verify it where it sits.
        moved[row.seq] = entry.seq
        entry = dataclasses.replace(entry, seq=row.seq)
    return entry


async def verify_store(store: Any, keys: KeyRing) -> VerifyReport:
    """Walk the chain once, batch by batch (memory stays flat however long the log is),
    checking too that each entry is filed under the person its hashed body names; then
    check every signed checkpoint against the hashes it names.

    The stored person column is outside the hash, yet the accounting of disclosures selects
    by it: an entry moved to another person would vanish from its client's accounting. The
    problem reported is the one at the earliest entry."""
    checkpoints = await store.checkpoints()
    wanted = {seq for seq, _h, _s, _k in checkpoints}
    heads: dict[int, str] = {}
    moved: dict[int, int] = {}
    count = 0
    problem: ChainProblem | None = None
    head: tuple[int, str] | None = None
    misfiled: int | None = None
    async for batch in store.iter_audit():
        entries = [_entry_at(row, moved) for row in batch]
        if problem is None:
            start_seq, start_prev = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
            problem = verify_chain(entries, start_prev_hash=start_prev, start_seq=start_seq)
        heads.update((e.seq, e.hash) for e in entries if e.seq in wanted)
        if misfiled is None:
            misfiled = next(
                (
                    e.seq
                    for row, e in zip(batch, entries, strict=True)
                    if e.client and row.person_id is not None and row.person_id != e.client
                ),
                None,
            )
        count += len(entries)
        head = (entries[-1].seq, entries[-1].hash)
    if problem is not None and problem.seq in moved:
        problem = ChainProblem(
            problem.seq,
            "reordered",
            f"position {problem.seq} holds entry {moved[problem.seq]}: entries were swapped",
        )
    async with store.transaction() as tx:
        stored_head = await tx.audit_head()
    if problem is None and stored_head is not None and stored_head != head:
        # The chain head is kept apart from the entries: removing entries from the end
        # leaves a chain that is valid in itself but shorter than its head.
        last = head[0] if head else 0
        problem = ChainProblem(
            last + 1,
            "missing",
            f"the log ends at entry {last} but its head is entry {stored_head[0]}: "
            "entries were removed from the end",
        )
    if misfiled is not None and (problem is None or misfiled < problem.seq):
        problem = ChainProblem(
            misfiled,
            "altered",
            f"entry {misfiled} is filed under another client than the one it records: "
            "its stored person id was changed",
        )
    cp_problem: str | None = None
    verifier = keys.verifier()
    for seq, head_hash, signature, key_id in checkpoints:
        try:
            verifier.verify(signature, checkpoint_message(seq, head_hash))
        except InvalidSignature:
            cp_problem = f"checkpoint at entry {seq} (key {key_id}) has a bad signature"
            break
        if heads.get(seq) != head_hash:
            cp_problem = (
                f"entry {seq} does not match the signed checkpoint: the log was rewritten "
                "or truncated after it was signed"
            )
            break
    return VerifyReport(count, head, problem, cp_problem)


def checkpoint_message(seq: int, head_hash: str) -> bytes:
    """The bytes a checkpoint signature covers."""
    return f"cie-hub-audit-checkpoint/1|{seq}|{head_hash}".encode()


async def write_checkpoint(store: Any, keys: KeyRing) -> tuple[int, str] | None:
    """Sign the current chain head and store the checkpoint; None for an empty log."""
    async with store.transaction() as tx:
        head: tuple[int, str] | None = await tx.audit_head()
    if head is None:
        return None
    seq, head_hash = head
    signature = keys.signer().sign(checkpoint_message(seq, head_hash))
    await store.add_checkpoint(seq, head_hash, signature, keys.signing_key_id)
    return head


async def disclosures(store: Any, person_id: str) -> list[dict[str, Any]]:
    """HIPAA-style accounting: every release of the person's data to another agency.

    Lists the permits to an agency other than the owner among the entries about the person
    (an entry filed under the person but about another is left out; ``hub audit verify``
    names it). A feed's record is audited when queued and again when re-checked at send
    time; only the send-time decision is a disclosure, so entries marked
    ``QUEUED_FOR_DELIVERY`` are left out. Each send attempt is listed (a partner that
    failed may still have received the data); API reads and exports are listed as made.
    """
    out: list[dict[str, Any]] = []
    for row in await store.audit_for_client(person_id):
        try:
            e = entry_from_row(row)
        except (ValueError, TypeError):
            # Not left out silently: the accounting says an entry could not be read.
            out.append({"audit_seq": row.seq, "error": UNREADABLE_ENTRY})
            continue
        if e.client != person_id:
            continue  # filed under this person, but about another (``hub audit verify``)
        if e.recipient == e.owner or e.decision == "deny" or QUEUED_FOR_DELIVERY in e.reasons:
            continue
        out.append(
            {
                "date": e.at,
                "recipient": e.recipient,
                "owner": e.owner,
                "what": list(e.released),
                "withheld": list(e.withheld),
                "purpose": e.purpose,
                "record": e.record,
                "consent_id": e.consent_id,
                "audit_seq": e.seq,
            }
        )
    return out
