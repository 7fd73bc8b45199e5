"""The pytest plugin (gigapy.testing): per-test isolation, GIGACHAT_* for code that builds its own
client, fast retries for fault tests. Users' test files run in a real pytest subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gigapy import GigaChat
from gigapy.testing import FAST_RETRY_DELAY, client_settings, fast_retries

#: The least the production backoff waits for three retries (0.5 s, 1 s, 2 s, each times >= 0.75).
PRODUCTION_MIN_WAIT = 0.75 * (0.5 + 1.0 + 2.0)

USER_TESTS = """
def test_1_uploads(gigachat_client):
    gigachat_client.upload_file(b"hello", filename="hello.txt")
    assert len(gigachat_client.get_all_files()) == 1


def test_2_sees_it_or_not(gigachat_client):
    print("FILES", len(gigachat_client.get_all_files()))


def test_3_own_client(gigachat_env, gigachat_faults):
    import time
    from gigapy import GigaChat
    gigachat_faults.enqueue("503", "503", "503")
    start = time.monotonic()
    with GigaChat(max_retries=3) as client:
        answer = client.completion("Привет")
    print("RETRIES", answer.retries_taken, "SECONDS", time.monotonic() - start)
"""


def run_user_tests(tmp_path: Path, ini: str = "") -> str:
    (tmp_path / "test_user.py").write_text(USER_TESTS, encoding="utf-8")
    if ini:
        (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGACHAT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_each_test_starts_with_a_clean_emulator_by_default(tmp_path: Path) -> None:
    out = run_user_tests(tmp_path)
    assert "FILES 0" in out  # the file uploaded by the test before is gone
    retries = out.split("RETRIES ")[1].split()
    assert retries[0] == "3"  # GigaChat() built by the code itself found the emulator, and retried
    assert float(retries[2]) < PRODUCTION_MIN_WAIT / 2


def test_gigachat_isolation_none_shares_the_state(tmp_path: Path) -> None:
    out = run_user_tests(tmp_path, "gigachat_isolation = none")
    assert "FILES 1" in out


def test_reset_forgets_files_and_faults_and_keeps_tokens(emu: Any) -> None:
    with GigaChat(**client_settings(emu)) as client:
        client.upload_file(b"hello", filename="hello.txt")
        emu.faults.set("500:1.0", routes=["models"])
        oauth_before = emu.stats()["oauth_requests"]
        emu.reset()
        assert client.get_all_files() == []
        assert client.all_models().data  # the fault is gone, the token still works
        assert emu.stats()["oauth_requests"] == 0 <= oauth_before


def test_fast_retries_cost_no_backoff(gigachat_client: GigaChat, gigachat_faults: Any, make_client: Any) -> None:
    gigachat_client = gigachat_client.with_options(max_retries=3)
    start = time.monotonic()
    gigachat_client.completion("Привет")
    baseline = time.monotonic() - start
    gigachat_faults.enqueue("503", "503", "503")
    start = time.monotonic()
    answer = gigachat_client.completion("Привет")
    took = time.monotonic() - start
    assert answer.retries_taken == 3
    assert took - baseline < PRODUCTION_MIN_WAIT / 4
    # a 429 with Retry-After: 1 is retried at once too
    gigachat_faults.enqueue("429")
    start = time.monotonic()
    assert gigachat_client.completion("Привет").retries_taken == 1
    assert time.monotonic() - start < gigachat_faults.retry_after / 2  # not the Retry-After the emulator sent
    # the same rules: a client with max_retries=0 still fails on the first 503
    from gigapy import APIStatusError

    strict = fast_retries(make_client(max_retries=0))
    gigachat_faults.enqueue("503")
    with pytest.raises(APIStatusError):
        strict.completion("Привет")
    assert FAST_RETRY_DELAY < 0.01


def test_fast_retries_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match="GigaChat or AsyncGigaChat"):
        fast_retries(object())


def test_a_fresh_emulator_is_private(gigachat_fresh_emulator: Any, gigachat_emulator: Any) -> None:
    assert gigachat_fresh_emulator.port != gigachat_emulator.port
    with GigaChat(**client_settings(gigachat_fresh_emulator)) as client:
        client.upload_file(b"x", filename="x.txt")
        assert len(client.get_all_files()) == 1
