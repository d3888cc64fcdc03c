"""Person ids: unguessable, and in creation order (UUID version 7, RFC 9562).

A person id is the key of several indexes that grow with every record: persons, the
persons' match keys and records, the audit log by person, the open outbox by recipient and
person. A random id (version 4) puts each new entry at a random place in each of them, so a
transaction of a few hundred records dirties a page per entry and index, and every page is
written to the log again at commit. An id that starts with its creation time puts the
entries of a batch beside each other: in the delivery benchmark this took about 2.5 µs off
each record's send-time check (docs/performance.md, session 13).

What the id reveals: the millisecond the hub first saw the person, to whoever is shown the
id (the partners a person's records are released to, as the FHIR Patient id; administrators
in the audit log). Those partners receive the records themselves, which carry when they
were created and received. The 74 random bits keep ids unguessable.
"""

from __future__ import annotations

import os
import time

_RANDOM_BITS = 74
_VERSION = 0x7
_VARIANT = 0b10


def new_person_id() -> str:
    """A fresh person id: 32 lowercase hex digits that sort in creation order (to the
    millisecond; ids made in the same millisecond sort in no particular order)."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big") >> (80 - _RANDOM_BITS)
    high, low = rand >> 62, rand & ((1 << 62) - 1)  # 12 bits beside the version, 62 after
    value = (millis << 80) | (_VERSION << 76) | (high << 64) | (_VARIANT << 62) | low
    return f"{value:032x}"
