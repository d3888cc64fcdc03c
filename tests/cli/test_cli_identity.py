"""``hub identity review`` and ``hub identity unlink``: undecided matches are listed, never
merged; links can be undone and decided by a person."""

from __future__ import annotations

from datetime import date

import orjson

from hub.synthetic import client


def test_review_resolve_and_unlink(hub_dir, hub_cli, seed_records) -> None:
    config = hub_dir()
    # same name, no birth date on the hospital side: a weak match, left for review
    seed_records(config, [client("21", given="Dan", family="Diaz", birth_date=date(1970, 1, 1))])
    seed_records(
        config,
        [
            client(
                "X9",
                given="Dan",
                family="Diaz",
                birth_date=None,
                source="hl7:MERCY",
                owner="hospital-x",
            )
        ],
    )
    items = orjson.loads(hub_cli("identity", "review").stdout)
    assert len(items) == 1 and items[0]["record"] == "client/hl7:MERCY/X9"
    assert "weak match" in items[0]["reason"]
    target = items[0]["candidates"][0]

    done = hub_cli("identity", "review", "--resolve", str(items[0]["id"]), "--link", target)
    assert done.exit_code == 0, done.output
    assert orjson.loads(hub_cli("identity", "review").stdout) == []

    undone = hub_cli("identity", "unlink", "client/hl7:MERCY/X9")
    assert undone.exit_code == 0 and target in undone.output
    again = orjson.loads(hub_cli("identity", "review").stdout)
    assert again[0]["reason"] == "link undone by an administrator"
    assert hub_cli("identity", "unlink", "client/nowhere/0").exit_code != 0
