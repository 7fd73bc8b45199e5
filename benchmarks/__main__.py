"""Client benchmarks: gigapy vs the official ``gigachat`` SDK vs the raw transport.

    .venv/bin/python -m benchmarks                      # every scenario, 5 interleaved runs, writes RESULTS.md
    .venv/bin/python -m benchmarks --quick              # smoke run: small counts, 1 run, no RESULTS.md
    .venv/bin/python -m benchmarks -s async64,sync -r 7 # a subset, more runs
    .venv/bin/python -m benchmarks --profile -s stream  # cProfile gigapy's measured section
    .venv/bin/python -m benchmarks all [--quick]        # EVERY benchmark (cold start, CLI, emulator, ...)

One emulator process (``python -m gigapy.emulator --no-limits``) serves every run. Each run
is a fresh worker process (``benchmarks/_workers.py``) so contenders never share imports,
pools or caches; contenders are interleaved (the order rotates every round) and the table
shows medians with the min–max spread. Every load is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, WORK, EmulatorProcess, machine, results_path, versions

RESULTS = results_path()
NOTES = ROOT / "benchmarks" / "client-notes.md"
CONTENDERS = ("gigapy", "sdk", "raw")
LABELS = {"gigapy": "gigapy", "sdk": "official SDK", "raw": "raw transport"}


@dataclass
class Target:
    """A goal: ``ratio`` compares gigapy's median with another contender's; ``worst`` checks
    a field of gigapy's worst run (every run must pass)."""

    text: str
    kind: str  # "ratio" | "worst"
    op: str  # ">=", "<=", "<", "=="
    threshold: float
    against: str = ""  # ratio: the other contender
    field: str = "value"  # worst: which result field


@dataclass
class Scenario:
    name: str
    title: str
    kind: str  # worker function ("import" runs in the orchestrator)
    unit: str
    higher_better: bool
    params: dict[str, Any]
    quick: dict[str, Any]
    contenders: tuple[str, ...] = CONTENDERS
    per_contender: dict[str, dict[str, Any]] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # what each contender runs
    extra: tuple[str, ...] = ()  # result fields shown next to the median


ASYNC_NOTES = {"gigapy": "`AsyncGigaChat.completion` (aiohttp)", "sdk": "`GigaChat.achat` (httpx.AsyncClient)",
               "raw": "one `aiohttp.ClientSession`, `json.dumps` + `json.loads`"}

SCENARIOS = [
    Scenario("async64", "Async throughput, 5,000 small completions, concurrency 64", "async", "req/s", True,
             {"requests": 5000, "concurrency": 64, "warmup": 500, "max_seconds": 40},
             {"requests": 600, "warmup": 100}, notes=ASYNC_NOTES, extra=("cpu_us",),
             targets=[Target("≥ 8× the official SDK", "ratio", ">=", 8, "sdk"),
                      Target("≥ 0.8× raw aiohttp", "ratio", ">=", 0.8, "raw")]),
    Scenario("async256", "Async throughput, 5,000 small completions, concurrency 256", "async", "req/s", True,
             {"requests": 5000, "concurrency": 256, "warmup": 500, "max_seconds": 40},
             {"requests": 600, "warmup": 300}, notes=ASYNC_NOTES, extra=("cpu_us",),
             targets=[Target("≥ 8× the official SDK", "ratio", ">=", 8, "sdk"),
                      Target("≥ 0.8× raw aiohttp", "ratio", ">=", 0.8, "raw")]),
    Scenario("sync", "Sync sequential completions: client CPU time per request", "sync", "µs CPU/req", False,
             {"requests": 2000, "warmup": 200, "max_seconds": 40}, {"requests": 300, "warmup": 50},
             notes={"gigapy": "`GigaChat.completion` (httpx)", "sdk": "`GigaChat.chat` (httpx)",
                    "raw": "`httpx.Client.post`, `json.dumps` + `json.loads`"}, extra=("wall_us",),
             targets=[Target("≤ 0.5× the official SDK", "ratio", "<=", 0.5, "sdk"),
                      Target("≤ 1.5× raw httpx", "ratio", "<=", 1.5, "raw")]),
    Scenario("stream", "One stream of 50,000 chunks, consumed as typed chunks (sync)", "stream", "chunks/s", True,
             {"tokens": 50000, "warmup_tokens": 500}, {"tokens": 5000, "warmup_tokens": 100},
             notes={"gigapy": "`GigaChat.completion_stream`", "sdk": "`GigaChat.stream`",
                    "raw": "httpx `iter_bytes` + line split + `json.loads`"}, extra=("cpu_us_per_chunk",),
             targets=[Target("≥ 0.9× raw decode + json.loads", "ratio", ">=", 0.9, "raw")]),
    Scenario("streams", "256 concurrent streams × 500 chunks (async)", "streams", "chunks/s", True,
             {"streams": 256, "tokens": 500, "max_seconds": 90}, {"streams": 32, "tokens": 100},
             notes={"gigapy": "`AsyncGigaChat.completion_stream`", "sdk": "`GigaChat.astream`",
                    "raw": "aiohttp `iter_any` + line split + `json.loads`"}, extra=("cpu_us_per_chunk",),
             targets=[Target("≥ 0.9× raw decode + json.loads", "ratio", ">=", 0.9, "raw")]),
    Scenario("import", "Import time (`python -X importtime`)", "import", "ms", False, {}, {},
             contenders=("gigapy", "sdk"),
             notes={"gigapy": "`import gigapy`", "sdk": "`import gigachat`"},
             targets=[Target("≤ 0.5× `import gigachat`", "ratio", "<=", 0.5, "sdk")]),
    Scenario("import_client", "Import time of the client class", "import", "ms", False, {}, {},
             contenders=("gigapy", "sdk"),
             notes={"gigapy": "`from gigapy import GigaChat`", "sdk": "`from gigachat import GigaChat`"}),
    Scenario("memory", "RSS growth over 50,000 completions on one async client (conc. 64)", "memory", "MB", False,
             {"requests": 50000, "concurrency": 64, "warmup": 2000, "max_seconds": 60},
             {"requests": 3000, "warmup": 300}, per_contender={"sdk": {"max_seconds": 15}},
             notes={"gigapy": "`AsyncGigaChat`", "sdk": "`GigaChat.achat` (capped at 15 s)",
                    "raw": "`aiohttp.ClientSession`"}, extra=("done",),
             targets=[Target("RSS growth < 10 MB", "worst", "<", 10)]),
    Scenario("clients", "1,000 async clients created, used once, closed: RSS growth", "clients", "MB", False,
             {"clients": 1000, "max_seconds": 60}, {"clients": 50},
             notes={"gigapy": "`async with AsyncGigaChat()`", "sdk": "`GigaChat(access_token=...)` + `aclose()`",
                    "raw": "`async with aiohttp.ClientSession()`"},
             extra=("sockets_leaked", "ms_per_client"),
             targets=[Target("no socket left open", "worst", "<=", 0, field="sockets_leaked"),
                      Target("RSS back within 10 MB", "worst", "<", 10)]),
    Scenario("clients_sync", "1,000 sync clients created, used once, closed: RSS growth", "clients_sync", "MB",
             False, {"clients": 1000, "max_seconds": 60}, {"clients": 50},
             notes={"gigapy": "`with GigaChat()`", "sdk": "`with GigaChat(access_token=...)`",
                    "raw": "`with httpx.Client()`"},
             extra=("sockets_leaked", "ms_per_client"),
             targets=[Target("no socket left open", "worst", "<=", 0, field="sockets_leaked"),
                      Target("RSS back within 10 MB", "worst", "<", 10)]),
    Scenario("stampede", "1,000 concurrent first calls (async): max wait for the token", "stampede", "ms", False,
             {"calls": 1000, "max_seconds": 60}, {"calls": 100}, contenders=("gigapy", "sdk"),
             notes={"gigapy": "one `AsyncGigaChat`, empty token cache", "sdk": "one `GigaChat`, `achat`"},
             extra=("oauth_requests", "round_trip_ms", "wait_over_round_trip", "oauth_send_ms", "resume_spread_ms"),
             targets=[Target("exactly one OAuth request", "worst", "==", 1, field="oauth_requests"),
                      Target("max wait ≤ one token round trip", "worst", "<=", 1.0, field="wait_over_round_trip")]),
    Scenario("stampede_sync", "1,000 threads' concurrent first calls (sync): max wait for the token",
             "stampede_sync", "ms", False, {"calls": 1000, "max_seconds": 60}, {"calls": 100},
             contenders=("gigapy",), notes={"gigapy": "one `GigaChat` shared by 1,000 threads"},
             extra=("oauth_requests", "round_trip_ms", "wait_over_round_trip", "oauth_send_ms", "resume_spread_ms"),
             targets=[Target("exactly one OAuth request", "worst", "==", 1, field="oauth_requests"),
                      Target("max wait ≤ one token round trip", "worst", "<=", 1.0, field="wait_over_round_trip")]),
]
BY_NAME = {s.name: s for s in SCENARIOS}

IMPORT_CODE = {
    ("import", "gigapy"): "import gigapy",
    ("import", "sdk"): "import gigachat",
    ("import_client", "gigapy"): "from gigapy import GigaChat",
    ("import_client", "sdk"): "from gigachat import GigaChat",
}


def clean_env() -> dict[str, str]:
    """No GIGACHAT_*/GIGAPY_* settings or proxies leak into the contenders."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("GIGACHAT_", "GIGAPY_")) and "PROXY" not in k.upper()}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = str(ROOT)
    return env


# --- running ----------------------------------------------------------------------------------


def run_worker(scenario: Scenario, contender: str, url: str, params: dict[str, Any], credentials: str,
               profile: str | None = None) -> dict[str, Any]:
    spec = {"kind": scenario.kind, "contender": contender, "url": url, "params": params,
            "credentials": credentials, "profile": profile}
    timeout = float(params.get("max_seconds", 60)) * 2 + 60
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks._workers", json.dumps(spec)], cwd=ROOT,
                              env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return dict(json.loads(lines[-1]))


_BASELINE: set[str] | None = None


def _importtime(code: str) -> tuple[float, set[str]]:
    """Cumulative µs of the top-level imports of ``code``, and the names imported at top level."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=60, check=True)
    total, names = 0.0, set()
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m and not m.group(3):
            names.add(m.group(4))
            if _BASELINE is not None and m.group(4) not in _BASELINE:
                total += float(m.group(2))
    return total, names


def run_import(scenario: Scenario, contender: str) -> dict[str, Any]:
    """One fresh process: the import's cumulative time (startup imports excluded)."""
    global _BASELINE
    if _BASELINE is None:
        _BASELINE = set()
        _, _BASELINE = _importtime("pass")
    total, names = _importtime(IMPORT_CODE[(scenario.name, contender)])
    return {"value": total / 1000, "modules": sorted(names - _BASELINE)}


def params_for(scenario: Scenario, contender: str, quick: bool) -> dict[str, Any]:
    params = dict(scenario.params)
    params.update(scenario.per_contender.get(contender, {}))
    if quick:
        params.update(scenario.quick)
    return params


def run_scenarios(selected: list[Scenario], contenders: list[str], runs: int, quick: bool, url: str,
                  credentials: str, deadline: float) -> dict[str, dict[str, list[dict[str, Any]]]]:
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for scenario in selected:
        names = [c for c in scenario.contenders if c in contenders]
        per = results[scenario.name] = {c: [] for c in names}
        for r in range(runs):
            if time.monotonic() > deadline:
                log(f"[{scenario.name}] time budget spent: skipping runs {r + 1}..{runs}")
                break
            order = names[r % len(names):] + names[:r % len(names)]  # rotate: interleaved, no fixed first
            for contender in order:
                if scenario.kind == "import":
                    res = run_import(scenario, contender)
                else:
                    res = run_worker(scenario, contender, url, params_for(scenario, contender, quick), credentials)
                per[contender].append(res)
                log(f"[{scenario.name}] run {r + 1}/{runs} {contender:6}: {describe(scenario, res)}")
    return results


def describe(scenario: Scenario, res: dict[str, Any]) -> str:
    if "error" in res:
        return "ERROR " + res["error"]
    extra = ", ".join(f"{k}={fmt(res[k], k)}" for k in scenario.extra if k in res)
    return f"{fmt(res['value'])} {scenario.unit}" + (f" ({extra})" if extra else "")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- reporting --------------------------------------------------------------------------------


COUNT_FIELDS = frozenset({"oauth_requests", "sockets_leaked", "done", "calls", "errors", "server_connections_delta"})


def fmt(x: Any, key: str = "") -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if key in COUNT_FIELDS and x == int(x):
        return f"{int(x):,}"
    if x != x:
        return "n/a"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def values(runs: list[dict[str, Any]], key: str = "value") -> list[float]:
    return [float(r[key]) for r in runs if "error" not in r and key in r]


def cell(runs: list[dict[str, Any]] | None) -> str:
    if runs is None:
        return "–"
    vals = values(runs)
    if not vals:
        return "error" if runs else "–"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(vals))}–{fmt(max(vals))})"


def check(op: str, value: float, threshold: float) -> bool:
    return {">=": value >= threshold, "<=": value <= threshold, "<": value < threshold,
            "==": value == threshold}[op]


def evaluate(scenario: Scenario, per: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows."""
    rows = []
    mine = values(per.get("gigapy", []))
    for t in scenario.targets:
        if t.kind == "ratio":
            theirs = values(per.get(t.against, []))
            if not mine or not theirs:
                rows.append((t.text, "not measured", "–"))
                continue
            ratio = statistics.median(mine) / statistics.median(theirs)
            # spread of the ratio: worst and best pairing of runs
            lo, hi = min(mine) / max(theirs), max(mine) / min(theirs)
            ok = check(t.op, ratio, t.threshold)
            rows.append((t.text, f"{ratio:.2f}× (runs {lo:.2f}–{hi:.2f})", "met" if ok else "**missed**"))
        else:
            vals = values(per.get("gigapy", []), t.field)
            if not vals:
                rows.append((t.text, "not measured", "–"))
                continue
            worst = max(vals) if t.op in ("<", "<=") else min(vals)
            if t.op == "==":
                worst = next((v for v in vals if v != t.threshold), vals[0])
            ok = all(check(t.op, v, t.threshold) for v in vals)
            shown = (f"worst {fmt(worst, t.field)}, median {fmt(statistics.median(vals), t.field)}"
                     if len(vals) > 1 else fmt(worst, t.field))
            rows.append((t.text, shown, "met" if ok else "**missed**"))
    return rows


def extra_line(scenario: Scenario, per: dict[str, list[dict[str, Any]]]) -> str:
    parts = []
    for c, runs in per.items():
        bits = []
        for key in scenario.extra:
            vals = values(runs, key)
            if vals:
                bits.append(f"{key} {fmt(statistics.median(vals), key)}")
        if bits:
            parts.append(f"{c}: " + ", ".join(bits))
    return "; ".join(parts)


def report(selected: list[Scenario], results: dict[str, dict[str, list[dict[str, Any]]]]) -> tuple[str, str, int, int]:
    """(main table, targets table, targets met, targets total) in Markdown."""
    main = ["| scenario | unit | gigapy | official SDK | raw transport | gigapy ÷ SDK | gigapy ÷ raw |",
            "|---|---|---|---|---|---|---|"]
    tgt = ["| # | scenario | target | measured | verdict |", "|---|---|---|---|---|"]
    met = total = 0
    for scenario in selected:
        per = results.get(scenario.name)
        if per is None:
            continue
        mine = values(per.get("gigapy", []))
        ratios = []
        for other in ("sdk", "raw"):
            theirs = values(per.get(other, []))
            ratios.append(f"{statistics.median(mine) / statistics.median(theirs):.2f}×" if mine and theirs else "–")
        better = "higher is better" if scenario.higher_better else "lower is better"
        main.append(f"| {scenario.title} | {scenario.unit} ({better}) | {cell(per.get('gigapy'))} | "
                    f"{cell(per.get('sdk'))} | {cell(per.get('raw'))} | {ratios[0]} | {ratios[1]} |")
        for text, measured, verdict in evaluate(scenario, per):
            total += 1
            met += verdict == "met"
            tgt.append(f"| {total} | {scenario.name} | {text} | {measured} | {verdict} |")
    return "\n".join(main), "\n".join(tgt), met, total


def details(selected: list[Scenario], results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    lines = []
    for scenario in selected:
        per = results.get(scenario.name)
        if per is None:
            continue
        runs = max((len(v) for v in per.values()), default=0)
        what = "; ".join(f"{LABELS[c]}: {scenario.notes[c]}" for c in per if c in scenario.notes)
        extra = extra_line(scenario, per)
        lines.append(f"- **{scenario.name}** ({runs} runs) — {what}." + (f" Medians: {extra}." if extra else ""))
        errors = [f"{c}: {r['error']}" for c, rs in per.items() for r in rs if "error" in r]
        if errors:
            lines.append(f"  Errors: {'; '.join(errors[:3])}")
    return "\n".join(lines)


def git_commit() -> str:
    """The commit the run measured (``+dirty`` when src/ had uncommitted changes)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def section(selected: list[Scenario], results: dict[str, dict[str, list[dict[str, Any]]]], runs: int,
            seconds: float, date: str | None = None, note: str | None = None, commit: str | None = None) -> str:
    m, v = machine(), versions()
    main, tgt, met, total = report(selected, results)
    notes = NOTES.read_text().strip() if NOTES.exists() else ""
    return (
        "## Client\n\n"
        "gigapy against the official `gigachat` SDK and the raw transport (httpx for sync, aiohttp for async, "
        "doing only JSON encode/decode), all against ONE emulator process on loopback "
        "(`python -m gigapy.emulator --no-limits`). Produced by `.venv/bin/python -m benchmarks` "
        f"in {seconds / 60:.1f} min: {runs} interleaved runs per contender, each in a fresh process; "
        "median (min–max). The emulator shares the 2 cores with the client, so read the ratios, not the "
        "absolute figures.\n\n"
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, {m['os']}, {m['python']}\n"
        f"- Versions: gigapy {v['gigapy']}, gigachat SDK {v['gigachat']}, httpx {v['httpx']}, "
        f"aiohttp {v['aiohttp']}, pydantic {v['pydantic']} (pydantic-core {v['pydantic-core']})\n"
        f"- Date: {date or utc_now()}; gigapy at commit {commit or git_commit()}\n"
        + (f"- Note: {note}\n" if note else "")
        + "\n"
        f"{main}\n\n"
        f"### Targets: {met} of {total} met\n\n{tgt}\n\n"
        "Ratios compare medians; \"runs\" is the range over every pairing of runs. Targets on gigapy alone "
        "must hold in every run (the worst run is shown).\n\n"
        f"### What each contender runs\n\n{details(selected, results)}\n\n"
        f"{notes}\n"
    )


def write_results(text: str) -> None:
    """Replace (or append) the '## Client' section; keep the others; refresh the index line."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## Client\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(current):
        current = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", current).rstrip("\n") + "\n"
    else:
        current = current.rstrip("\n") + "\n\n" + text
    current = re.sub(r"\A(# [^\n]*\n)\nSections: [^\n]*\n", r"\1", current)
    names = re.findall(r"^## (.+)$", current, re.MULTILINE)
    index = " · ".join(f"[{name}](#{re.sub(r'[^a-z0-9 -]', '', name.lower()).replace(' ', '-')})" for name in names)
    current = re.sub(r"\A(# [^\n]*\n)", lambda m: f"{m.group(1)}\nSections: {index}\n", current, count=1)
    RESULTS.write_text(current)
    log(f"updated {RESULTS}")


# --- profiling --------------------------------------------------------------------------------


def profile(selected: list[Scenario], quick: bool, url: str, credentials: str, top: int) -> None:
    import pstats

    WORK.mkdir(parents=True, exist_ok=True)
    for scenario in selected:
        if scenario.kind == "import" or "gigapy" not in scenario.contenders:
            continue
        path = WORK / f"profile-{scenario.name}.prof"
        res = run_worker(scenario, "gigapy", url, params_for(scenario, "gigapy", quick), credentials, str(path))
        log(f"[{scenario.name}] profiled gigapy: {describe(scenario, res)} -> {path.relative_to(ROOT)}")
        if path.exists():
            stats = pstats.Stats(str(path))
            stats.sort_stats("tottime").print_stats(top)


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    if sys.argv[1:2] == ["all"]:  # every benchmark (benchmarks/run_all.py)
        from benchmarks.run_all import main as run_all

        run_all(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-s", "--scenarios", default="all",
                        help="comma-separated: " + ", ".join(BY_NAME) + " (default all)")
    parser.add_argument("-c", "--contenders", default=",".join(CONTENDERS), help="comma-separated (default all)")
    parser.add_argument("-r", "--runs", type=int, default=None, help="runs per contender (default 5; --quick 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, one run, no RESULTS.md")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="update the '## Client' section of benchmarks/RESULTS.md "
                             "(default: yes for a full run of every scenario)")
    parser.add_argument("--profile", action="store_true", help="cProfile gigapy's measured section instead")
    parser.add_argument("--top", type=int, default=30, help="rows of profile output")
    parser.add_argument("--max-minutes", type=float, default=25.0, help="stop starting new runs after this")
    parser.add_argument("--from-json", metavar="PATH", help="no run: report (and --write) a saved raw result file")
    args = parser.parse_args()

    if args.scenarios == "all":
        selected = list(SCENARIOS)
    else:
        unknown = [s for s in args.scenarios.split(",") if s not in BY_NAME]
        if unknown:
            parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(BY_NAME)}")
        selected = [BY_NAME[s] for s in args.scenarios.split(",")]
    contenders = [c for c in args.contenders.split(",") if c]
    bad = [c for c in contenders if c not in CONTENDERS]
    if bad:
        parser.error(f"unknown contender {bad[0]!r}; choose from {', '.join(CONTENDERS)}")
    runs = args.runs if args.runs is not None else (1 if args.quick else 5)
    if runs < 1:
        parser.error("--runs must be at least 1")
    write = args.write if args.write is not None else (not args.quick and args.scenarios == "all"
                                                       and not args.profile and len(contenders) == 3)

    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        chosen = [sc for sc in selected if sc.name in saved["results"]]
        main_table, targets, met, total = report(chosen, saved["results"])
        print(f"{main_table}\n\nTargets: {met} of {total} met\n{targets}")
        if args.write:
            write_results(section(chosen, saved["results"], saved["runs"], saved.get("seconds", 0.0),
                                  saved.get("date"), saved.get("note"), saved.get("commit")))
        return

    from gigapy.emulator import DEMO_CREDENTIALS

    started = time.monotonic()
    commit = git_commit()
    with EmulatorProcess() as emu:
        log(f"emulator: {emu.url} (pid {emu.proc.pid if emu.proc else '?'})")
        if args.profile:
            profile(selected, args.quick, emu.url, DEMO_CREDENTIALS, args.top)
            return
        results = run_scenarios(selected, contenders, runs, args.quick, emu.url, DEMO_CREDENTIALS,
                                started + args.max_minutes * 60)
        alive = emu.alive()
    seconds = time.monotonic() - started
    if not alive:
        log("WARNING: the emulator died during the run")
    WORK.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw_path = WORK / f"client-{stamp}.json"
    raw_path.write_text(json.dumps({"machine": machine(), "versions": versions(), "runs": runs, "quick": args.quick,
                                    "seconds": seconds, "date": utc_now(), "commit": commit, "results": results},
                                   indent=1))
    main_table, targets, met, total = report(selected, results)
    print(main_table)
    print()
    print(f"Targets: {met} of {total} met")
    print(targets)
    print(f"\n({seconds / 60:.1f} min; raw results in {raw_path.relative_to(ROOT)})")
    if write:
        write_results(section(selected, results, runs, seconds, commit=commit))


if __name__ == "__main__":
    main()
