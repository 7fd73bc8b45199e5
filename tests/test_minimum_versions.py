"""The lowest versions pyproject.toml allows really work: httpx, aiohttp, pydantic and typer at their
declared lower bounds (installed from the package index into a directory of their own, ahead of the
suite's newer ones on the path) run the client sync and async, a stream, embeddings, and the
``gigapy`` command, against the emulator (which runs on them too)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

PACKAGES = ("httpx", "aiohttp", "pydantic", "typer")

SMOKE = """
import asyncio, sys
import aiohttp, httpx, pydantic, typer
from importlib.metadata import version
print(" ".join(f"{name}={version(name)}" for name in ("httpx", "aiohttp", "pydantic", "typer")))
from gigapy import AsyncGigaChat, GigaChat
from gigapy.emulator import DEMO_CREDENTIALS, EmulatorProcess

with EmulatorProcess() as emu:
    kw = dict(credentials=DEMO_CREDENTIALS, base_url=f"{emu.url}/api/v1", auth_url=f"{emu.url}/api/v2/oauth",
              scope="GIGACHAT_API_PERS")
    with GigaChat(**kw) as client:
        print("sync", bool(client.completion("hi").text))
        with client.completion_stream("hi") as stream:
            print("stream", bool("".join(stream.text_stream)), stream.get_final_completion().usage is not None)
        print("embedding", len(client.embedding(["a"]).data[0].embedding) > 0)

    async def main() -> None:
        async with AsyncGigaChat(**kw) as client:
            print("async", bool((await client.completion("hi")).text))
            async with client.completion_stream("hi") as stream:
                print("astream", bool("".join([t async for t in stream.text_stream])))

    asyncio.run(main())
"""


def lower_bounds() -> dict[str, str]:
    """``name -> version`` of the ``>=`` bound each of PACKAGES declares in pyproject.toml (runtime
    or the cli extra; read as text: tomllib is not in Python 3.10)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    bounds = dict(re.findall(r'^\s*"(' + "|".join(PACKAGES) + r')>=([0-9.]+)[,"]', text, re.MULTILINE))
    bounds.update(re.findall(r'\["(typer)>=([0-9.]+)[,"]', text))
    assert sorted(bounds) == sorted(PACKAGES), bounds
    return bounds


def test_the_declared_lower_bounds_run_the_client_the_emulator_and_the_cli(tmp_path: Path) -> None:
    bounds = lower_bounds()
    target = tmp_path / "minimum"
    pins = [f"{name}=={version}" for name, version in bounds.items()]
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--only-binary",
            ":all:",
            "--target",
            str(target),
            *pins,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(ROOT / "src")])
    env["GIGAPY_CONFIG_DIR"] = str(tmp_path / "config")
    run = subprocess.run(
        [sys.executable, "-c", SMOKE], capture_output=True, text=True, timeout=120, env=env, check=False, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0] == " ".join(f"{name}={v if v.count('.') == 2 else v + '.0'}" for name, v in bounds.items())
    assert lines[1:] == ["sync True", "stream True True", "embedding True", "async True", "astream True"]
    gigapy_cmd = [sys.executable, "-c", "import sys; from gigapy.cli import main; main(sys.argv[1:])"]
    cli = subprocess.run(
        [*gigapy_cmd, "--emulator", "chat", "hi"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
        cwd=tmp_path,
    )
    assert cli.returncode == 0 and cli.stdout.strip(), cli.stderr[-3000:]
    helped = subprocess.run(
        [*gigapy_cmd, "chat", "--help"], capture_output=True, text=True, timeout=60, env=env, check=False, cwd=tmp_path
    )
    assert helped.returncode == 0 and "--temperature" in helped.stdout, helped.stderr[-3000:]
