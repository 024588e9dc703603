"""Benchmarks for issue 7: figures measured on this machine, written to bench/RESULTS.md.

Run `make bench` (all, defaults sized for a 2-core box) or `python -m bench spawn --quick`.
Timings live here, never in tests.
"""
