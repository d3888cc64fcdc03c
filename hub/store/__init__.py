"""Store adapters: SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

from pathlib import Path

from hub.store.base import SqlStore, StoreError


def open_store_from_url(url: str, base_dir: Path | None = None) -> SqlStore:
    """The adapter for a store URL (``sqlite:///…`` or ``postgresql://…``), not yet opened."""
    if url.startswith("sqlite:///"):
        from hub.store.sqlite import SqliteStore

        return SqliteStore.from_url(url, base_dir)
    if url.startswith(("postgresql://", "postgres://")):
        from hub.store.postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(
        f"unsupported store url scheme in {url.split(':', 1)[0]!r}: "
        "use sqlite:///path or postgresql://user@host:port/db"
    )


__all__ = ["SqlStore", "StoreError", "open_store_from_url"]
