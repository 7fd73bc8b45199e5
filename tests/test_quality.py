"""The code quality bar, enforced by the suite: ruff clean, mypy --strict clean, light imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_is_clean() -> None:
    proc = run(str(BIN / "ruff"), "check", "src", "tests", "benchmarks", "examples")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_is_clean_on_src() -> None:
    proc = run(str(BIN / "mypy"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_gigapy_is_light() -> None:
    code = ("import sys, gigapy; heavy = {'httpx', 'aiohttp', 'pydantic', 'gigapy.emulator', 'gigapy.cli', "
            "'typer', 'rich'} & set(sys.modules); print(sorted(heavy))")
    proc = run(sys.executable, "-c", code)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
