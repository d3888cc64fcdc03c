"""The audit chain: intact chains verify; edits, deletions and swaps are named by seq."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from consent import (
    GENESIS_HASH,
    AuditEntry,
    Decision,
    compute_hash,
    entry_hash,
    make_entry,
    verify_chain,
)

PERMIT = Decision(
    "permit-redacted",
    frozenset({"identity", "housing"}),
    frozenset({"hiv"}),
    ("REDACTED_SENSITIVE",),
    "mpa-1",
)


def chain(n: int) -> list[AuditEntry]:
    """A log of ``n`` chained entries."""
    entries: list[AuditEntry] = []
    prev: tuple[int, str] | None = None
    for i in range(n):
        entry = make_entry(
            prev,
            at=datetime(2025, 6, 1, 12, tzinfo=UTC) + timedelta(minutes=i),
            client=f"person-{i % 3}",
            owner="shelter",
            recipient="partner",
            purpose="coordination",
            decision=PERMIT,
            payload_hash=f"{i:064x}",
            record=f"client/clarity/{i}",
        )
        entries.append(entry)
        prev = (entry.seq, entry.hash)
    return entries


def test_make_entry_chains_from_genesis() -> None:
    first, second = chain(2)
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert first.at == "2025-06-01T12:00:00.000000Z"
    assert first.released == ("housing", "identity")
    assert first.withheld == ("hiv",)
    assert (first.decision, first.consent_id, first.reasons) == (
        "permit-redacted",
        "mpa-1",
        ("REDACTED_SENSITIVE",),
    )
    assert entry_hash(first) == first.hash
    assert len(first.hash) == 64


def test_make_entry_normalises_time_to_utc_and_refuses_naive_times() -> None:
    pacific = datetime(2025, 6, 1, 5, tzinfo=timezone(timedelta(hours=-7)))
    args = {"client": "p", "owner": "o", "recipient": "r", "purpose": "referral"}
    entry = make_entry(None, at=pacific, decision=PERMIT, payload_hash=None, record=None, **args)
    assert entry.at == "2025-06-01T12:00:00.000000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        make_entry(
            None, at=datetime(2025, 6, 1), decision=PERMIT, payload_hash=None, record=None, **args
        )


def test_intact_chain_verifies() -> None:
    assert verify_chain(chain(6)) is None
    assert verify_chain([]) is None


def test_verification_streams_from_a_generator() -> None:
    def stream() -> Iterator[AuditEntry]:
        yield from chain(5)

    assert verify_chain(stream()) is None


def test_a_suffix_verifies_from_a_checkpoint() -> None:
    entries = chain(6)
    assert verify_chain(entries[3:], start_prev_hash=entries[2].hash, start_seq=4) is None
    problem = verify_chain(entries[3:], start_seq=4)
    assert problem is not None
    assert (problem.seq, problem.kind) == (4, "altered")


def test_an_edited_entry_is_named() -> None:
    entries = chain(6)
    entries[2] = dataclasses.replace(entries[2], recipient="clinic")
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "altered")
    assert "entry 3" in problem.message


def test_an_edited_and_rehashed_entry_is_named() -> None:
    entries = chain(6)
    forged = dataclasses.replace(entries[2], released=("housing", "identity", "hiv"))
    entries[2] = dataclasses.replace(forged, hash=entry_hash(forged))
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "altered")


def test_a_deleted_entry_is_named() -> None:
    entries = chain(6)
    del entries[2]
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "missing")
    assert problem.message == "entry 3 is missing (before entry 4)"


def test_several_deleted_entries_are_named_as_a_range() -> None:
    entries = chain(6)
    del entries[1:4]
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (2, "missing")
    assert "entries 2-4" in problem.message


@pytest.mark.parametrize(
    ("order", "seq"),
    [
        ([1, 2, 4, 3, 5, 6], 3),  # neighbours swapped
        ([1, 3, 4, 5, 2, 6], 2),  # one moved later
        ([1, 2, 3, 4, 6, 5], 5),
        ([1, 2, 3, 2, 4, 5], 2),  # replayed
    ],
)
def test_reordered_entries_are_named(order: list[int], seq: int) -> None:
    entries = chain(6)
    problem = verify_chain([entries[i - 1] for i in order])
    assert problem is not None
    assert (problem.seq, problem.kind) == (seq, "reordered")


def test_the_first_problem_is_reported() -> None:
    entries = chain(8)
    entries[1] = dataclasses.replace(entries[1], purpose="marketing")
    del entries[5]
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (2, "altered")


def digest(
    owner: str = "o",
    recipient: str = "r",
    released: tuple[str, ...] = ("a",),
    record: str | None = None,
) -> str:
    """``compute_hash`` of a fixed entry with a few fields varied."""
    return compute_hash(
        GENESIS_HASH,
        seq=1,
        at="2025-06-01T12:00:00.000000Z",
        client="c",
        owner=owner,
        recipient=recipient,
        purpose="referral",
        decision="permit",
        released=released,
        withheld=(),
        consent_id=None,
        reasons=(),
        payload_hash=None,
        record=record,
    )


def test_hash_encoding_is_unambiguous() -> None:
    assert digest() == digest()
    assert digest(owner="ab", recipient="c") != digest(owner="a", recipient="bc")
    assert digest(released=("a,b",)) != digest(released=("a", "b"))
    assert digest(record="null") != digest(record=None)


def test_the_link_to_the_previous_entry_is_part_of_the_hash() -> None:
    entries = chain(4)
    entries[2] = dataclasses.replace(entries[2], prev_hash=entries[0].hash)
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "altered")
    assert digest() != compute_hash(
        "f" * 64,
        seq=1,
        at="2025-06-01T12:00:00.000000Z",
        client="c",
        owner="o",
        recipient="r",
        purpose="referral",
        decision="permit",
        released=("a",),
        withheld=(),
        consent_id=None,
        reasons=(),
        payload_hash=None,
        record=None,
    )


def test_the_sequence_number_is_part_of_the_hash() -> None:
    entries = chain(4)
    entries[3] = dataclasses.replace(entries[3], seq=5)
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (5, "altered")
