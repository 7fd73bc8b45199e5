"""Conventions people expect from a CLI: global options anywhere, shell completion, help that fits
80 columns, downloads that never overwrite silently, validated profiles, disk errors with exit 4."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest
from typer.testing import CliRunner

from gigapy import GigaChat
from gigapy.cli._app import app, hoist_global_options
from gigapy.cli._common import write_stdout
from gigapy.cli._ops import safe_filename
from gigapy.testing import client_settings
from tests.cli.conftest import GIGAPY, VENV_BIN, Invoke


def run(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GIGAPY, *args], env=env, capture_output=True, text=True, timeout=60, check=False,
                          **kwargs)


# --- global options after the command ---------------------------------------------------------------

@pytest.mark.parametrize(("given", "expected"), [
    (["chat", "--scope", "X", "hi"], ["--scope", "X", "chat", "hi"]),
    (["chat", "-m", "M", "--model", "N", "hi"], ["chat", "-m", "M", "--model", "N", "hi"]),  # chat's own --model
    (["files", "list", "--json", "--debug"], ["--debug", "files", "list", "--json"]),
    (["--emulator", "models", "--timeout=5"], ["--emulator", "--timeout=5", "models"]),
    (["chat", "-s", "--debug", "hi"], ["chat", "-s", "--debug", "hi"]),  # the value of -s, not an option
    (["chat", "--", "--debug"], ["chat", "--", "--debug"]),
    (["emulator", "--port", "0", "--debug"], ["emulator", "--port", "0", "--debug"]),
    (["doctor", "--timeout", "2", "--scope", "S"], ["--scope", "S", "doctor", "--timeout", "2"]),
])
def test_global_options_move_before_the_command(given: list[str], expected: list[str]) -> None:
    assert hoist_global_options(given) == expected


def test_global_options_after_the_command_work(subprocess_env: dict[str, str]) -> None:
    proc = run(["models", "--scope", "pers"], subprocess_env)
    assert proc.returncode == 2
    assert "did you mean GIGACHAT_API_PERS?" in proc.stderr
    proc = run(["chat", "--json", "--scope", "GIGACHAT_API_PERS", "--model", "GigaChat-2-Max", "Привет"],
               subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"].startswith("GigaChat-2-Max")


# --- shell completion ----------------------------------------------------------------------------------

def test_completion_installs_and_completes_in_bash(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    env = dict(subprocess_env, HOME=str(tmp_path), SHELL="/bin/bash",
               PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = run(["--install-completion", "bash"], env)
    assert proc.returncode == 0, proc.stderr
    assert "completion installed" in proc.stdout
    assert "gigapy" in (tmp_path / ".bashrc").read_text(encoding="utf-8")
    shell = pexpect.spawn("bash", ["--rcfile", str(tmp_path / ".bashrc"), "-i"], env=env, encoding="utf-8",
                          timeout=30, dimensions=(24, 100))
    shell.sendline("PS1='$ '")
    shell.expect_exact("$ ")
    shell.send("gigapy files dow\t")
    shell.expect("download")  # bash asked gigapy, and completed the word
    shell.sendcontrol("c")
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
    # what bash gets for other words (the protocol typer's script speaks)
    for words, cword, expected in (("gigapy mod", "1", {"model", "models"}), ("gigapy batches li", "2", {"list"}),
                                   ("gigapy --emul", "1", {"--emulator"})):
        proc = subprocess.run([GIGAPY], env=dict(env, _GIGAPY_COMPLETE="complete_bash", COMP_WORDS=words,
                                                 COMP_CWORD=cword), capture_output=True, text=True, timeout=60,
                              check=False)
        assert set(proc.stdout.split()) == expected, (words, proc.stdout, proc.stderr)


# --- help at 80 columns ----------------------------------------------------------------------------------

def _command_paths() -> list[list[str]]:
    import typer

    paths: list[list[str]] = [[]]

    def walk(command: Any, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "gigapy")
def test_help_fits_80_columns_without_bool_or_cut_names(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"},
                                prog_name="gigapy")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Usage: gigapy" in text
    assert "<bool>" not in text
    assert "…" not in text  # no option name (or word) cut off
    assert max(len(line) for line in text.splitlines()) <= 80


def test_emulator_help_looks_like_the_rest(subprocess_env: dict[str, str]) -> None:
    proc = run(["emulator", "--help"], dict(subprocess_env, COLUMNS="80"))
    assert proc.returncode == 0
    assert "Usage: gigapy emulator [OPTIONS]" in proc.stdout
    assert "╭─ Options" in proc.stdout and "--tls-cert" in proc.stdout and "--mtls-only" in proc.stdout
    assert "usage:" not in proc.stdout and "<bool>" not in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80


# --- files download -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "safe"), [
    ("../../etc/passwd", "passwd"), ("/etc/shadow", "shadow"), ("C:\\Windows\\evil.dll", "evil.dll"),
    (".bashrc", "bashrc"), ("a\x1b[2Jb.txt", "a_[2Jb.txt"), ("..", "ID"), ("", "ID"), ("отчёт.pdf", "отчёт.pdf"),
])
def test_server_file_names_are_sanitised(name: str, safe: str) -> None:
    assert safe_filename(name, fallback="ID") == safe


def test_files_download_never_overwrites_silently(cli: Invoke, emu: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with GigaChat(**client_settings(emu)) as client:
        uploaded = client.upload_file(b"new content", filename="../../notes.txt")
    monkeypatch.chdir(tmp_path)
    first = cli("files", "download", uploaded.id)
    assert first.exit_code == 0, first.output
    saved = tmp_path / "notes.txt"  # in the current directory, not two levels up
    assert saved.read_bytes() == b"new content"
    saved.write_bytes(b"my edits")
    again = cli("files", "download", uploaded.id)
    assert again.exit_code == 2
    assert "exists; not overwritten" in again.stderr and "--force" in again.stderr
    assert saved.read_bytes() == b"my edits"
    other = tmp_path / "other.txt"
    other.write_bytes(b"keep")
    assert cli("files", "download", uploaded.id, "-o", str(other)).exit_code == 2
    assert other.read_bytes() == b"keep"
    forced = cli("files", "download", uploaded.id, "--force")
    assert forced.exit_code == 0
    assert saved.read_bytes() == b"new content"


# --- profile set ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "message"), [
    ("scope", "pers", "did you mean GIGACHAT_API_PERS?"),
    ("timeout", "-1", "timeout: must be > 0"),
    ("timeout", "soon", "is not a number of seconds"),
    ("max_retries", "-3", "max_retries: must be >= 0"),
    ("max_connections", "0", "max_connections: must be >= 1"),
    ("verify_ssl_certs", "maybe", "is not true/false"),
    ("base_url", "gigachat.example", "expected an http:// or https:// URL"),
    ("scoep", "GIGACHAT_API_PERS", "did you mean 'scope'?"),
])
def test_profile_set_validates_values(cli: Invoke, config_dir: Path, key: str, value: str, message: str) -> None:
    result = cli("profile", "set", "work", key, value)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (config_dir / "config.ini").exists()  # nothing stored


def test_profile_set_stores_checked_values(cli: Invoke, config_dir: Path) -> None:
    assert cli("profile", "set", "work", "scope", " GIGACHAT_API_CORP ").exit_code == 0
    assert cli("profile", "set", "work", "verify_ssl_certs", "yes").exit_code == 0
    shown = json.loads(cli("profile", "show", "work", "--json").stdout)
    assert shown["scope"] == "GIGACHAT_API_CORP"
    assert shown["verify_ssl_certs"] in (True, "true")


# --- output that cannot be written -------------------------------------------------------------------

@pytest.mark.parametrize("args", [["models", "--json"], ["models"], ["chat", "Привет"], ["files", "list", "--json"]])
def test_a_full_disk_on_stdout_exits_4(subprocess_env: dict[str, str], args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run([GIGAPY, *args], env=subprocess_env, stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)
    assert proc.returncode == 4, proc.stderr
    assert "error: cannot write" in proc.stderr and "No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert proc.stderr.count("error:") == 1


def test_a_download_over_the_file_size_limit_exits_4(subprocess_env: dict[str, str], emu: Any,
                                                      tmp_path: Path) -> None:
    with GigaChat(**client_settings(emu)) as client:
        uploaded = client.upload_file(os.urandom(300_000), filename="big.pdf")
    target = tmp_path / "big.pdf"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    proc = run(["files", "download", uploaded.id, "-o", str(target)], subprocess_env, preexec_fn=limit)
    assert proc.returncode == 4, proc.stderr
    assert f"cannot write {target}: File too large" in proc.stderr
    assert not target.exists() or target.stat().st_size <= 100_000
    again = run(["files", "download", uploaded.id, "-o", str(tmp_path / "again.pdf")], subprocess_env)
    assert again.returncode == 0, again.stderr


def test_print_json_survives_short_writes_to_a_full_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # a full pipe makes writes short (or refused), not blocking
    received = bytearray()

    def reader() -> None:
        with os.fdopen(read_fd, "rb") as fh:
            while chunk := fh.read1(4096):
                received.extend(chunk)
                time.sleep(0.0005)

    thread = threading.Thread(target=reader)
    thread.start()
    text = "".join(f"строка {i:06d} {'x' * 40}\n" for i in range(20_000))  # ~1 MB, far above a pipe's buffer
    stream = io.TextIOWrapper(io.BufferedWriter(io.FileIO(write_fd, "w", closefd=True), buffer_size=8192),
                              encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stream)
    write_stdout(text)
    stream.close()
    thread.join(30)
    assert received.decode("utf-8") == text  # every byte once, in order
