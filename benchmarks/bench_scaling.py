"""How cost grows with work: client CPU per request and memory per open stream at 1, 100 and 10,000 streams.

For each N, a fresh worker process opens N concurrent v1 streams on one ``AsyncGigaChat``
against one emulator process (``--no-limits``), reads the first chunk of every stream, waits
until all N are open at once (then reads the RSS), and reads every stream to its end. Reported:
the worker's CPU time per stream (request building, token, connection, SSE decoding, typed
chunks: process CPU / N) and the RSS growth per open stream (RSS with all N open minus the RSS
before, / N). Bounded: each stream is ``--tokens`` chunks; every phase has a time cap.

    .venv/bin/python -m benchmarks.bench_scaling                  # N = 1, 100, 10000
    .venv/bin/python -m benchmarks.bench_scaling --quick          # N = 1, 100, 1000
    .venv/bin/python -m benchmarks.bench_scaling --write          # update "## Scaling" in RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import EmulatorProcess, machine, results_path, rss_bytes, stream_headers, versions  # noqa: E402

RESULTS = results_path()
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


async def _worker(url: str, n: int, tokens: int, max_seconds: float) -> dict[str, Any]:
    from gigapy import AsyncGigaChat
    from gigapy.emulator import DEMO_CREDENTIALS

    async with AsyncGigaChat(credentials=DEMO_CREDENTIALS, scope="GIGACHAT_API_PERS", base_url=f"{url}/api/v1",
                             auth_url=f"{url}/api/v2/oauth", model="GigaChat", max_connections=n + 1,
                             timeout=max_seconds) as client:
        # warm-up: token, imports, model builds, one connection
        async with client.completion_stream(MESSAGES, extra_headers=stream_headers(5)) as stream:
            async for _ in stream:
                pass
        gc.collect()
        rss0 = rss_bytes()
        opened = 0
        all_open = asyncio.Event()
        peak: list[int] = []

        async def one() -> int:
            nonlocal opened
            count = 0
            async with client.completion_stream(MESSAGES, extra_headers=stream_headers(tokens)) as stream:
                iterator = stream.__aiter__()
                await iterator.__anext__()
                count += 1
                opened += 1
                if opened == n:
                    peak.append(rss_bytes())
                    all_open.set()
                await asyncio.wait_for(all_open.wait(), max_seconds)
                async for _ in iterator:
                    count += 1
            return count

        cpu0, wall0 = time.process_time(), time.perf_counter()
        counts = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), max_seconds * 2)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"n": n, "chunks": sum(counts), "cpu_us_per_stream": cpu / n * 1e6,
            "cpu_us_per_chunk": cpu / sum(counts) * 1e6, "wall_s": wall,
            "rss_per_stream_kib": (peak[0] - rss0) / n / 1024 if peak else float("nan"),
            "rss_before_mb": rss0 / 1e6}


def run_worker(url: str, n: int, tokens: int, max_seconds: float) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper() and not k.startswith("GIGACHAT_")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_scaling", "--worker", url, str(n), str(tokens),
                           str(max_seconds)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=max_seconds * 3 + 60, check=False)
    if proc.returncode != 0:
        return {"n": n, "error": proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def report(rows: list[dict[str, Any]], tokens: int) -> str:
    m, v = machine(), versions()
    lines = [
        "## Scaling",
        "",
        "`benchmarks/bench_scaling.py`: N concurrent v1 streams of "
        f"{tokens} chunks on one `AsyncGigaChat` against one emulator process (`--no-limits`), each N in a "
        "fresh process; every stream reads its first chunk, all N are held open together (RSS read then), "
        "then each is read to its end. CPU is the client process's CPU time over the whole phase "
        "(connections, requests, SSE decoding, typed chunks, the final message).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['python']}; gigapy {v['gigapy']}, aiohttp {v['aiohttp']}, "
        f"pydantic {v['pydantic']}; load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| open streams | client CPU per stream | CPU per chunk | memory per open stream | wall |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['n']:,} | error: {row['error']} | | | |")
            continue
        lines.append(f"| {row['n']:,} | {row['cpu_us_per_stream'] / 1000:.2f} ms | {row['cpu_us_per_chunk']:.1f} µs | "
                     f"{row['rss_per_stream_kib']:.1f} KiB | {row['wall_s']:.1f} s |")
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## Scaling\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(current):
        current = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", current).rstrip("\n") + "\n"
    else:
        current = current.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(current)
    print(f"updated {RESULTS}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--streams", default="1,100,10000", help="comma-separated N")
    parser.add_argument("--tokens", type=int, default=20, help="chunks per stream")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="cap per phase")
    parser.add_argument("--quick", action="store_true", help="N = 1, 100, 1000")
    parser.add_argument("--write", action="store_true", help="update the ## Scaling section of RESULTS.md")
    args = parser.parse_args()
    if args.worker:
        url, n, tokens, cap = args.worker
        print(json.dumps(asyncio.run(_worker(url, int(n), int(tokens), float(cap)))))
        return
    counts = [1, 100, 1000] if args.quick else [int(x) for x in args.streams.split(",")]
    rows = []
    with EmulatorProcess() as emu:
        for n in counts:
            row = run_worker(emu.url, n, args.tokens, args.max_seconds)
            print(f"N={n}: {row}", file=sys.stderr, flush=True)
            rows.append(row)
    section = report(rows, args.tokens)
    print(section)
    if args.write:
        write_results(section)


if __name__ == "__main__":
    main()
