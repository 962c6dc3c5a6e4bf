"""Benchmarks of telemetry-vault (``python -m bench --help``; see bench/README.md)."""
