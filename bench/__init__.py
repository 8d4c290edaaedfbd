"""Benchmarks of sknlme (run as ``python -m bench.<name>``)."""
