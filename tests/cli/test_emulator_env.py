"""`gigapy emulator` prints ready-to-paste `export GIGACHAT_...` lines; `--env` prints only those.

Run as a user would: the real executable, a real shell (`eval "$(gigapy emulator --env &)"`),
pipes that are not line-buffered (no PYTHONUNBUFFERED), and the printed settings used by
another gigapy process.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gigapy.emulator import DEMO_CREDENTIALS

from .conftest import GIGAPY, VENV_BIN

NAMES = ["GIGACHAT_BASE_URL", "GIGACHAT_AUTH_URL", "GIGACHAT_CREDENTIALS", "GIGACHAT_SCOPE", "GIGAPY_EMULATOR_PID"]


@pytest.fixture
def clean_env(config_dir: Path) -> dict[str, str]:
    """The environment with no GIGACHAT_* settings and stdout buffered as in a pipe."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIGACHAT_", "GIGAPY_")) and k != "PYTHONUNBUFFERED"}
    env["GIGAPY_CONFIG_DIR"] = str(config_dir)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def parse_exports(text: str) -> dict[str, str]:
    """``export NAME=VALUE`` lines as a shell reads them; anything else fails the test."""
    values = {}
    for line in text.splitlines():
        words = shlex.split(line)
        assert len(words) == 2 and words[0] == "export" and "=" in words[1], line
        name, value = words[1].split("=", 1)
        values[name] = value
    return values


def models_with(env: dict[str, str], values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GIGAPY, "models", "--json"], env={**env, **values}, capture_output=True, text=True,
                          timeout=60, check=False)


def gone(pid: int, within: float = 15.0) -> bool:
    """True once ``pid`` has exited (a zombie left to an init that does not reap counts as exited)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_foreground_prints_the_export_lines_first_and_they_work(clean_env: dict[str, str]) -> None:
    proc = subprocess.Popen([GIGAPY, "emulator", "--port", "0"], env=clean_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        head = "".join(iter(proc.stdout.readline, "\n"))   # up to the blank line after the exports
        values = parse_exports(head)
        assert list(values) == NAMES
        assert values["GIGACHAT_CREDENTIALS"] == DEMO_CREDENTIALS
        assert int(values["GIGAPY_EMULATOR_PID"]) == proc.pid
        assert "listening on" in proc.stdout.readline()    # then the human banner
        models = models_with(clean_env, values)
        assert models.returncode == 0, models.stderr
        assert "GigaChat-2" in models.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_env_prints_only_the_exports_then_closes_stdout_and_keeps_serving(clean_env: dict[str, str]) -> None:
    proc = subprocess.Popen([GIGAPY, "emulator", "--env", "--port", "0"], env=clean_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        text = proc.stdout.read()                           # returns: the emulator closed its stdout
        assert proc.poll() is None, "the emulator must keep serving after printing"
        values = parse_exports(text)
        assert list(values) == NAMES
        models = models_with(clean_env, values)
        assert models.returncode == 0, models.stderr
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err


def test_eval_in_a_shell_starts_it_in_the_background(clean_env: dict[str, str], tmp_path: Path) -> None:
    script = """set -euo pipefail
eval "$(gigapy emulator --env --port 0 &)"
trap 'kill "$GIGAPY_EMULATOR_PID"' EXIT
echo "pid=$GIGAPY_EMULATOR_PID"
gigapy chat "Привет! Как дела?"
"""
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=clean_env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    first, answer = proc.stdout.split("\n", 1)
    assert len(answer.strip()) > 10
    assert gone(int(first.removeprefix("pid="))), "the trap stops the background emulator"


def test_a_background_job_keeps_serving_through_ctrl_c(clean_env: dict[str, str]) -> None:
    # a shell without job control starts `cmd &` with SIGINT ignored; the emulator keeps it so
    proc = subprocess.Popen([GIGAPY, "emulator", "--env", "--port", "0"], env=clean_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert proc.stdout is not None
        values = parse_exports(proc.stdout.read())
        proc.send_signal(signal.SIGINT)
        models = models_with(clean_env, values)
        assert models.returncode == 0, models.stderr
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_python_m_gigapy_emulator_has_env_too(clean_env: dict[str, str]) -> None:
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "gigapy.emulator", "--env", "--port", "0", "--no-limits"],
                            env=clean_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert list(parse_exports(proc.stdout.read())) == NAMES
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_the_lines_for_https_and_mtls_only_say_what_else_to_set() -> None:
    from gigapy.emulator import EmulatorConfig, env_lines

    https = env_lines(EmulatorConfig(tls_cert="server.pem", tls_key="server.key"), 8443)
    assert "export GIGACHAT_BASE_URL=https://127.0.0.1:8443/api/v1\n" in https
    assert "GIGACHAT_CREDENTIALS" in https and "# HTTPS: trust the CA that signed server.pem" in https
    mtls = env_lines(EmulatorConfig(tls_cert="server.pem", tls_key="server.key", client_ca="ca.pem",
                                    mtls_only=True), 8443)
    exported = [line.split("=", 1)[0] for line in mtls.splitlines() if line.startswith("export ")]
    assert exported == ["export GIGACHAT_BASE_URL", "export GIGAPY_EMULATOR_PID"]
    assert "GIGACHAT_CERT_FILE and GIGACHAT_KEY_FILE" in mtls and "signed by ca.pem" in mtls
