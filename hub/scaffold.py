"""``hub plugins new``: write a new connector plugin project that installs and passes its tests.

The project is a separate distribution: a ``pyproject.toml`` registering the plugin under the
``cie_hub`` entry point, a package with a working NDJSON file sink and NDJSON codec, and a
test module that runs the hub's contract test kit (:mod:`hub.testing`) on both. The files
come from ``hub/scaffold_templates`` with ``{{name}}``-style placeholders filled in.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

TEMPLATES = Path(__file__).with_name("scaffold_templates")
NAME = re.compile(r"[a-z][a-z0-9_]{1,39}")


class ScaffoldError(ValueError):
    """The project cannot be written (a bad name, or a folder that is not empty)."""


@dataclass(frozen=True, slots=True)
class Names:
    """Every spelling of a plugin name the templates use."""

    name: str
    """The entry-point name and config section: ``demo_sink``."""
    dashed: str
    """The sink's name: ``demo-sink`` (the codec is ``demo-sink-ndjson``)."""
    package: str
    """The Python package: ``cie_hub_demo_sink``."""
    dist: str
    """The distribution: ``cie-hub-demo-sink``."""
    title: str
    """For prose: ``Demo Sink``."""

    @classmethod
    def of(cls, name: str) -> Names:
        """Check a plugin name and derive the other spellings."""
        if not NAME.fullmatch(name) or keyword.iskeyword(name) or name.endswith("_"):
            raise ScaffoldError(
                f"plugin name {name!r} must be 2-40 lower-case letters, digits and underscores, "
                "starting with a letter (e.g. demo_sink)"
            )
        dashed = name.replace("_", "-")
        return cls(
            name=name,
            dashed=dashed,
            package=f"cie_hub_{name}",
            dist=f"cie-hub-{dashed}",
            title=" ".join(p.capitalize() for p in name.split("_") if p),
        )

    def values(self) -> dict[str, str]:
        """Placeholder → text."""
        from hub import __version__

        return {
            "name": self.name,
            "dashed": self.dashed,
            "package": self.package,
            "dist": self.dist,
            "title": self.title,
            "hub_version": __version__,
        }


def render(text: str, values: dict[str, str]) -> str:
    """Fill ``{{placeholder}}`` marks; an unknown mark is an error (a template bug)."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ScaffoldError(f"template placeholder {{{{{key}}}}} is unknown")
        return values[key]

    return re.sub(r"\{\{([a-z_]+)\}\}", fill, text)


def plan(names: Names) -> dict[str, str]:
    """Relative path in the new project → template file (relative to :data:`TEMPLATES`)."""
    pkg = f"src/{names.package}"
    return {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"{pkg}/__init__.py": "package/__init__.py.tmpl",
        f"{pkg}/codec.py": "package/codec.py.tmpl",
        f"{pkg}/sink.py": "package/sink.py.tmpl",
        f"{pkg}/plugin.py": "package/plugin.py.tmpl",
        f"tests/test_{names.name}_contract.py": "tests/test_contract.py.tmpl",
    }


def scaffold(name: str, directory: Path) -> list[Path]:
    """Write the project for plugin ``name`` into ``directory`` (created; must be empty).

    Returns the files written. Raises :class:`ScaffoldError` for a bad name or a folder
    that already holds files.
    """
    names = Names.of(name)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ScaffoldError(f"{directory}: exists and is not an empty folder")
    values = names.values()
    written: list[Path] = []
    for target, template in plan(names).items():
        text = render((TEMPLATES / template).read_text(encoding="utf-8"), values)
        path = directory / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
