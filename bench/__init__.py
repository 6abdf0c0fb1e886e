"""Benchmarks of permstore: `python -m bench.run_all` (see docs/performance.md)."""
