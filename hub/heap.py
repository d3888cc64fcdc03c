"""Garbage-collector settings for a hub process after start-up.

A hub process imports large libraries (pydantic models of fhir.resources, hl7apy's
structure definitions) and builds its context once. CPython's cyclic collector would walk
all of that again at every full collection while messages are processed; freezing what is
alive after start-up takes it out of the collector's view, so collections only walk what
the work itself allocates. Nothing is lost: frozen objects are still freed by reference
counting when they are released.

The hub works in batches (a Bundle of 1,000 Patients, 200 claimed outbox entries): each
allocates tens of thousands of containers that live until the batch commits. With
CPython's default young-generation threshold (700 net allocations) the collector runs
hundreds of times per batch and walks every survivor again in the older generations, all
to find next to no garbage: reference counting frees almost everything the hub allocates.
A higher threshold lets a batch finish between collections. Measured with the heap frozen
(``docs/performance.md``, session 5): about 11 µs of collection per Patient of a
1,000-Patient Bundle with the default thresholds, about 5 with these; 8–9 µs per delivered
outbox entry, about 0.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 50_000
"""Net container allocations between collections of the youngest generation (default 700).
Cyclic garbage waits at most this long: a few megabytes."""
OLDER_GENERATION_THRESHOLDS = (20, 10)
"""Collections of each generation between collections of the next (default 10, 10)."""


def tune_collector() -> None:
    """Set the collector's thresholds for batch work (any hub process, workers too)."""
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *OLDER_GENERATION_THRESHOLDS)


def settle_heap() -> None:
    """Collect once, freeze every object alive now and tune the collector (call after
    start-up)."""
    gc.collect()
    gc.freeze()
    tune_collector()
