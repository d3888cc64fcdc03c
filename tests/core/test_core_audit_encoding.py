"""The gate's audit encoding: the fast hash input is byte-for-byte the standard one, and
stored rows keep their JSON form (entries written before stay verifiable)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from consent import Decision, make_entry
from hub.core.gate import audit_row, fast_canonical_json


@given(
    st.lists(
        st.one_of(
            st.text(),
            st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010)),  # lone surrogates
            st.none(),
            st.integers(),
            st.lists(st.text(), max_size=3),
        ),
        max_size=8,
    )
)
def test_the_gates_fast_encoding_hashes_the_same_bytes(value: list[object]) -> None:
    # Entries written with either encoder verify with the other: the bytes hashed are equal.
    expected = json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    assert fast_canonical_json(value) == expected


def test_stored_audit_rows_keep_their_json_form() -> None:
    entry = make_entry(
        None,
        at=datetime(2025, 3, 1, 12, tzinfo=UTC),
        client="p-1",
        owner="shelter-a",
        recipient="hospital-x",
        purpose="treatment",
        decision=Decision("permit", frozenset({"identity"}), frozenset({"health"}), ("OK",), "m1"),
        payload_hash=None,
        record="client/hmis:1/1",
    )
    row = audit_row(entry)
    assert orjson.loads(row.body) == {
        f.name: list(v) if isinstance(v := getattr(entry, f.name), tuple) else v
        for f in dataclasses.fields(entry)
    }
    assert list(orjson.loads(row.body)) == [f.name for f in dataclasses.fields(entry)]
