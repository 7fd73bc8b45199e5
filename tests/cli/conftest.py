"""CLI test fixtures: the session emulator, an isolated config directory and a CliRunner.

Every test gets its own GIGAPY_CONFIG_DIR (nothing touches ~) and an environment with no
GIGACHAT_* variables except the ones pointing at the session's emulator.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from gigapy.cli._app import app
from gigapy.emulator import DEMO_CREDENTIALS

VENV_BIN = Path(sys.executable).parent
GIGAPY = str(VENV_BIN / "gigapy")

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private config directory and no GIGACHAT_* / GIGAPY_* settings from the outside."""
    for name in list(os.environ):
        if name.startswith(("GIGACHAT_", "GIGAPY_")):
            monkeypatch.delenv(name)
    config = tmp_path / "config"
    monkeypatch.setenv("GIGAPY_CONFIG_DIR", str(config))
    return config


def emulator_env(emu: Any, scope: str = "GIGACHAT_API_PERS") -> dict[str, str]:
    """Environment variables that point gigapy at ``emu``."""
    return {
        "GIGACHAT_CREDENTIALS": DEMO_CREDENTIALS,
        "GIGACHAT_BASE_URL": emu.base_url,
        "GIGACHAT_AUTH_URL": emu.auth_url,
        "GIGACHAT_SCOPE": scope,
    }


@pytest.fixture
def env(emu: Any) -> dict[str, str]:
    """The emulator environment (PERS scope)."""
    return emulator_env(emu)


@pytest.fixture
def cli(env: dict[str, str]) -> Invoke:
    """``cli("models", "--json")`` runs the app in-process against the session emulator."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, scope: str | None = None,
               extra_env: dict[str, str | None] | None = None) -> Result:
        run_env: dict[str, str | None] = dict(env)
        if scope is not None:
            run_env["GIGACHAT_SCOPE"] = scope
        run_env.update(extra_env or {})
        return runner.invoke(app, list(args), input=input, env=run_env, prog_name="gigapy")

    return invoke


@pytest.fixture
def subprocess_env(env: dict[str, str], config_dir: Path) -> dict[str, str]:
    """A full environment for running the real ``gigapy`` executable against the emulator."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
    full.update(env)
    full["GIGAPY_CONFIG_DIR"] = str(config_dir)
    full["PYTHONUNBUFFERED"] = "1"
    return full
