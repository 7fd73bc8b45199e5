"""Every example in the README runs as written against the emulator."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gigapy.emulator import DEMO_CREDENTIALS

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.M | re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
BIN = Path(sys.executable).parent


# The two install commands open the README; CI runs the second itself (.ci/run), and the
# first one's chat is run below. Every other `bash` block runs as a script; `sh` blocks need
# the real service (certificates, credentials) and are shown, not run.
BASH = [code for lang, code in BLOCKS[2:] if lang == "bash"]
FIRST_CHAT = re.search(r"\.venv/bin/(gigapy .*)$", BLOCKS[0][1].strip()).group(1)  # type: ignore[union-attr]


@pytest.fixture
def env(emu: Any, tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("GIGACHAT_")}
    values.update(
        GIGACHAT_CREDENTIALS=DEMO_CREDENTIALS,
        GIGACHAT_BASE_URL=emu.base_url,
        GIGACHAT_AUTH_URL=emu.auth_url,
        GIGAPY_CONFIG_DIR=str(tmp_path / "config"),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return values


def test_the_readme_starts_with_the_two_commands() -> None:
    first, second = (code.strip() for lang, code in BLOCKS[:2])
    assert "gigapy --emulator chat" in first
    assert second == (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]


def test_the_readme_has_a_russian_quick_start() -> None:
    assert "## Быстрый старт (по-русски)" in README


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_example(index: int, env: dict[str, str], tmp_path: Path) -> None:
    code = PYTHON[index]
    script = tmp_path / ("test_example.py" if "def test_" in code else "example.py")
    script.write_text(code, encoding="utf-8")
    cmd = (
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
        if "def test_" in code
        else [sys.executable, str(script)]
    )
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"example {index} failed:\n{code}\n--- stderr ---\n{proc.stderr}\n{proc.stdout}"
    assert "Traceback" not in proc.stderr


def test_the_first_command_chats_with_the_emulator(env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.run(
        shlex.split(FIRST_CHAT), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip()) > 20


@pytest.mark.parametrize("index", range(len(BASH)))
def test_bash_example(index: int, env: dict[str, str], tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + BASH[index]
    proc = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, f"{BASH[index]}\n--- stderr ---\n{proc.stderr}\n{proc.stdout}"
    assert proc.stdout.strip()
