"""Every command, not only ``gigapy batch``: a write the disk refuses (ENOSPC, EFBIG) is exit 4 with a
message naming what could not be written, and stdout is written whole or not at all (no silent short
write on an unbuffered stdout)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.hostile("bulk_writes")

GIGAPY = str(Path(sys.executable).with_name("gigapy"))
EXIT_IO = 4


def _limit(size: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def _run(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GIGAPY, *args], env={**env, "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True,
                          text=True, timeout=60, check=False, **kw)


def test_json_on_a_full_stdout_is_exit_4(emu: Any, subprocess_env: dict[str, str]) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run([GIGAPY, "models", "--json"], env=subprocess_env, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    assert proc.returncode == EXIT_IO, proc.stderr
    assert "cannot write to stdout: No space left on device (ENOSPC)" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("unbuffered", [True, False])
def test_json_that_does_not_fit_under_a_file_size_limit_is_exit_4_not_a_torn_success(
        emu: Any, tmp_path: Path, subprocess_env: dict[str, str], unbuffered: bool) -> None:
    whole = _run(["models", "--json"], subprocess_env)
    assert whole.returncode == 0
    size = len(whole.stdout.encode())
    out = tmp_path / "stdout.json"
    env = {**subprocess_env, "PYTHONUNBUFFERED": "1"} if unbuffered else {
        k: v for k, v in subprocess_env.items() if k != "PYTHONUNBUFFERED"}
    with open(out, "wb") as fh:
        proc = subprocess.run([GIGAPY, "models", "--json"], env=env, stdout=fh, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False, preexec_fn=_limit(size // 2))
    assert proc.returncode == EXIT_IO, proc.stderr
    assert "cannot write to stdout: File too large (EFBIG)" in proc.stderr
    assert len(out.read_bytes()) < size  # what went out is a prefix; the exit code says it is not whole


def test_a_download_past_a_file_size_limit_is_exit_4_and_leaves_no_file(
        emu: Any, tmp_path: Path, subprocess_env: dict[str, str], make_client: Any) -> None:
    data = os.urandom(64 * 1024)
    file_id = make_client().upload_file(data, filename="blob.txt", content_type="text/plain").id
    target = tmp_path / "blob.txt"
    proc = _run(["files", "download", file_id, "-o", str(target)], subprocess_env, preexec_fn=_limit(8 * 1024))
    assert proc.returncode == EXIT_IO, proc.stderr
    assert "cannot write" in proc.stderr and "File too large (EFBIG)" in proc.stderr
    assert "free space" in proc.stderr
    assert not target.exists() and not list(tmp_path.glob("*.part"))
    again = _run(["files", "download", file_id, "-o", str(target), "--json"], subprocess_env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["bytes"] == len(data) and target.read_bytes() == data
