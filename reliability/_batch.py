"""``gigapy batch`` under chaos: run it as a subprocess, SIGKILL it once mid-run, rerun it with
the same arguments until it finishes, then check that every input id is in OUTPUT or in the
errors file exactly once, with no torn line, and that each answer is the answer to its request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gigapy.emulator import DEMO_CREDENTIALS

#: A fragment like the one a write cut by SIGKILL leaves behind (used when the kill tore nothing).
TORN_TAIL = b'{"id":"b00001","response":{"choi'
#: Every BAD_EVERY-th line asks for a model that does not exist: a typed 404 that must land in the errors file.
BAD_EVERY = 50


def gigapy_command() -> list[str]:
    """The installed ``gigapy`` script next to this interpreter (or the module, if absent)."""
    script = Path(sys.executable).parent / "gigapy"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gigapy.cli import main; main()"]


def child_env(base_url: str, auth_url: str, config_dir: Path) -> dict[str, str]:
    """The environment of the batch subprocess: GIGACHAT_* pointing at the emulator, nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
    env.update({
        "GIGACHAT_CREDENTIALS": DEMO_CREDENTIALS, "GIGACHAT_BASE_URL": base_url, "GIGACHAT_AUTH_URL": auth_url,
        "GIGACHAT_SCOPE": "GIGACHAT_API_PERS", "GIGAPY_CONFIG_DIR": str(config_dir),
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1",
    })
    return env


class LineCounter:
    """Counts the lines of a growing file, reading only what was appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def count(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size < self.offset:  # truncated (a rerun cut a torn tail): count again
                    self.offset = self.lines = 0
                fh.seek(self.offset)
                for _ in range(64):  # at most 64 MiB per call
                    chunk = fh.read(1 << 20)
                    if not chunk:
                        break
                    self.lines += chunk.count(b"\n")
                    self.offset += len(chunk)
        except FileNotFoundError:
            self.offset = self.lines = 0
        return self.lines


@dataclass
class BatchRun:
    """One invocation of ``gigapy batch``."""

    index: int
    started_at: float = 0.0  # monotonic
    seconds: float = 0.0
    returncode: int | None = None
    killed: bool = False
    lines_at_kill: int = 0
    summary: dict[str, Any] | None = None
    stderr_tail: str = ""


@dataclass
class ResultFile:
    """What a results file holds."""

    ids: list[str] = field(default_factory=list)
    lines: int = 0
    torn: int = 0  # lines that are not complete JSON result lines
    wrong: int = 0  # answers that are not the answer to their request


@dataclass
class BatchReport:
    """Everything the batch part measured."""

    command: list[str]
    lines: int
    expected_bad: int
    runs: list[BatchRun] = field(default_factory=list)
    torn_by_kill: bool = False
    simulated_tear: bool = False
    output: ResultFile = field(default_factory=ResultFile)
    errors: ResultFile = field(default_factory=ResultFile)
    missing: int = 0
    duplicates: int = 0
    in_both: int = 0
    unknown: int = 0
    bad_in_errors: int = 0
    bad_with_404: int = 0
    error_classes: dict[str, int] = field(default_factory=dict)
    finished: bool = False
    note: str = ""

    @property
    def killed_mid_run(self) -> bool:
        at = max((r.lines_at_kill for r in self.runs if r.killed), default=0)
        return 0 < at < self.lines

    @property
    def exactly_once(self) -> bool:
        return (self.finished and self.missing == 0 and self.duplicates == 0 and self.in_both == 0
                and self.unknown == 0 and self.output.torn == 0 and self.errors.torn == 0)


class BatchDriver:
    """Writes the input, drives the runs, verifies the files."""

    def __init__(self, workdir: Path, env: dict[str, str], *, lines: int, concurrency: int,
                 prompts: list[str], answers: list[str], kill_fraction: float = 0.3) -> None:
        self.workdir = workdir
        self.env = env
        self.lines = lines
        self.prompts = prompts
        self.answers = answers
        self.kill_at = max(1, int(lines * kill_fraction))
        self.input = workdir / "batch-input.jsonl"
        self.output = workdir / "batch-output.jsonl"
        self.errors = workdir / "batch-output.errors.jsonl"
        self.command = [*gigapy_command(), "batch", str(self.input), "-o", str(self.output), "-c", str(concurrency),
                        "--no-progress", "--json"]
        self.expected: dict[str, str | None] = {}  # id -> expected answer (None: must fail)
        self.report = BatchReport(self.command, lines, 0)
        self.counter = LineCounter(self.output)
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def progress_lines(self) -> int:
        """Lines in OUTPUT at the last look."""
        return self.counter.lines

    def write_input(self) -> None:
        with open(self.input, "w", encoding="utf-8") as fh:
            for i in range(self.lines):
                rid = f"b{i:05d}"
                p = (i * 7) % len(self.prompts)
                request: dict[str, Any] = {"messages": [{"role": "user", "content": self.prompts[p]}]}
                if i % BAD_EVERY == BAD_EVERY - 1:
                    request["model"] = "NoSuchModel"
                    self.expected[rid] = None
                else:
                    self.expected[rid] = self.answers[p]
                fh.write(json.dumps({"id": rid, "request": request}, ensure_ascii=False) + "\n")
        self.report.expected_bad = sum(1 for v in self.expected.values() if v is None)

    async def _start(self, index: int) -> tuple[asyncio.subprocess.Process, Path]:
        out = open(self.workdir / f"batch-run{index}.stdout", "wb")  # noqa: SIM115 - closed below
        err_path = self.workdir / f"batch-run{index}.stderr"
        err = open(err_path, "wb")  # noqa: SIM115 - closed below
        try:
            proc = await asyncio.create_subprocess_exec(*self.command, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                                                        stderr=err, env=self.env)
        finally:
            out.close()
            err.close()
        self._proc = proc
        return proc, err_path

    async def _finish(self, run: BatchRun, proc: asyncio.subprocess.Process, err_path: Path, started: float,
                      deadline: float) -> None:
        while proc.returncode is None:
            self.counter.count()
            if time.monotonic() >= deadline:
                proc.kill()
                await proc.wait()
                self.report.note = "the time bound stopped the batch before it finished"
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.25)
        run.started_at = started
        run.seconds = time.monotonic() - started
        run.returncode = proc.returncode
        stdout = (self.workdir / f"batch-run{run.index}.stdout").read_text(encoding="utf-8", errors="replace")
        with contextlib.suppress(ValueError):
            run.summary = json.loads(stdout) if stdout.strip() else None
        run.stderr_tail = err_path.read_text(encoding="utf-8", errors="replace")[-600:]

    async def run(self, deadline: float, max_reruns: int = 4) -> BatchReport:
        """Run 1 (SIGKILLed at ``kill_at`` output lines), then reruns until it finishes."""
        try:
            return await self._run(deadline, max_reruns)
        except BaseException:  # cancelled or failed: never leave a batch process behind
            proc = self._proc
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 5)
            raise

    async def _run(self, deadline: float, max_reruns: int) -> BatchReport:
        report = self.report
        started = time.monotonic()
        proc, err_path = await self._start(0)
        first = BatchRun(0)
        report.runs.append(first)
        while proc.returncode is None and time.monotonic() < deadline:
            if self.counter.count() >= self.kill_at:
                proc.kill()
                first.killed = True
                first.lines_at_kill = self.counter.lines
                break
            await asyncio.sleep(0.02)
        await self._finish(first, proc, err_path, started, deadline)
        if first.killed:
            data = self.output.read_bytes() if self.output.exists() else b""
            if data and not data.endswith(b"\n"):
                report.torn_by_kill = True
            else:  # the kill fell between two writes: leave the tail a torn write would leave
                with open(self.output, "ab") as fh:
                    fh.write(TORN_TAIL)
                report.simulated_tear = True
        for index in range(1, max_reruns + 1):
            if time.monotonic() >= deadline:
                break
            started = time.monotonic()
            proc, err_path = await self._start(index)
            rerun = BatchRun(index)
            report.runs.append(rerun)
            await self._finish(rerun, proc, err_path, started, deadline)
            summary = rerun.summary or {}
            if rerun.returncode in (0, 1) and summary.get("remaining") == 0 and not summary.get("interrupted"):
                report.finished = True
                break
        self.verify()
        return report

    def _read(self, path: Path, key: str) -> ResultFile:
        result = ResultFile()
        if not path.exists():
            return result
        for raw in path.read_bytes().splitlines(keepends=True):
            result.lines += 1
            try:
                item = json.loads(raw) if raw.endswith(b"\n") else None
            except ValueError:
                item = None
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or key not in item:
                result.torn += 1
                continue
            rid = item["id"]
            result.ids.append(rid)
            if key == "response":
                expected = self.expected.get(rid)
                try:
                    text = item["response"]["choices"][0]["message"]["content"]
                except (KeyError, IndexError, TypeError):
                    text = None
                if expected is None or text != expected:
                    result.wrong += 1
            else:
                error = item["error"] if isinstance(item["error"], dict) else {}
                cls = str(error.get("class"))
                self.report.error_classes[cls] = self.report.error_classes.get(cls, 0) + 1
                if self.expected.get(rid, "") is None:  # a request the service rejects
                    self.report.bad_in_errors += 1
                    # a 404, unless its one attempt met a fault after which it may have reached the model
                    # (a 502, a 504, a dropped connection): such a line is not sent twice, so it keeps that error
                    if error.get("status") == 404:
                        self.report.bad_with_404 += 1
        return result

    def verify(self) -> None:
        report = self.report
        report.error_classes = {}
        report.output = self._read(self.output, "response")
        report.errors = self._read(self.errors, "error")
        out_ids, err_ids = Counter(report.output.ids), Counter(report.errors.ids)
        both = out_ids + err_ids
        report.duplicates = sum(n - 1 for n in both.values() if n > 1)
        report.in_both = len(set(out_ids) & set(err_ids))
        report.unknown = sum(1 for rid in both if rid not in self.expected)
        report.missing = sum(1 for rid in self.expected if rid not in both)
