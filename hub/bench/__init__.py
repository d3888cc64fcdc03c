"""``hub bench``: the benchmark suite (each hot path beside its floor, in the same run).

See :mod:`hub.bench.model` for what a benchmark is, :mod:`hub.bench.runner` for how the
suite runs them and ``docs/performance.md`` for the latest figures.
"""
