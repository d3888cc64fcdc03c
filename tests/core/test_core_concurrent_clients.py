"""Two senders deliver the same new client at once (PostgreSQL, two transactions): both
link it, and the one that commits second takes the person the stored row names, so the
client has one person, its match keys one holder, and its audit entries that person."""

from __future__ import annotations

import asyncio

from hub.synthetic import client, name_tag
from tests.conftest import HubFactory, require_pg


async def test_the_same_new_client_from_two_transactions_has_one_person(
    hub_factory: HubFactory,
) -> None:
    require_pg()
    async with hub_factory(store="postgresql") as ctx:
        for i in range(10):
            family = f"Fam{name_tag(i)}"
            # One version stamp (a sender's correction): whichever transaction commits first,
            # neither is an older version the other makes stale, so both link the client.
            first = client(str(i), version="2025-01-01T00:00:00", family=family)
            second = client(str(i), version="2025-01-01T00:00:00", family=family, address="2 Elm")
            a, b = await asyncio.gather(ctx.engine.ingest([first]), ctx.engine.ingest([second]))
            async with ctx.store.transaction() as tx:
                row = await tx.get_record("client", "hmis:demo", str(i))
                assert row is not None and row.person_id
                holders = await tx.persons_with_keys(list(await tx.person_keys(row.person_id)))
            assert a.persons == b.persons == {f"hmis:demo/{i}": row.person_id}
            assert set().union(*holders.values()) == {row.person_id}
