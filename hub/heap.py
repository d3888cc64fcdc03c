"""Garbage-collector settings for a hub process after start-up.

A hub process imports large libraries (pydantic models of fhir.resources, hl7apy's
structure definitions) and builds its context once. CPython's cyclic collector would walk
all of that again at every full collection while messages are processed; freezing what is
alive after start-up takes it out of the collector's view, so collections only walk what
the work itself allocates. Nothing is lost: frozen objects are still freed by reference
counting when they are released.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect once, then freeze every object alive now (call after start-up)."""
    gc.collect()
    gc.freeze()
