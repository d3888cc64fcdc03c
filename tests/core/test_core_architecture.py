"""Boundaries of DESIGN.md, checked on the source: imports, the gate, the plugin docs."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from hub import hookspecs

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = {"aiohttp", "asyncpg", "sqlite3", "aiosqlite", "psycopg", "psycopg2"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_core_imports_no_plugin_framework_or_driver() -> None:
    for path in modules("hub/core"):
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top != "plugins", f"{path} imports a plugin ({name})"
            assert top not in DRIVERS, f"{path} imports {name}"
            if top == "hub":
                assert name.startswith("hub.core"), f"{path} imports {name} from outside the core"


def test_consent_imports_nothing_from_hub_or_plugins() -> None:
    for path in modules("consent"):
        for name in imports_of(path):
            assert name.split(".")[0] not in ("hub", "plugins"), f"{path} imports {name}"


def test_plugins_do_not_import_each_other() -> None:
    for plugin_dir in sorted(p for p in (ROOT / "plugins").iterdir() if p.is_dir()):
        if plugin_dir.name.startswith("__"):
            continue
        for path in plugin_dir.rglob("*.py"):
            for name in imports_of(path):
                parts = name.split(".")
                if parts[0] == "plugins" and len(parts) > 1:
                    assert parts[1] == plugin_dir.name, f"{path} imports {name}"


def test_only_the_engine_writes_to_the_outbox() -> None:
    """Outbox rows are written only next to a gate decision (engine, feed scheduler), through
    the store's transaction (the shared SQL and its PostgreSQL specialisation)."""
    allowed = {
        ROOT / "hub/core/engine.py",
        ROOT / "hub/store/sql.py",
        ROOT / "hub/store/pg_bulk.py",
        ROOT / "hub/delivery.py",
    }
    pattern = re.compile(r"\.enqueue\(|INSERT INTO outbox")
    for folder in ("hub", "plugins"):
        for path in modules(folder):
            if path in allowed:
                continue
            assert not pattern.search(path.read_text(encoding="utf-8")), (
                f"{path} writes to the outbox outside the gated path"
            )


def test_plugins_never_read_person_records_around_the_gate() -> None:
    """A plugin gets a person's records only from engine.disclose_person (gate + audit)."""
    for path in modules("plugins"):
        text = path.read_text(encoding="utf-8")
        assert "records_of_person(" not in text, f"{path} reads person records directly"


def test_every_hook_is_documented() -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    hooks = [
        n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("hub_")
    ]
    assert hooks, "no hooks found"
    for name in hooks:
        assert f"### `{name}(" in docs, f"hook {name} is missing from docs/plugins.md"
        assert inspect.getdoc(getattr(hookspecs, name)), f"hook {name} has no docstring"
