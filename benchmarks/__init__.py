"""Benchmarks: the client (``python -m benchmarks``) and the emulator (``bench_emulator.py``)."""
