"""The kit's pytest plugin (entry point ``pytest11``: ``cie_hub``).

Installing the hub makes it load in every pytest run of the environment, so it stays light:
it asks pytest to rewrite the kit's assertions (readable failure messages) and adds two
fixtures; the contract classes themselves need nothing from it.

* ``kit_records`` — the canonical fixture records (:data:`hub.testing.fixtures.RECORDS`);
* ``gated_hub`` — ``await gated_hub(sink, options, kinds=("client",), receiver=None)`` runs
  the fixture records through a real hub in ``tmp_path`` whose one feed delivers through
  ``sink`` and returns a :class:`hub.testing.gated.GatedRun` (what was queued, delivered and
  what arrived).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

pytest.register_assert_rewrite(
    "hub.testing.contracts", "hub.testing.gated", "hub.testing.receivers", "hub.testing.pii"
)

if TYPE_CHECKING:
    from hub.core.ports import Sink
    from hub.core.records import Record
    from hub.testing.gated import GatedRun
    from hub.testing.receivers import Receiver

GatedHub = Callable[..., Awaitable["GatedRun"]]


@pytest.fixture
def kit_records() -> tuple[Record, ...]:
    """Every canonical fixture record of the kit."""
    from hub.testing.fixtures import RECORDS

    return RECORDS


@pytest.fixture
def gated_hub(tmp_path: Path) -> GatedHub:
    """A function running the fixture records through a real hub onto a sink."""
    from hub.testing.gated import run_gated_hub

    async def run(
        sink: Sink,
        options: Mapping[str, Any],
        *,
        kinds: Sequence[str] = ("client",),
        receiver: Receiver | None = None,
    ) -> GatedRun:
        """Run the fixture records through a real hub onto ``sink`` (see the module doc)."""
        return await run_gated_hub(
            tmp_path / "gated-hub", sink, options, kinds=kinds, receiver=receiver
        )

    return run
