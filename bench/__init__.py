"""Side-by-side benchmarks of embedcache against Flair 0.15.1, run as ``python -m bench --suite NAME``.

Each suite (:mod:`bench.suites`) measures with :mod:`bench.harness` and returns tables that
:mod:`bench.report` writes into ``BENCHMARKS.md`` (the committed record) and ``bench/results/<suite>.json``.
Benchmarks are not tests: they measure, they do not assert speed.
"""
