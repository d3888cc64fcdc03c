"""Record references as the audit log and the review list write them: ``kind/source/id``."""

from __future__ import annotations


def split_record_ref(ref: str) -> tuple[str, str, str]:
    """``client/hmis:1/42`` → (``client``, ``hmis:1``, ``42``); ids may contain slashes."""
    parts = ref.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"record reference {ref!r} is not kind/source/id")
    return parts[0], parts[1], parts[2]
