"""The Gravity referral Task's status machine: allowed transitions and who may make them.

requested → accepted | rejected | cancelled; accepted → in-progress | cancelled;
in-progress ⇄ on-hold; in-progress → completed | failed | cancelled; draft → requested.
The owner (performing organisation) sets accepted, rejected, in-progress, on-hold,
completed and failed; the requester sets requested and cancelled. A new Task starts as
draft or requested.
"""

from __future__ import annotations

from plugins.fhir.outcome import FhirError

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"requested"}),
    "requested": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"in-progress", "cancelled"}),
    "in-progress": frozenset({"on-hold", "completed", "failed", "cancelled"}),
    "on-hold": frozenset({"in-progress"}),
}
OWNER_STATUSES = frozenset(
    {"accepted", "rejected", "in-progress", "on-hold", "completed", "failed"}
)
REQUESTER_STATUSES = frozenset({"requested", "cancelled"})
INITIAL_STATUSES = frozenset({"draft", "requested"})


def check_initial(status: str, where: str) -> None:
    """A new Task must start as draft or requested (422 otherwise)."""
    if status not in INITIAL_STATUSES:
        raise FhirError.of(
            422, "business-rule", f"{where}: a new Task must be draft or requested", where
        )


def check_transition(old: str, new: str, *, is_owner: bool, is_requester: bool, where: str) -> None:
    """Allow ``old → new`` for this caller, or raise 409 (not a transition) / 403 (not
    this side's status)."""
    if old == new:
        return
    if new not in TRANSITIONS.get(old, frozenset()):
        raise FhirError.of(
            409, "business-rule", f"{where}: transition {old} -> {new} is not allowed", where
        )
    if new in OWNER_STATUSES and not is_owner:
        raise FhirError.of(
            403, "forbidden", f"{where}: only the Task owner may set status {new}", where
        )
    if new in REQUESTER_STATUSES and not is_requester:
        raise FhirError.of(
            403, "forbidden", f"{where}: only the Task requester may set status {new}", where
        )
