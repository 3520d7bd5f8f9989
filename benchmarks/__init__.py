"""Benchmarks: `make bench` (python -m benchmarks) prints our figures beside bare-tool baselines."""
