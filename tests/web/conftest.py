"""HTTP tests share the ``web_hub`` and ``make_key`` fixtures of tests/conftest.py."""
