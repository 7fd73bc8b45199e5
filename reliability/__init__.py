"""Chaos soak for gigapy.

``.venv/bin/python -m reliability`` starts ONE emulator subprocess with injected faults
(10% 5xx, 5% 429 with Retry-After, 2% dropped connections, 2% mid-stream drops, 20 s tokens),
drives 10,000 mixed requests (completions, streams, embeddings, file upload + download)
through ONE ``AsyncGigaChat`` and, at the same time, 3,000 through ONE ``GigaChat`` shared by
8 threads, runs ``gigapy batch`` on a few thousand lines alongside
(SIGKILLed once mid-run, then rerun), restarts the emulator once mid-run, measures the
client's sockets and RSS, and writes RELIABILITY.md with a verdict per property.

Options: ``--quick`` (~30 s smoke run), ``--minutes`` (time bound, default 5), ``--seed``,
``--requests``, ``--batch-lines``, ``--output``. ``tests/test_chaos.py`` runs the same soak at
small scale and asserts every property.
"""

from ._emulator import FAULTS, EmulatorProcess
from ._soak import SoakConfig, SoakResult, Verdict, run_soak

__all__ = ["FAULTS", "EmulatorProcess", "SoakConfig", "SoakResult", "Verdict", "run_soak"]
