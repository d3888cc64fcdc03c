"""Run the FHIR connector's benchmark figures on a fresh SQLite hub (not a pytest test).

/work/venv/bin/python tests/fhir/bench_fhir_ingest.py [N]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from hub.config import load_config
from hub.context import make_plugins, open_context
from hub.keys import KeyRing
from plugins.fhir.bench import ingest_figures, render_figures

CONFIG = """
[store]
url = "sqlite:///hub-data/hub.db"
[keys]
file = "hub-data/keys.json"
[[agencies]]
id = "hospital-x"
kind = "health"
networks = ["cie"]
"""


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "hub.toml").write_text(CONFIG, encoding="utf-8")
        KeyRing.generate().write(folder / "hub-data" / "keys.json")
        cfg = load_config(folder / "hub.toml")
        async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
            figures = {
                "ingest": await ingest_figures(ctx, "hospital-x", n),
                "render": render_figures(),
            }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
