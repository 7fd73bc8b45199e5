"""``gigapy --help`` stays light: no httpx, aiohttp, pydantic or emulator, and a quick start."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.cli.conftest import GIGAPY


def test_help_imports_no_heavy_modules() -> None:
    code = ("import sys\nfrom gigapy.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = {'httpx', 'aiohttp', 'pydantic', 'gigapy.emulator', 'gigapy._clients.sync_client',\n"
            "         'gigapy._clients.async_client'}\n"
            "sys.stderr.write('HEAVY=' + ','.join(sorted(heavy & set(sys.modules))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert "Usage" in proc.stdout
    assert proc.stderr.strip().endswith("HEAVY="), proc.stderr


def test_version_does_not_import_typer() -> None:
    code = ("import sys\nfrom gigapy.cli import main\nmain(['--version'])\n"
            "sys.stderr.write('TYPER=' + str('typer' in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.startswith("gigapy ")
    assert proc.stderr.strip().endswith("TYPER=False")


def test_help_starts_quickly() -> None:
    """A loose bound for a shared test machine; benchmarks/bench_cli.py checks the 300 ms target."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([GIGAPY, "--help"], capture_output=True, timeout=60, check=True)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0, f"gigapy --help took {best:.2f} s"
