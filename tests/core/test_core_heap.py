"""The collector settings a hub process runs with after start-up (``hub.heap``)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from hub.heap import OLDER_GENERATION_THRESHOLDS, YOUNG_GENERATION_THRESHOLD
from plugins.fhir.validation_pool import ValidationPool

TUNED = (YOUNG_GENERATION_THRESHOLD, *OLDER_GENERATION_THRESHOLDS)


def test_a_settled_process_has_its_start_up_frozen_and_the_collector_tuned() -> None:
    # In a process of its own: freezing and the thresholds are process-wide.
    code = (
        "import gc, json; from hub.heap import settle_heap; "
        "before = gc.get_threshold(); settle_heap(); "
        "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    before, after, frozen = json.loads(out.stdout)
    assert before == [700, 10, 10]  # CPython's default
    assert after == list(TUNED)
    assert frozen > 1000  # the imported modules, at least


async def test_fhir_validation_workers_run_with_the_tuned_collector(
    hub_factory: Callable[..., Any],
) -> None:
    async with hub_factory() as ctx:
        pool = ValidationPool(ctx, 1)
        await pool.start()
        try:
            assert pool._pool is not None
            assert pool._pool.submit(gc.get_threshold).result(timeout=30) == TUNED
        finally:
            await pool.stop()
