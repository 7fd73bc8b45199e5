"""Every benchmark, one command: ``python -m benchmarks all [--quick]``.

Runs, one after another (never two at once: they would share the cores): the client scenarios
(``python -m benchmarks``), cold start, scaling, the CLI, the emulator, telemetry, the
OpenAI-compatible bridge and the fleet. Each writes its own section of RESULTS.md; this adds a
``## Summary`` section at the top: machine, versions, commit, date, how long each took, and every
target row the benchmarks printed (met or missed).

``--quick`` uses small counts (a few minutes in all) and writes to ``benchmarks/.work/RESULTS-quick.md``
(a copy of RESULTS.md), so a smoke run never replaces measured figures. Logs of every run go to
``benchmarks/.work/all-<time>/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import ROOT, WORK, machine, versions

PY = sys.executable
#: name -> (full command, quick command); each writes its section of the results file
PLAN: dict[str, tuple[list[str], list[str]]] = {
    "client": (["-m", "benchmarks", "--write"], ["-m", "benchmarks", "--quick", "--write"]),
    "coldstart": (["-m", "benchmarks.bench_coldstart", "--write"], ["-m", "benchmarks.bench_coldstart", "--quick",
                                                                     "--write"]),
    "scaling": (["-m", "benchmarks.bench_scaling", "--write"], ["-m", "benchmarks.bench_scaling", "--quick",
                                                                 "--write"]),
    "cli": (["benchmarks/bench_cli.py", "--write"], ["benchmarks/bench_cli.py", "--quick", "--write"]),
    "emulator": (["benchmarks/bench_emulator.py", "--write"],
                 ["benchmarks/bench_emulator.py", "--requests", "2000", "--streams", "2", "--stream-tokens", "5000",
                  "--memory-requests", "2000", "--seconds", "10", "--memory-seconds", "10", "--write"]),
    "telemetry": (["benchmarks/bench_telemetry.py", "--write"], ["benchmarks/bench_telemetry.py", "--quick",
                                                                  "--write"]),
    "openai": (["-m", "benchmarks.bench_openai"], ["-m", "benchmarks.bench_openai", "--quick"]),  # quick: log only
    "fleet": (["-m", "benchmarks.bench_fleet"], ["-m", "benchmarks.bench_fleet", "--n", "40", "--gen", "0.2"]),
}
TARGET_ROW = re.compile(r"^\|.*\b(met|missed)\b.*\|\s*$|^\|.*[✔✘].*\|\s*$|^-.*\btarget\b.*\b(met|missed)\b")


def git_commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


SUMMARY = re.compile(r"^## Summary\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
ROW = re.compile(r"^\| ([^|]+?) \| (-?\d+) \| [0-9.]+ \| \d+ \| \d+ \|$")


def earlier_rows(previous: str, rerun: set[str]) -> tuple[str, list[str], list[str]]:
    """From an earlier summary: its first line, and the table rows and missed lines of the
    benchmarks not run again (a partial run keeps the rest of the summary)."""
    lines = previous.splitlines()
    first = next((line for line in lines if line.startswith("`python -m benchmarks all")), "")
    table = [line for line in lines if (m := ROW.match(line)) and m[1] not in rerun]
    kept = {ROW.match(line)[1] for line in table}  # type: ignore[index]
    missed = [line for line in lines if line.startswith("- ") and line[2:].split(":", 1)[0] in kept]
    return first, table, missed


def summary(rows: list[tuple[str, int, float, list[str]]], quick: bool, commit: str, started: str,
            previous: str = "") -> str:
    """The ``## Summary`` section; with ``previous`` (the section an earlier run wrote) the rows of
    the benchmarks not in ``rows`` are kept from it."""
    m, v = machine(), versions()
    first, kept_rows, kept_missed = earlier_rows(previous, {row[0] for row in rows}) if previous else ("", [], [])
    again = ",".join(row[0] for row in rows)
    header = f"`python -m benchmarks all{' --quick' if quick else ''}`, started {started}; gigapy at commit {commit}."
    if kept_rows:
        header = (f"`python -m benchmarks all --only {again}`, started {started}; gigapy at commit {commit}. "
                  f"The other rows are from the earlier run: {first.rstrip('.')}.")
    lines = [
        "## Summary",
        "",
        header,
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, {m['os']}, {m['python']}; load average "
        f"{os.getloadavg()[0]:.1f} at the end.",
        f"Versions: gigapy {v['gigapy']}, gigachat SDK {v['gigachat']}, httpx {v['httpx']}, aiohttp {v['aiohttp']}, "
        f"pydantic {v['pydantic']} (pydantic-core {v['pydantic-core']}).",
        "",
        "| benchmark | exit | minutes | targets met | targets missed |",
        "|---|---|---|---|---|",
    ]
    details = list(kept_missed)
    lines += kept_rows
    for name, code, seconds, targets in rows:
        met = sum(1 for t in targets if re.search(r"\bmet\b|✔", t) and "missed" not in t)
        missed = sum(1 for t in targets if "missed" in t or "✘" in t)
        lines.append(f"| {name} | {code} | {seconds / 60:.1f} | {met} | {missed} |")
        details += [f"- {name}: {t.strip()}" for t in targets if "missed" in t or "✘" in t]
    if details:
        lines += ["", "Missed (each benchmark's section says why):", "", *details]
    return "\n".join(lines) + "\n"


def write_summary(path: Path, text: str) -> None:
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    current = SUMMARY.sub("", current)
    title, _, rest = current.partition("\n")
    rest = re.sub(r"\A\s*Sections: [^\n]*\n", "", rest.lstrip("\n"))
    body = f"{title}\n\n{text}\n{rest.lstrip()}"
    names = re.findall(r"^## (.+)$", body, re.MULTILINE)
    index = " · ".join(f"[{n}](#{re.sub(r'[^a-z0-9 -]', '', n.lower()).replace(' ', '-')})" for n in names)
    body = body.replace(f"{title}\n\n", f"{title}\n\nSections: {index}\n\n", 1)
    path.write_text(body.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks all", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts; results to benchmarks/.work/")
    parser.add_argument("--only", help="comma-separated subset: " + ", ".join(PLAN))
    args = parser.parse_args(argv)
    chosen = list(PLAN) if not args.only else args.only.split(",")
    unknown = [c for c in chosen if c not in PLAN]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(PLAN)}")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = WORK / f"all-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    target = ROOT / "benchmarks" / "RESULTS.md"
    env = dict(os.environ)
    if args.quick:
        quick_copy = WORK / "RESULTS-quick.md"
        shutil.copyfile(target, quick_copy)
        target = quick_copy
        env["GIGAPY_BENCH_RESULTS"] = str(quick_copy)
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = git_commit()
    rows: list[tuple[str, int, float, list[str]]] = []
    for name in chosen:
        cmd = [PY, *PLAN[name][1 if args.quick else 0]]
        print(f"[all] {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        with open(logs / f"{name}.log", "w") as log:
            try:
                code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False,
                                      timeout=3600).returncode
            except subprocess.TimeoutExpired:
                code = -1
        seconds = time.monotonic() - t0
        text = (logs / f"{name}.log").read_text(errors="replace")
        targets = [line for line in text.splitlines() if TARGET_ROW.search(line)]
        rows.append((name, code, seconds, targets))
        print(f"[all] {name}: exit {code} in {seconds / 60:.1f} min; {len(targets)} target rows; log {log.name}",
              file=sys.stderr, flush=True)
    previous = ""
    if args.only and target.exists():  # a partial run keeps the other benchmarks' rows
        found = SUMMARY.search(target.read_text())
        previous = found[0] if found else ""
    text = summary(rows, args.quick, commit, started, previous)
    write_summary(target, text)
    print(text)
    print(f"(written to {target}; logs in {logs})", file=sys.stderr)
