"""CLI benchmarks: ``gigapy batch`` throughput vs the async client's own, and ``gigapy --help`` start-up.

Targets: ``gigapy batch`` reaches >= 80% of the async client's throughput at the same
concurrency against the emulator; ``gigapy --help`` starts in under 300 ms.

One emulator process (``python -m gigapy.emulator --no-limits``) serves every run. Each contender
runs in a fresh process, rounds are interleaved, and medians are reported. ``gigapy batch`` is
timed twice: end to end (the whole process: start-up, input scan, token, requests, output) and as
the runner reports it (from the first request to the last answer written). Every load is bounded
in count and time.

    .venv/bin/python benchmarks/bench_cli.py             # print the figures
    .venv/bin/python benchmarks/bench_cli.py --write     # also update the "## CLI" section of RESULTS.md
    .venv/bin/python benchmarks/bench_cli.py --quick     # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the benchmarks package importable
    sys.path.insert(0, str(ROOT))

from benchmarks._common import EmulatorProcess, results_path  # noqa: E402 - needs the path above

RESULTS = results_path()
BIN = Path(sys.executable).parent
GIGAPY = str(BIN / "gigapy")
PROMPT = "What is the capital of France?"


def client_env(url: str) -> dict[str, str]:
    from gigapy.emulator import DEMO_CREDENTIALS

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
    env.update(GIGACHAT_CREDENTIALS=DEMO_CREDENTIALS, GIGACHAT_BASE_URL=f"{url}/api/v1",
               GIGACHAT_AUTH_URL=f"{url}/api/v2/oauth", GIGACHAT_SCOPE="GIGACHAT_API_PERS")
    return env


def write_input(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            request = {"model": "GigaChat", "messages": [{"role": "user", "content": PROMPT}]}
            fh.write(json.dumps({"id": f"q{i}", "request": request}) + "\n")


# --- the async client on its own (run in a worker process) -------------------------------------

async def _client_worker(n: int, concurrency: int) -> tuple[float, float]:
    from gigapy import AsyncGigaChat

    requests = [{"model": "GigaChat", "messages": [{"role": "user", "content": PROMPT}]} for _ in range(n)]
    async with AsyncGigaChat(max_connections=max(100, concurrency)) as client:
        await client.completion(**requests[0])  # token and connection warm-up, as the runner's first request
        queue = iter(requests)
        deadline = time.monotonic() + 120

        async def work() -> None:
            for request in queue:
                if time.monotonic() > deadline:
                    return
                await client.completion(**request)

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(work() for _ in range(concurrency)))
        return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def run_client(env: dict[str, str], n: int, concurrency: int) -> tuple[float, float]:
    """(req/s, req per CPU-second) of the async client alone, in a fresh process."""
    code = (f"import asyncio, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from benchmarks.bench_cli import _client_worker; "
            f"print(*asyncio.run(_client_worker({n}, {concurrency})))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180,
                          check=True, cwd=ROOT)
    rate, per_cpu = proc.stdout.strip().splitlines()[-1].split()
    return float(rate), float(per_cpu)


def run_cli(env: dict[str, str], src: Path, work: Path, concurrency: int) -> tuple[float, float, float]:
    """(end-to-end req/s, runner-reported req/s, runner req per CPU-second) of one ``gigapy batch``."""
    out = work / "out.jsonl"
    for leftover in (out, work / "out.errors.jsonl"):
        leftover.unlink(missing_ok=True)
    with open(src, encoding="utf-8") as fh:
        n = sum(1 for _ in fh)
    start = time.perf_counter()
    proc = subprocess.run([GIGAPY, "batch", str(src), "-o", str(out), "-c", str(concurrency), "--no-progress",
                           "--json"], env=env, capture_output=True, text=True, timeout=180, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"gigapy batch failed: {proc.stderr}")
    summary = json.loads(proc.stdout)
    assert summary["done"] == n, summary
    return n / wall, float(summary["requests_per_second"]), n / float(summary["cpu_seconds"])


def startup(args: list[str], runs: int) -> list[float]:
    """Wall-clock milliseconds of ``gigapy ARGS`` (output discarded), ``runs`` times."""
    times = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([GIGAPY, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                       check=True)
        times.append(1000 * (time.perf_counter() - start))
    return times


def heavy_imports_of_help() -> list[str]:
    code = ("import sys; from gigapy.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = {'httpx', 'aiohttp', 'pydantic', 'gigapy.emulator'} & set(sys.modules)\n"
            "sys.stderr.write(repr(sorted(heavy)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    return list(json.loads(proc.stderr.strip().replace("'", '"') or "[]"))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores; "
            f"Python {platform.python_version()}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"requests": args.requests, "concurrency": args.concurrency, "rounds": args.rounds}
    client, client_cpu, e2e, runner, runner_cpu = [], [], [], [], []
    work = Path(tempfile.mkdtemp(prefix="gigapy-bench-cli-"))
    try:
        src = work / "in.jsonl"
        write_input(src, args.requests)
        with EmulatorProcess() as emu:
            env = client_env(emu.url)
            run_client(env, min(500, args.requests), args.concurrency)  # warm the emulator up
            for r in range(args.rounds):
                for name in (("client", "cli") if r % 2 == 0 else ("cli", "client")):
                    if name == "client":
                        rate, per_cpu = run_client(env, args.requests, args.concurrency)
                        client.append(rate)
                        client_cpu.append(per_cpu)
                    else:
                        whole, inner, inner_cpu = run_cli(env, src, work, args.concurrency)
                        e2e.append(whole)
                        runner.append(inner)
                        runner_cpu.append(inner_cpu)
                print(f"  round {r + 1}: client {client[-1]:,.0f} req/s ({client_cpu[-1]:,.0f} per CPU-s); "
                      f"gigapy batch {e2e[-1]:,.0f} req/s end to end, {runner[-1]:,.0f} runner "
                      f"({runner_cpu[-1]:,.0f} per CPU-s)", flush=True)
        figures["help_ms"] = startup(["--help"], args.startup_runs)
        figures["version_ms"] = startup(["--version"], args.startup_runs)
        figures["help_heavy_imports"] = heavy_imports_of_help()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures.update(client=client, client_cpu=client_cpu, e2e=e2e, runner=runner, runner_cpu=runner_cpu)
    # Paired ratios: each round's CLI run against the same round's client run, so load from
    # other processes on the machine (which drifts over minutes) cancels out as far as it can.
    for key, series, base in (("e2e", e2e, client), ("runner", runner, client), ("cpu", runner_cpu, client_cpu)):
        ratios = [b / a for a, b in zip(base, series, strict=True)]
        figures[f"ratios_{key}"] = ratios
        figures[f"ratio_{key}"] = statistics.median(ratios)
    return figures


def _spread(values: list[float], fmt: str = ",.0f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def report(f: dict[str, Any]) -> str:
    ok_help = statistics.median(f["help_ms"]) < 300

    def verdict(value: float) -> str:
        return "✔" if value >= 0.8 else "✘"

    return (
        "## CLI\n\n"
        f"Machine: {machine()}.\n"
        f"`benchmarks/bench_cli.py`: one emulator process (`--no-limits`); {f['requests']:,} small chat completions "
        f"at concurrency {f['concurrency']}, {f['rounds']} rounds (the order alternates), medians (min–max). Each "
        "contender is a fresh process. \"End to end\" times the whole `gigapy batch` process (start-up, input "
        "scan, token, requests, output file); \"runner\" is what the runner reports from its first request to "
        "its last answer written; \"per CPU-second\" divides requests by the process's CPU time over the same "
        "span, which other load on the machine barely moves. Ratios pair each round's two runs.\n\n"
        "| measure | result | target |\n|---|---|---|\n"
        f"| async client alone (`AsyncGigaChat`, {f['concurrency']} workers) | {_spread(f['client'])} req/s; "
        f"{_spread(f['client_cpu'])} per CPU-s | |\n"
        f"| `gigapy batch -c {f['concurrency']}`, end to end | {_spread(f['e2e'])} req/s | |\n"
        f"| `gigapy batch -c {f['concurrency']}`, runner | {_spread(f['runner'])} req/s; "
        f"{_spread(f['runner_cpu'])} per CPU-s | |\n"
        f"| batch / client, requests per CPU-second | {f['ratio_cpu']:.0%} ({min(f['ratios_cpu']):.0%}–"
        f"{max(f['ratios_cpu']):.0%}) {verdict(f['ratio_cpu'])} | ≥ 80% |\n"
        f"| batch / client, runner throughput | {f['ratio_runner']:.0%} ({min(f['ratios_runner']):.0%}–"
        f"{max(f['ratios_runner']):.0%}) {verdict(f['ratio_runner'])} | ≥ 80% |\n"
        f"| batch / client, end-to-end throughput | {f['ratio_e2e']:.0%} ({min(f['ratios_e2e']):.0%}–"
        f"{max(f['ratios_e2e']):.0%}) {verdict(f['ratio_e2e'])} | ≥ 80% |\n"
        f"| `gigapy --help` start-up | {_spread(f['help_ms'])} ms {'✔' if ok_help else '✘'} | < 300 ms |\n"
        f"| `gigapy --version` start-up | {statistics.median(f['version_ms']):.0f} ms | |\n"
        f"| heavy modules imported by `--help` | {', '.join(f['help_heavy_imports']) or 'none'} | none |\n\n"
        "Wall-clock rates on this shared 2-core machine swing up to 3x between runs seconds apart (other "
        "processes compete with the emulator and the client for the two cores), so the throughput ratios "
        "vary from run to run; requests per CPU-second is the stable figure.\n\n"
        "What keeps the runner close to the bare client: the answers finished in one event-loop turn go out "
        "in one unbuffered `write()` (no per-line fsync; fsync runs once a second in a worker thread); the "
        "response is serialized once, by pydantic's Rust serializer, straight into the output line; workers "
        "pull from one shared generator over the input (no queue); progress is reported on a timer, not per "
        "request; the AIMD limiter is a counter and a deque of waiters; start-up objects are frozen out of "
        "the garbage collector. `--help` loads neither httpx, aiohttp, pydantic nor the emulator.\n"
    )


def write_results(section: str) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"## CLI\n.*?(?=\n## |\Z)", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")
    print(f"updated {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10000, help="chat completions per run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--startup-runs", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="small counts, one round")
    parser.add_argument("--write", action="store_true", help="update the ## CLI section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rounds, args.startup_runs = 600, 1, 3
    figures = measure(args)
    section = report(figures)
    print()
    print(section)
    if args.write:
        write_results(section)


if __name__ == "__main__":
    main()
