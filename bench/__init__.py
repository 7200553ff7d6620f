"""Benchmarks, run by `make bench`: each prints figures with their units and writes reports/bench/latest.json.

Speed is judged here, never in timed unit tests; `make test` runs each benchmark once at a tiny size
only to prove it still works (`python -m bench --tiny`).
"""
