"""The gate's cached record shapes: keyed by what shapes a decision, nothing else."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hub.synthetic import client


async def test_labels_that_are_not_sensitive_categories_share_one_shape(
    hub_factory: Callable[..., Any],
) -> None:
    async with hub_factory() as ctx:
        record = client("1")

        def labelled(*labels: str) -> Any:
            return dataclasses.replace(
                record, meta=dataclasses.replace(record.meta, sensitivity=frozenset(labels))
            )

        plain = ctx.gate.shape(labelled("partner-tag-1"), None)
        assert ctx.gate.shape(labelled("partner-tag-2"), None) is plain
        assert ctx.gate.shape(labelled(), None) is plain
        hiv = ctx.gate.shape(labelled("hiv", "partner-tag-1"), None)
        assert hiv is not plain and hiv.extra == frozenset({"hiv"})
        # A plain set (a plugin ignoring the frozenset type) is taken as well.
        loose = dataclasses.replace(
            record, meta=dataclasses.replace(record.meta, sensitivity={"hiv"})
        )
        assert ctx.gate.shape(loose, None) is hiv
