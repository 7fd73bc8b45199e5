"""``gigapy batch`` against real limits: a file-size limit (RLIMIT_FSIZE), a full tmpfs, and a
second run on the same OUTPUT through every kind of path, each in real processes.

What must hold: a failed write stops the run with exit 4 and a message naming the file and the
OS error; every line left in OUTPUT and the errors file is whole; a rerun once the cause is gone
accounts for every id exactly once; a second run on one file is refused whatever path names it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import GIGAPY
from tests.cli.test_batch_runner import chat_line, read_ids, write_jsonl

pytestmark = pytest.mark.hostile("bulk_writes")

EXIT_IO = 4


def _file_size_limit(limit: int) -> Callable[[], None]:
    """preexec_fn: cap every file this process writes at ``limit`` bytes. SIGXFSZ keeps its default
    action (kill): ``gigapy batch`` must ignore it itself so the write fails with EFBIG instead."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def batch_cmd(src: Path, out: Path, *extra: str) -> list[str]:
    return [GIGAPY, "batch", str(src), "-o", str(out), "-c", "4", "--no-progress", *extra]


def run_cli(cmd: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env={**env, "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True, text=True,
                          timeout=60, check=False, **kw)


def assert_whole_lines(path: Path, field: str) -> list[str]:
    """Every line of ``path`` is a complete JSON line with ``field``; returns the ids."""
    data = path.read_bytes() if path.exists() else b""
    assert not data or data.endswith(b"\n"), f"{path.name} ends with a torn line: {data[-80:]!r}"
    ids = []
    for line in data.splitlines():
        item = json.loads(line)
        assert isinstance(item[field], dict)
        ids.append(item["id"])
    assert len(ids) == len(set(ids))
    return ids


def assert_exactly_once(out: Path, errs: Path, ids: set[str]) -> None:
    done, failed = assert_whole_lines(out, "response"), assert_whole_lines(errs, "error")
    assert not set(done) & set(failed)
    assert sorted(done + failed) == sorted(ids)


def test_file_size_limit_on_output_stops_with_exit_4_and_a_rerun_completes(
        emu: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    n, limit = 40, 8000  # about 11 answers fit; the write that crosses the limit is short, the next one EFBIG
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(n)))
    out, errs = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    first = run_cli(batch_cmd(src, out), subprocess_env, preexec_fn=_file_size_limit(limit))
    assert first.returncode == EXIT_IO, first.stderr
    assert f"cannot write {out}: File too large (EFBIG)" in first.stderr
    assert "rerun the same command" in first.stderr
    saved = assert_whole_lines(out, "response")  # the short write was cut back to the last whole line
    assert 0 < len(saved) < n and out.stat().st_size <= limit
    assert not (tmp_path / "out.jsonl.corrupt").exists()

    second = run_cli([*batch_cmd(src, out), "--json"], subprocess_env)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["skipped"] == len(saved) and summary["done"] == n and not summary["warnings"]
    assert_exactly_once(out, errs, {f"r{i}" for i in range(n)})


def test_file_size_limit_on_the_errors_file_is_handled_the_same(
        emu: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    n, limit = 40, 3000  # every line fails: requests the service rejects and lines that cannot be sent
    src = tmp_path / "in.jsonl"
    src.write_text("".join((json.dumps(chat_line(i, model="NoSuchModel")) if i % 2 else "{not json") + "\n"
                           for i in range(n)), encoding="utf-8")
    out, errs = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    first = run_cli(batch_cmd(src, out), subprocess_env, preexec_fn=_file_size_limit(limit))
    assert first.returncode == EXIT_IO, first.stderr
    assert f"cannot write {errs}: File too large (EFBIG)" in first.stderr
    saved = [json.loads(line) for line in errs.read_bytes().splitlines()]
    assert errs.read_bytes().endswith(b"\n") and 0 < len(saved) < n

    second = run_cli([*batch_cmd(src, out), "--json"], subprocess_env)
    assert second.returncode == 1, second.stderr  # some lines failed: exit 1, not 4
    summary = json.loads(second.stdout)
    sent_before = sum(1 for r in saved if r["error"]["attempts"])  # bad input is checked again, not skipped
    assert summary["failed"] == n and summary["skipped"] == sent_before and summary["remaining"] == 0
    records = [json.loads(line) for line in errs.read_bytes().splitlines()]
    keys = [r["id"] if r["id"] is not None else r["line"] for r in records]
    assert len(keys) == len(set(keys)) == n  # each line once: bad lines by line number, the others by id
    assert sorted(r["line"] for r in records) == list(range(1, n + 1))


def test_summary_that_cannot_be_written_is_exit_4(emu: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    limit = 16_000
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(3)))
    out = tmp_path / "out.jsonl"
    stdout_file = tmp_path / "stdout.txt"
    stdout_file.write_bytes(b"x" * (limit - 40))  # the JSON summary does not fit under the limit
    with open(stdout_file, "ab") as stdout:
        proc = subprocess.run([*batch_cmd(src, out), "--json"], env={**subprocess_env, "PYTHONDONTWRITEBYTECODE": "1"},
                              stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
                              preexec_fn=_file_size_limit(limit))
    assert proc.returncode == EXIT_IO, proc.stderr
    assert "cannot write the summary to stdout: File too large (EFBIG)" in proc.stderr
    assert sorted(assert_whole_lines(out, "response")) == ["r0", "r1", "r2"]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root and mount(2), as in CI); skipped only when mounting is impossible."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                          text=True, timeout=30, check=False)
    if proc.returncode != 0:
        pytest.skip(f"mount -t tmpfs is unavailable here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30, check=False)


def test_full_disk_stops_with_exit_4_and_a_rerun_after_freeing_space_completes(
        emu: Any, tmp_path: Path, small_tmpfs: Path, subprocess_env: dict[str, str]) -> None:
    n = 200  # about 140 KB of answers for a 64 KiB file system
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(n)))
    out, errs = small_tmpfs / "out.jsonl", small_tmpfs / "out.errors.jsonl"
    emu.reset_stats()
    first = run_cli(batch_cmd(src, out), subprocess_env)
    assert first.returncode == EXIT_IO, first.stderr
    assert f"cannot write {out}: No space left on device (ENOSPC)" in first.stderr
    saved = assert_whole_lines(out, "response")
    assert 0 < len(saved) < n
    sent_first = emu.stats()["api_requests"].get("chat", 0)

    subprocess.run(["mount", "-o", "remount,size=1m", str(small_tmpfs)], check=True, timeout=30)  # free space
    second = run_cli([*batch_cmd(src, out), "--json"], subprocess_env)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["skipped"] == len(saved) and summary["done"] == n
    assert_exactly_once(out, errs, {f"r{i}" for i in range(n)})
    # the rerun sent only what the first run had not saved
    assert emu.stats()["api_requests"].get("chat", 0) - sent_first == n - len(saved)


def test_full_disk_during_resume_repair_keeps_the_file(
        emu: Any, tmp_path: Path, small_tmpfs: Path, subprocess_env: dict[str, str]) -> None:
    """Setting a corrupt line aside rewrites OUTPUT; with no room for that, the old file stays as it was."""
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(3)))
    out = small_tmpfs / "out.jsonl"
    good = b"".join(json.dumps({"id": f"x{i}", "response": {"pad": "z" * 200}}).encode() + b"\n" for i in range(120))
    before = b"garbage\n" + good  # the corrupt line comes first: only a rewrite can remove it
    out.write_bytes(before)
    pages = -(-len(before) // 4096)
    (small_tmpfs / "filler").write_bytes(b"\0" * (16 - pages - 2) * 4096)  # two pages left: too few for a copy
    proc = run_cli(batch_cmd(src, out), subprocess_env)
    assert proc.returncode == EXIT_IO, proc.stderr
    assert "No space left on device (ENOSPC)" in proc.stderr
    assert out.read_bytes() == before
    assert not [p.name for p in small_tmpfs.iterdir() if p.name.endswith(".tmp")]
    subprocess.run(["mount", "-o", "remount,size=1m", str(small_tmpfs)], check=True, timeout=30)  # free space
    again = run_cli([*batch_cmd(src, out), "--json"], subprocess_env)
    assert again.returncode == 0, again.stderr
    ids = read_ids(out)
    assert ids[:120] == [f"x{i}" for i in range(120)] and sorted(ids[120:]) == ["r0", "r1", "r2"]
    assert (small_tmpfs / "out.jsonl.corrupt").read_bytes() == b"garbage\n"


# --- one output, one run, whatever the path ------------------------------------------------------

def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.hostile("one_lock")
def test_second_run_on_the_same_file_is_refused_through_any_path(
        emu: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """Two real processes per case: the same name, a symlink, a relative vs an absolute path, a
    hard link, and two outputs that share one errors file. The first runs would take 15 s; they
    are stopped (SIGTERM) once every second run has been refused."""
    n = 300
    emu.faults.set("latency_ms:100", routes=["chat/completions"])
    cases: dict[str, tuple[list[str], list[str], Path, str | None]] = {}
    for name in ("same", "symlink", "relative", "hardlink", "errors"):
        case = tmp_path / name
        (case / "real").mkdir(parents=True)
        src = write_jsonl(case / "in.jsonl", (chat_line(i) for i in range(n)))
        out = case / "real" / "out.jsonl"
        first = batch_cmd(src, out, "-c", "2")
        second, cwd = batch_cmd(src, out, "-c", "2"), None
        if name == "symlink":
            (case / "link.jsonl").symlink_to(out)
            second = batch_cmd(src, case / "link.jsonl", "-c", "2")
        elif name == "relative":
            second, cwd = batch_cmd(Path("in.jsonl"), Path("real/out.jsonl"), "-c", "2"), str(case)
        elif name == "hardlink":
            out.touch()
            os.link(out, case / "other.jsonl")
            second = batch_cmd(src, case / "other.jsonl", "-c", "2")
        elif name == "errors":
            shared = case / "shared.errors.jsonl"
            first = [*batch_cmd(src, out, "-c", "2"), "--errors", str(shared)]
            second = [*batch_cmd(src, case / "b.jsonl", "-c", "2"), "--errors", str(shared)]
        cases[name] = (first, second, out, cwd)

    env = {**subprocess_env, "PYTHONDONTWRITEBYTECODE": "1"}
    firsts = {name: subprocess.Popen(c[0], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for name, c in cases.items()}
    try:
        deadline = time.monotonic() + 30
        while any(_lines(c[2]) < 1 for c in cases.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        seconds = {name: subprocess.Popen(c[1], env=env, cwd=c[3], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True) for name, c in cases.items()}
        refused = {name: (*p.communicate(timeout=60), p.returncode) for name, p in seconds.items()}
        for name, (_, err, code) in refused.items():
            assert code == 2, (name, err)
            assert "another run is writing" in err, (name, err)
        assert all(p.poll() is None for p in firsts.values()), "the first runs must outlive the second ones"
        for p in firsts.values():
            p.send_signal(signal.SIGTERM)  # a clean stop: what finished is saved
        stopped = {name: p.communicate(timeout=60)[1] for name, p in firsts.items()}
    finally:
        for p in firsts.values():
            if p.poll() is None:
                p.kill()
    for name, p in firsts.items():
        assert p.returncode == 130, (name, stopped[name])
        ids = assert_whole_lines(cases[name][2], "response")  # only the first run wrote: no id twice
        assert 0 < len(ids) < n, name
    assert not (tmp_path / "errors" / "b.jsonl").exists()  # the refused run left nothing behind

    emu.faults.clear()  # the lock is gone with its run: resuming through the symlink finishes the job
    symlink_case = cases["symlink"]
    resumed = run_cli([*symlink_case[1], "--json"], subprocess_env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["done"] == n
    assert_exactly_once(symlink_case[2], symlink_case[2].with_name("out.errors.jsonl"), {f"r{i}" for i in range(n)})


def test_via_batches_api_state_file_past_the_limit_names_the_batch(
        emu: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The saved state (which batches were submitted) goes through the checked path too; when it
    cannot be saved the error names the submitted batch, and fetching it first avoids paying twice."""
    n = 30
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(n)))
    out, errs = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    env = {**subprocess_env, "GIGACHAT_SCOPE": "GIGACHAT_API_CORP"}
    cmd = [*batch_cmd(src, out), "--via-batches-api", "--poll-interval", "0.05"]
    first = run_cli(cmd, env, preexec_fn=_file_size_limit(200))  # the state lists 30 ids: over 200 bytes
    assert first.returncode == EXIT_IO, first.stderr
    assert f"cannot write {tmp_path / '.out.jsonl.batches.json'}: File too large (EFBIG)" in first.stderr
    batch_id = first.stderr.split("batch ", 2)[2].split(" ", 1)[0]  # "batch stopped: ...; batch <id> was submitted"
    assert "was submitted but not recorded" in first.stderr
    assert not list(tmp_path.glob(".*.tmp"))

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the service finishes the batch; then follow the advice
        fetched = run_cli([GIGAPY, "batches", "results", batch_id, "-o", str(out)], env)
        if fetched.returncode == 0:
            break
        time.sleep(0.1)
    assert fetched.returncode == 0, fetched.stderr
    emu.reset_stats()
    second = run_cli([*cmd, "--json"], env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["skipped"] == n
    assert not [r for r in emu.requests if r.path.endswith("/batches") and r.method == "POST"]  # not paid twice
    assert_exactly_once(out, errs, {f"r{i}" for i in range(n)})
