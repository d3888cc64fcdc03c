"""Helpers for CLI tests (the ``hub_cli`` fixture lives in tests/conftest.py)."""
