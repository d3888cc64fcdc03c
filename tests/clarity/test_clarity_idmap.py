"""IdMap behaves as a dict of ids, and keeps dense integer ids in 4 bytes each."""

from __future__ import annotations

import random
import tracemalloc
from typing import Any

import pytest

from plugins.clarity.idmap import IdMap

VALUES: list[Any] = [0, 1, 2, None, (1, 5, False), (1, 5, True), (2, 7, False), (0, "p")]


def _key(rng: random.Random, mode: str, step: int) -> int | str:
    if mode == "sequential":
        return 100_000 + step
    if mode == "shuffled":
        return rng.randint(0, 5_000)
    if mode == "sparse":
        return rng.randint(0, 10**15)
    if mode == "offset":
        return 10**12 + rng.randint(0, 3_000)
    if mode == "negative":
        return rng.randint(-3_000, 3_000)
    return rng.choice(
        [rng.randint(0, 2_000), rng.randint(0, 10**12), f"s_{rng.randint(0, 50)}", "x", -7]
    )


@pytest.mark.parametrize("mode", ["sequential", "shuffled", "sparse", "offset", "negative", "mix"])
def test_clarity_idmap_is_a_dict_of_ids(mode: str) -> None:
    rng = random.Random(mode)
    for _ in range(20):
        ids: IdMap[Any] = IdMap()
        model: dict[int | str, Any] = {}
        for step in range(rng.choice([10, 300, 3_000])):
            key = _key(rng, mode, step)
            roll = rng.random()
            if roll < 0.6:
                value = rng.choice(VALUES)
                ids[key] = value
                model[key] = value
            elif roll < 0.7 and model:
                gone = rng.choice(list(model))
                del ids[gone]
                del model[gone]
            assert (key in ids) == (key in model)
            assert ids.get(key, "default") == model.get(key, "default")
            assert len(ids) == len(model)
        assert sorted(map(str, ids)) == sorted(map(str, model))
        assert dict(ids.items()) == model
        for key, value in model.items():
            assert ids[key] == value
        with pytest.raises(KeyError):
            ids["never-stored"]


def test_clarity_idmap_stores_each_value_once() -> None:
    ids: IdMap[tuple[int, int, bool]] = IdMap()
    ids[1] = (1, 738000, False)
    ids["a"] = (1, 738000, False)
    assert ids[1] is ids["a"]
    assert type(ids.get(2)) is not tuple and ids.get(2, 5) == 5


def test_clarity_idmap_is_compact_for_dense_ids() -> None:
    tracemalloc.start()
    try:
        ids: IdMap[int] = IdMap()
        keys = list(range(500_000, 700_000))
        random.Random(1).shuffle(keys)  # dense but in no order
        before = tracemalloc.get_traced_memory()[0]
        for k in keys:
            ids[k] = k % 3
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(ids) == 200_000
    assert used < 200_000 * 12  # a dict would take about 75 bytes an id
