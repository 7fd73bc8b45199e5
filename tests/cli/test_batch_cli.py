"""``gigapy batch``: CliRunner tests, and the kill -9 resume test under injected faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.bulk.test_batch_runner import chat_line, read_ids, write_jsonl
from tests.cli.conftest import GIGAPY, Invoke


def test_batch_command(cli: Invoke, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(25)))
    out = tmp_path / "out.jsonl"
    result = cli("batch", str(src), "-o", str(out), "-c", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("finished: 25/25 done, 0 failed")
    assert sorted(read_ids(out)) == sorted(f"r{i}" for i in range(25))
    again = cli("batch", str(src), "-o", str(out), "--json")
    assert again.exit_code == 0
    summary = json.loads(again.stdout)
    assert summary["done"] == 25 and summary["skipped"] == 25 and summary["remaining"] == 0


def test_batch_failures_exit_1_and_point_to_retry(cli: Invoke, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [chat_line(1), chat_line(2, model="NoSuchModel")])
    out = tmp_path / "answers.jsonl"
    result = cli("batch", str(src), "-o", str(out))
    assert result.exit_code == 1
    assert "1 failed" in result.stdout and "--retry-failed" in result.stdout
    assert read_ids(tmp_path / "answers.errors.jsonl") == ["r2"]
    custom = tmp_path / "errs.jsonl"
    other = cli("batch", str(src), "-o", str(tmp_path / "b.jsonl"), "--errors", str(custom), "--json")
    assert json.loads(other.stdout)["errors"] == str(custom)
    assert read_ids(custom) == ["r2"]


def test_batch_plain_progress_when_not_a_terminal(cli: Invoke, emu: Any, tmp_path: Path) -> None:
    emu.faults.set("latency_ms:30", routes=["chat/completions"])
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(30)))
    result = cli("batch", str(src), "-o", str(tmp_path / "out.jsonl"), "-c", "2", "--progress-interval", "0.1")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("batch: ")]
    assert lines, result.stderr
    assert "req/s" in lines[0] and "ETA" in lines[0] and "tokens=" in lines[0]
    quiet = cli("batch", str(src), "-o", str(tmp_path / "q.jsonl"), "--no-progress")
    assert "batch: " not in quiet.stderr


def test_batch_bad_line_goes_to_errors_and_the_run_goes_on(cli: Invoke, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(chat_line(1)) + "\n" + '{"id": "x"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = cli("batch", str(src), "-o", str(out))
    assert result.exit_code == 1, result.output
    assert "1 lines could not be sent" in result.stdout
    assert read_ids(out) == ["r1"]
    (error,) = [json.loads(line) for line in (tmp_path / "out.errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert error["id"] == "x" and error["line"] == 2 and error["error"]["field"] == "request"
    missing = cli("batch", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "out.jsonl"))
    assert missing.exit_code == 2
    bad_kind = cli("batch", str(src), "-o", str(out), "--kind", "images")
    assert bad_kind.exit_code == 2


def test_batch_bad_credentials_stop_the_run(cli: Invoke, tmp_path: Path) -> None:
    import base64

    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(5)))
    wrong = base64.b64encode(b"00000000-0000-0000-0000-000000000000:wrong").decode()
    result = cli("batch", str(src), "-o", str(tmp_path / "out.jsonl"), extra_env={"GIGACHAT_CREDENTIALS": wrong})
    assert result.exit_code == 1
    assert "error: batch stopped: 401" in result.stderr
    assert "rerun the same command" in result.stderr


def test_batch_via_batches_api(cli: Invoke, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(6)))
    out = tmp_path / "out.jsonl"
    result = cli("batch", str(src), "-o", str(out), "--via-batches-api", "--poll-interval", "0.05",
                 "--batch-size", "4", scope="GIGACHAT_API_CORP")
    assert result.exit_code == 0, result.output
    assert sorted(read_ids(out)) == sorted(f"r{i}" for i in range(6))
    denied = cli("batch", str(src), "-o", str(tmp_path / "o2.jsonl"), "--via-batches-api")
    assert denied.exit_code == 1
    assert "GIGACHAT_API_CORP" in denied.stderr


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_9_mid_run_then_resume_is_exactly_once(emu: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """SIGKILL a run twice under 5xx, 429 and dropped connections; rerun; every id exactly once."""
    n = 400
    bad = {f"r{i}" for i in range(0, n, 97)}  # requests the service rejects for good (unknown model)
    src = write_jsonl(tmp_path / "in.jsonl",
                      (chat_line(i, model="NoSuchModel" if f"r{i}" in bad else None) for i in range(n)))
    out = tmp_path / "out.jsonl"
    errs = tmp_path / "out.errors.jsonl"
    emu.faults.set("500:0.05,503:0.03,429:0.05,drop:0.04,latency_ms:15,retry_after:0",
                   routes=["chat/completions"])
    cmd = [GIGAPY, "batch", str(src), "-o", str(out), "-c", "8", "--retries", "6", "--no-progress"]

    for kill_at in (60, 200):
        proc = subprocess.Popen(cmd, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while _lines(out) < kill_at and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        with open(out, "ab") as fh:  # what a write torn by the kill would leave behind
            fh.write(b'{"id":"r1","response":{"choi')

    final = subprocess.run([*cmd, "--json"], env=subprocess_env, capture_output=True, text=True, timeout=60,
                           check=False)
    assert final.returncode in (0, 1), final.stderr
    summary = json.loads(final.stdout)
    assert summary["remaining"] == 0 and summary["skipped"] >= 200
    done, failed = read_ids(out), read_ids(errs)
    assert len(done) == len(set(done)) and len(failed) == len(set(failed))
    assert not set(done) & set(failed)
    assert sorted(done + failed) == sorted(f"r{i}" for i in range(n))
    assert bad <= set(failed)
    for line in out.read_text(encoding="utf-8").splitlines():
        assert "choices" in json.loads(line)["response"]
    assert emu.stats()["faults_injected"] > 0


def test_batch_budget_and_usage_in_json(cli: Invoke, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i, model="GigaChat") for i in range(40)))
    out = tmp_path / "out.jsonl"
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"version": "test", "unit_tokens": 1000, "scopes": {
        "GIGACHAT_API_PERS": {"models": {"GigaChat": {"input": 10, "output": 10}}}}}), encoding="utf-8")
    result = cli("batch", str(src), "-o", str(out), "-c", "2", "--budget", "8", "--prices", str(prices), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["budget_reached"] is True
    # (on a loaded machine a line may fail instead of being answered: it is accounted for either way)
    assert 0 < summary["done"] + summary["failed"] < 40 and summary["remaining"] > 0, summary
    assert summary["cost_estimate"]["rub"] <= 8 and summary["cost_estimate"]["estimate"] is True
    assert summary["usage"]["GigaChat"]["requests"] == summary["done"] + summary["failed"]
    assert len(read_ids(out)) == summary["done"]
    text = cli("batch", str(src), "-o", str(out), "--prices", str(prices))  # no budget: the rest, once
    assert "usage GigaChat:" in text.stdout and "RUB (estimate)" in text.stdout
    answered = read_ids(out)
    failed = read_ids(tmp_path / "out.errors.jsonl") if (tmp_path / "out.errors.jsonl").exists() else []
    assert len(answered) == len(set(answered))  # none twice
    assert sorted(answered + failed) == sorted(f"r{i}" for i in range(40))
    bad = cli("batch", str(src), "-o", str(out), "--prices", str(tmp_path / "missing.json"))
    assert bad.exit_code == 2 and "--prices" in bad.output
