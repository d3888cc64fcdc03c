"""``hub init``: a working directory with hub.toml, a key file and an empty store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hub.keys import KeyRing
from hub.store import open_store_from_url

TEMPLATE = """\
# CIE Hub configuration. Every key is documented in README.md#configuration.

[store]
url = "sqlite:///hub-data/hub.db"        # or "postgresql://user@127.0.0.1:5432/db"

[keys]
file = "hub-data/keys.json"              # 0600; or set HUB_KEYS to the same JSON

[http]
host = "127.0.0.1"
port = 8080

[hl7]
port = 2575                               # MLLP listener; 0 disables

[[hl7.senders]]                           # who may send; an unlisted sender gets AR
facility = "MERCYGEN"                     # MSH-4 namespace id
agency = "hospital-x"                     # the agency that owns what it sends

[consent]
default_term_days = 1095
age_of_majority = 18
accept_verbal_sensitive = false

[[agencies]]
id = "shelter-a"
name = "Shelter A"
kind = "hmis"
networks = ["hmis", "cie"]
hmis_organization_ids = ["1"]

[[agencies]]
id = "hospital-x"
name = "Mercy General"
kind = "health"
networks = ["cie"]

[[agencies]]
id = "cie-211"
name = "211 San Diego"
kind = "cie"
networks = ["cie"]
"""


def init_directory(directory: Path, *, force: bool = False) -> list[Path]:
    """Write hub.toml, hub-data/keys.json (0600) and a migrated SQLite store."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "hub.toml"
    keys = directory / "hub-data" / "keys.json"
    for path in (config, keys):
        if path.exists() and not force:
            raise FileExistsError(0, "exists", str(path))
    config.write_text(TEMPLATE, encoding="utf-8")
    KeyRing.generate().write(keys)
    store = open_store_from_url("sqlite:///hub-data/hub.db", directory)

    async def migrate() -> None:
        await store.open()
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(migrate())
    return [config, keys, directory / "hub-data" / "hub.db"]
