"""Person ids: RFC 9562 version 7 UUIDs, in creation order, unguessable."""

from __future__ import annotations

import asyncio
import time
import uuid

from hub.core.ids import new_person_id
from hub.synthetic import client, name_tag
from tests.conftest import HubFactory


def test_a_person_id_is_a_version_7_uuid_carrying_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_person_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(hex=made)
    assert made == parsed.hex  # 32 lowercase hex digits, as ids were before
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_person_ids_made_later_sort_after_earlier_ones() -> None:
    earlier = [new_person_id() for _ in range(50)]
    time.sleep(0.003)
    later = [new_person_id() for _ in range(50)]
    assert max(earlier) < min(later)


def test_person_ids_made_in_the_same_millisecond_still_differ() -> None:
    made = {new_person_id() for _ in range(20_000)}
    assert len(made) == 20_000
    # The 62 random bits after the variant are not a counter: they differ id by id.
    randoms = {uuid.UUID(hex=m).int & ((1 << 62) - 1) for m in made}
    assert len(randoms) == len(made)


async def test_persons_stored_one_after_another_get_ids_in_that_order(
    hub_factory: HubFactory,
) -> None:
    async with hub_factory() as ctx:
        ids: list[str] = []
        for i in range(3):
            result = await ctx.engine.ingest([client(str(i), family=f"Fam{name_tag(i)}")])
            ids += result.persons.values()
            await asyncio.sleep(0.002)
    assert len(set(ids)) == 3 and ids == sorted(ids)
