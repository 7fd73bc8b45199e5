"""Hostile inputs and servers: run every test marked ``@pytest.mark.hostile("<class>")`` through
the pytest API and count, per failure class, the cases tried and how they ended.

A case is one collected test item (each parametrized cell is one), and each example a
hypothesis test ran counts as a case of its own. ``python -m reliability`` runs this in a
subprocess (``python -m reliability._hostile --json PATH``), so the soak's process does not
import the test suite; the table goes into RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: (key, failure class, what the cases try): every class of the hostile review, in its order.
CLASSES: tuple[tuple[str, str, str], ...] = (
    ("bulk_writes", "Bulk output writes",
     "ENOSPC on a small tmpfs, EFBIG under RLIMIT_FSIZE, short writes; stop with exit 4, keep whole lines, "
     "rerun completes once"),
    ("whole_lines", "Resume trusts only whole lines",
     "torn, glued and garbage result lines (property test), damage mid-file; each missing id runs once"),
    ("one_lock", "One output, one run, whatever the path",
     "a second run through the same name, a symlink, a relative path, a hard link, a shared errors file"),
    ("unencodable", "Text that cannot be encoded",
     "lone surrogates in every text argument, batch lines and ids; the emulator's 4xx; a pair split across "
     "stream events"),
    ("headers", "Header values and body numbers",
     "non-ASCII, CR/LF, NUL in session/request/client ids, extra headers, tokens from the OAuth host; NaN and "
     "inf in bodies"),
    ("server_numbers", "Numbers from the server",
     "NaN, inf, negative and absurd Retry-After(-Ms), expiry, counters, usage, Content-Length (property tests, "
     "both clients)"),
    ("secrets", "No secret in reprs, logs or tracebacks",
     "every error path formatted with capture_locals=True and scanned for key, password, token, key password"),
    ("clock_skew", "Clock skew",
     "local clock 31 min ahead or behind, an already-expired expires_at, OAuth and password tokens"),
    ("trickle", "Timeouts a trickle cannot defeat",
     "one byte at a time, only `: ping` comments, half an event, endless streams; idle and total limits within "
     "±20%"),
    ("event_loops", "One async client, several event loops",
     "one AsyncGigaChat used from several threads, each with its own loop; no loop closes another's session"),
    ("no_double", "Never run a completion twice by surprise",
     "502, 504 and a dropped connection on every request that may reach the model, in the client, embed_many "
     "and bulk runs; the opt-in"),
)
TITLES = {key: title for key, title, _ in CLASSES}


@dataclass
class ClassResult:
    """How the cases of one failure class ended."""

    key: str
    title: str
    tried: str
    tests: int = 0  # test items (parametrized cells included)
    cases: int = 0  # items plus the examples of hypothesis tests
    examples: int = 0  # hypothesis examples among the cases
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.tests > 0 and self.failed == 0 and self.skipped == 0


@dataclass
class HostileReport:
    """Every class, the pytest exit code and the wall time."""

    classes: list[ClassResult]
    exit_code: int
    seconds: float
    unknown: list[str] = field(default_factory=list)  # items marked with a class that is not in CLASSES
    command: str = ""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.unknown and all(c.ok for c in self.classes)

    @property
    def cases(self) -> int:
        return sum(c.cases for c in self.classes)

    @property
    def tests(self) -> int:
        return sum(c.tests for c in self.classes)

    def to_json(self) -> dict[str, Any]:
        return {"classes": [asdict(c) for c in self.classes], "exit_code": self.exit_code, "seconds": self.seconds,
                "unknown": self.unknown, "command": self.command}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostileReport:
        return cls([ClassResult(**c) for c in data["classes"]], data["exit_code"], data["seconds"],
                   data.get("unknown", []), data.get("command", ""))


class Collector:
    """A pytest plugin: which class each item belongs to, its outcome, its hypothesis examples."""

    def __init__(self) -> None:
        self.results = {key: ClassResult(key, title, tried) for key, title, tried in CLASSES}
        self.class_of: dict[str, str] = {}
        self.examples: dict[str, int] = {}
        self.unknown: list[str] = []

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        for item in items:
            marker = item.get_closest_marker("hostile")
            if marker is None or not marker.args:
                continue
            key = str(marker.args[0])
            if key not in self.results:
                self.unknown.append(f"{item.nodeid} ({key})")
                continue
            self.class_of[item.nodeid] = key
            self.results[key].tests += 1

    @pytest.hookimpl(hookwrapper=True, trylast=True)  # innermost: inside hypothesis' own wrapper
    def pytest_runtest_call(self, item: Any) -> Generator[None, None, None]:
        """Count the examples of a hypothesis test (its statistics callback, chained to any other)."""
        try:
            from hypothesis.statistics import collector
        except ImportError:  # pragma: no cover - hypothesis is in the dev extra
            yield
            return
        previous: Callable[[Any], None] | None = collector.value
        nodeid = item.nodeid

        def note(stats: dict[str, Any]) -> None:
            count = 0
            for name, phase in stats.items():
                if name.endswith("-phase") and isinstance(phase, dict):
                    count += sum(1 for case in phase.get("test-cases", ()) if case.get("status") == "valid")
            self.examples[nodeid] = self.examples.get(nodeid, 0) + count
            if previous is not None:
                previous(stats)

        with collector.with_value(note):
            yield

    def pytest_runtest_logreport(self, report: Any) -> None:
        key = self.class_of.get(report.nodeid)
        if key is None:
            return
        result = self.results[key]
        result.seconds += report.duration
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.passed:
                result.passed += 1
            elif report.skipped:
                result.skipped += 1
            else:
                result.failed += 1
                if len(result.failures) < 5:
                    result.failures.append(report.nodeid)
        elif report.when == "teardown" and report.failed:
            result.failed += 1
            if len(result.failures) < 5:
                result.failures.append(report.nodeid + " (teardown)")

    def finish(self) -> list[ClassResult]:
        for nodeid, key in self.class_of.items():
            examples = self.examples.get(nodeid, 0)
            result = self.results[key]
            result.examples += examples
            result.cases += max(examples, 1)  # a plain test (or cell) is one case; a property test its examples
        return list(self.results.values())


def run_in_process(paths: Iterable[str] = ("tests",), extra: Iterable[str] = ()) -> HostileReport:
    """Run the marked tests here, through ``pytest.main``."""
    plugin = Collector()
    args = ["-m", "hostile", "-q", "-p", "no:cacheprovider", "--no-header", "-rfE", *extra, *paths]
    started = time.monotonic()
    code = int(pytest.main(list(args), plugins=[plugin]))  # a copy: pytest inserts its addopts into the list
    return HostileReport(plugin.finish(), code, time.monotonic() - started, plugin.unknown,
                         "pytest " + " ".join(args))


def run(progress: Callable[[str], None] | None = None, timeout: float = 1800.0) -> HostileReport:
    """Run the marked tests in a subprocess (cwd: the repository root) and read its report."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gigapy-hostile-") as tmp:
        out = Path(tmp) / "hostile.json"
        cmd = [sys.executable, "-m", "reliability._hostile", "--json", str(out)]
        if progress is not None:
            progress("hostile inputs and servers: " + " ".join(cmd[1:3]))
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,  # noqa: S603
                              check=False)
        if not out.exists():
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise RuntimeError(f"the hostile-input run wrote no report (exit {proc.returncode}): {tail}")
        report = HostileReport.from_json(json.loads(out.read_text(encoding="utf-8")))
        report.seconds = time.monotonic() - started
        if progress is not None:
            progress(f"hostile inputs and servers: {report.tests:,} tests, {report.cases:,} cases, "
                     f"{'pass' if report.passed else 'FAIL'} ({report.seconds:.0f} s)")
        return report


def table(report: HostileReport) -> list[str]:
    """The markdown table: per class, what is tried, tests, cases, result."""
    lines = ["| Class | What the cases try | Tests | Cases | Result |", "|---|---|---|---|---|"]
    for c in report.classes:
        cases = f"{c.cases:,}" + (f" (incl. {c.examples:,} hypothesis examples)" if c.examples else "")
        if c.ok:
            verdict = f"**pass**: {c.passed:,} of {c.tests:,} passed"
        elif c.tests == 0:
            verdict = "**FAIL**: no test is marked for this class"
        else:
            verdict = (f"**FAIL**: {c.failed} failed, {c.skipped} skipped of {c.tests:,}"
                       + (f" ({', '.join(f'`{f}`' for f in c.failures)})" if c.failures else ""))
        lines.append(f"| {c.title} | {c.tried} | {c.tests:,} | {cases} | {verdict} |")
    lines.append(f"| **all** |  | **{report.tests:,}** | **{report.cases:,}** | "
                 f"**{'pass' if report.passed else 'FAIL'}** |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability._hostile", description=__doc__)
    parser.add_argument("--json", type=Path, required=True, help="write the report here")
    args = parser.parse_args(argv)
    report = run_in_process()
    args.json.write_text(json.dumps(report.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
