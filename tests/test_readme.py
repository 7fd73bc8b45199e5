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


def gigapy_lines() -> list[str]:
    """Every `gigapy ...` command in bash blocks (install steps are what CI itself runs)."""
    lines = []
    for lang, code in BLOCKS:
        if lang != "bash":
            continue
        for line in code.splitlines():
            found = re.search(r"(?:^|&& )(?:\.venv/bin/)?(gigapy .*)$", line)
            if found:
                lines.append(found.group(1))
    return lines


@pytest.fixture
def env(emu: Any, tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("GIGACHAT_")}
    values.update(GIGACHAT_CREDENTIALS=DEMO_CREDENTIALS, GIGACHAT_BASE_URL=emu.base_url,
                  GIGACHAT_AUTH_URL=emu.auth_url, GIGAPY_CONFIG_DIR=str(tmp_path / "config"),
                  PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
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
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)] if "def test_" in code \
        else [sys.executable, str(script)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"example {index} failed:\n{code}\n--- stderr ---\n{proc.stderr}\n{proc.stdout}"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", gigapy_lines())
def test_cli_example(command: str, env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, f"{command}\n{proc.stderr}\n{proc.stdout}"
    assert proc.stdout.strip()
