"""Emulator throughput: small chat completions per second, streamed chunks per second, memory growth.

Runs one emulator process (``python -m gigapy.emulator --no-limits --pack-stream --port N``) and
drives it with a raw aiohttp client on the same machine; the streamed-chunk rate is also measured
on a second process with the default framing (each event its own flushed write). Every loop is
bounded in count and time.

    .venv/bin/python benchmarks/bench_emulator.py            # print the figures
    .venv/bin/python benchmarks/bench_emulator.py --write    # also update benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import aiohttp

from gigapy.emulator import DEMO_CREDENTIALS, EmulatorProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("GIGAPY_BENCH_RESULTS") or ROOT / "benchmarks" / "RESULTS.md")  # see _common.results_path
SMALL_CHAT = {"model": "GigaChat", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
STREAM_CHAT = {**SMALL_CHAT, "stream": True}


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_emulator(port: int, pack: bool = True, src: str | None = None) -> EmulatorProcess:
    """``python -m gigapy.emulator --no-limits``; ``src``: run the gigapy found there instead (a baseline)."""
    env = {**os.environ, "PYTHONPATH": src} if src else None
    return EmulatorProcess("--no-limits", *(["--pack-stream"] if pack else []), port=port, env=env).start()


BARE_SERVER = """
import json, sys
from aiohttp import web
ANSWER = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Paris."}, "index": 0,
                     "finish_reason": "stop"}], "created": 1, "model": "GigaChat:1.0.26.20",
                     "object": "chat.completion",
                     "usage": {"prompt_tokens": 18, "completion_tokens": 3, "total_tokens": 21}}).encode()
async def oauth(request):
    await request.read()
    return web.json_response({"access_token": "bare", "expires_at": 4102444800000})
async def chat(request):
    await request.read()
    return web.Response(body=ANSWER, content_type="application/json")
app = web.Application()
app.router.add_post("/api/v2/oauth", oauth)
app.router.add_post("/api/v1/chat/completions", chat)
print("listening on", sys.argv[1], flush=True)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def start_bare_server(port: int) -> subprocess.Popen[str]:
    """A bare aiohttp server answering one fixed completion: the ceiling of any aiohttp server here."""
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    if "listening on" not in proc.stdout.readline():
        proc.kill()
        raise RuntimeError("bare server did not start")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("bare server did not listen")


def ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """Small completions on the emulator and on a bare aiohttp server, interleaved rounds."""
    emu: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    for _ in range(args.rounds):
        for start, into in ((lambda p: start_emulator(p, pack=True), emu), (start_bare_server, bare)):
            port = free_port()
            proc = start(port)
            try:
                into.append(asyncio.run(chat_round(port, proc.pid, args.requests // 4, args.concurrency,
                                                   args.seconds)))
            finally:
                if isinstance(proc, EmulatorProcess):
                    proc.stop()
                else:
                    proc.terminate()
                    proc.wait(10)
    result = {"emu_rps": median(r for r, _ in emu), "bare_rps": median(r for r, _ in bare),
              "emu_cpu": median(c for _, c in emu), "bare_cpu": median(c for _, c in bare)}
    print(f"ceiling ({args.rounds} interleaved rounds, medians): emulator {result['emu_rps']:,.0f} req/s "
          f"({result['emu_cpu']:.0f} us server CPU per request), bare aiohttp server {result['bare_rps']:,.0f} req/s "
          f"({result['bare_cpu']:.0f} us); emulator / bare = {result['emu_rps'] / result['bare_rps']:.2f}")
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def get_token(session: aiohttp.ClientSession, url: str) -> str:
    headers = {"Authorization": f"Basic {DEMO_CREDENTIALS}", "RqUID": str(uuid.uuid4())}
    async with session.post(f"{url}/api/v2/oauth", headers=headers, data={"scope": "GIGACHAT_API_PERS"}) as resp:
        return str((await resp.json())["access_token"])


async def chat_load(session: aiohttp.ClientSession, url: str, headers: dict[str, str], total: int,
                    concurrency: int, max_seconds: float, vary_sessions: bool = False) -> tuple[int, float]:
    """Run up to ``total`` small completions with ``concurrency`` workers; returns (done, seconds).

    ``vary_sessions`` sends a new X-Session-ID each time (fills the emulator's prompt cache).
    """
    body = json.dumps(SMALL_CHAT).encode()
    hdrs = {**headers, "Content-Type": "application/json"}
    done = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal done
        while done < total and time.perf_counter() < deadline:
            done += 1
            extra = {"X-Session-ID": str(uuid.uuid4())} if vary_sessions else {}
            async with session.post(f"{url}/api/v1/chat/completions", data=body, headers={**hdrs, **extra}) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"status {resp.status}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - start


async def stream_load(session: aiohttp.ClientSession, url: str, headers: dict[str, str], streams: int,
                      concurrency: int, tokens: int, max_seconds: float) -> tuple[int, float]:
    """Run ``streams`` streams of ``tokens`` one-token chunks; returns (events received, seconds)."""
    hdrs = {**headers, "X-Emulator-Answer-Tokens": str(tokens), "X-Emulator-Chunk-Tokens": "1"}
    events = 0
    started = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal events, started
        while started < streams and time.perf_counter() < deadline:
            started += 1
            async with session.post(f"{url}/api/v1/chat/completions", json=STREAM_CHAT, headers=hdrs) as resp:
                tail = b""
                async for chunk in resp.content.iter_any():
                    data = tail + chunk
                    events += data.count(b"\n\n")
                    tail = data[-1:]

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return events, time.perf_counter() - start


async def framed_chunks(args: argparse.Namespace, port: int) -> float:
    """Streamed chunks per second with the default framing (one flushed write per event)."""
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {await get_token(session, url)}"}
        events, seconds = await stream_load(session, url, headers, args.streams, 2, args.stream_tokens,
                                            args.seconds)
    rate = events / seconds
    print(f"streamed chunks, one write per event: {events:,} in {seconds:.2f} s = {rate:,.0f} chunks/s")
    return rate


async def run_all(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"Authorization": f"Bearer {await get_token(session, url)}"}
        await chat_load(session, url, headers, 2_000, args.concurrency, 10)  # warm-up
        done, seconds = await chat_load(session, url, headers, args.requests, args.concurrency, args.seconds)
        chat_rps = done / seconds
        print(f"small chat completions: {done} in {seconds:.2f} s = {chat_rps:,.0f} req/s")

        events, seconds = await stream_load(session, url, headers, args.streams, 2, args.stream_tokens,
                                            args.seconds)
        chunk_rate = events / seconds
        print(f"streamed chunks: {events:,} in {seconds:.2f} s = {chunk_rate:,.0f} chunks/s")

        before = rss_mb(pid)
        left = args.memory_requests
        start = time.perf_counter()
        while left > 0 and time.perf_counter() - start < args.memory_seconds:
            done, _ = await chat_load(session, url, headers, min(left, 10_000), args.concurrency, args.memory_seconds,
                                      vary_sessions=True)
            left -= done
        after = rss_mb(pid)
        served = args.memory_requests - left
        print(f"memory: {before:.1f} MiB -> {after:.1f} MiB after {served:,} requests ({after - before:+.1f} MiB)")
    return {"chat_rps": chat_rps, "chunk_rate": chunk_rate, "rss_before": before, "rss_after": after,
            "memory_requests": served}


async def chat_round(port: int, pid: int, requests: int, concurrency: int, seconds: float) -> tuple[float, float]:
    """One timed run of small completions: (req/s, server CPU microseconds per request)."""
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        headers = {"Authorization": f"Bearer {await get_token(session, url)}"}
        await chat_load(session, url, headers, 1_000, concurrency, seconds)  # warm-up
        before = cpu_seconds(pid)
        done, elapsed = await chat_load(session, url, headers, requests, concurrency, seconds)
        used = cpu_seconds(pid) - before
    return done / elapsed, 1e6 * used / max(done, 1)


def side_by_side(args: argparse.Namespace) -> dict[str, Any]:
    """Small completions on this tree and on ``--baseline`` (another checkout's src), interleaved."""
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for _ in range(args.rounds):
        for src, into in ((None, ours), (args.baseline, theirs)):
            port = free_port()
            proc = start_emulator(port, pack=False, src=src)
            try:
                into.append(asyncio.run(chat_round(port, proc.pid, args.requests // 4, args.concurrency,
                                                   args.seconds)))
            finally:
                proc.stop()
    result = {"ours_rps": median(r for r, _ in ours), "base_rps": median(r for r, _ in theirs),
              "ours_cpu": median(c for _, c in ours), "base_cpu": median(c for _, c in theirs)}
    print(f"side by side ({args.rounds} interleaved rounds, medians): this tree {result['ours_rps']:,.0f} req/s "
          f"({result['ours_cpu']:.0f} us server CPU per request), baseline {result['base_rps']:,.0f} req/s "
          f"({result['base_cpu']:.0f} us)")
    return result


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1).strip() if found else cpu
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores; Python "
            f"{platform.python_version()}, aiohttp {aiohttp.__version__}")


def write_results(figures: dict[str, Any], notes: str) -> None:
    section = (
        "## Emulator\n\n"
        f"Machine: {machine()}.\n"
        "One emulator process (`python -m gigapy.emulator --no-limits --pack-stream`), driven by a raw aiohttp "
        "client on the same machine (`benchmarks/bench_emulator.py`); the default-framing row runs a second process "
        "with the default framing (each SSE event its own flushed write, as the service sends them).\n\n"
        "| measure | result | target |\n|---|---|---|\n"
        f"| small chat completions | {figures['chat_rps']:,.0f} req/s | ≥ 4,000 req/s |\n"
        f"| streamed chunks (`--pack-stream`) | {figures['chunk_rate']:,.0f} chunks/s | ≥ 200,000 chunks/s |\n"
        f"| memory growth over {figures['memory_requests']:,} requests (new X-Session-ID each) | "
        f"{figures['rss_after'] - figures['rss_before']:+.1f} MiB "
        f"({figures['rss_before']:.1f} → {figures['rss_after']:.1f} MiB RSS) | < 20 MB |\n"
        f"| streamed chunks, one write per event (default) | {figures['framed_rate']:,.0f} chunks/s | "
        "none (faithful framing) |\n"
        + (f"| small chat completions, side by side with `--baseline` ({figures['rounds']} interleaved rounds, "
           f"medians) | {figures['ours_rps']:,.0f} vs {figures['base_rps']:,.0f} req/s; server CPU "
           f"{figures['ours_cpu']:.0f} vs {figures['base_cpu']:.0f} us per request "
           f"(baseline / this tree: {figures['base_cpu'] / figures['ours_cpu']:.2f}) | no slower than the baseline |\n"
           if "ours_rps" in figures else "")
        + (f"| small chat completions, side by side with a bare aiohttp server answering one fixed body "
           f"(`--ceiling`, {figures['rounds']} interleaved rounds, medians) | {figures['emu_rps']:,.0f} vs "
           f"{figures['bare_rps']:,.0f} req/s = {figures['emu_rps'] / figures['bare_rps']:.2f}× the ceiling; "
           f"server CPU {figures['emu_cpu']:.0f} vs {figures['bare_cpu']:.0f} us per request | "
           "none (what this machine allows) |\n"
           if "emu_rps" in figures else "")
        + "\n"
        f"{notes}"
    )
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    pattern = re.compile(r"## Emulator\n.*?(?=\n## |\Z)", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
    print(f"updated {RESULTS}")


NOTES = """**The ≥ 4,000 req/s target and this machine.** The target was set, and met (7,013 req/s at commit
edccc51), on a 2-core Intel Xeon machine. This AMD EPYC machine is about half as fast for this load.
Measured on 2026-12-02 at 03:45-03:48 UTC with the machine otherwise idle (load average 0.03-1.6),
the same command as above:
- this tree: 1,997 and 2,001 req/s in two runs; side by side with edccc51 (`--baseline`, 3 interleaved
  rounds): this tree 2,141 req/s (464 us server CPU per request), edccc51 1,812 req/s (549 us). The code
  that met the target on the Xeon machine does 1,812 here; this tree is 1.18x faster than it;
- a bare aiohttp server answering one fixed JSON body, driven by the same 64-way aiohttp client: 3,328
  req/s. That is the ceiling of any aiohttp server on this machine with the load generator sharing its
  two cores, so 4,000 req/s cannot be reached here by any emulator built on aiohttp. The `--ceiling`
  row above measures the ratio in the same run (it ran at load 4-6 from other jobs, so its absolute
  figures are low; the quiet ratio is 2,141 / 3,328 = 0.64).

Absolute rates depend on the machine and on whatever else shares its two cores; the side-by-side row
(`--baseline SRC`: another checkout's `src/`, e.g. the main branch exported with `git archive`) compares
this tree with it in the same run, interleaved, which is the figure to read when machines differ.

Profiled with cProfile on the server process (`python -m cProfile -m gigapy.emulator`) under this load.
What keeps the hot path short:
- One wrapper per route instead of aiohttp middlewares; no access log.
- A prebuilt `json.JSONEncoder` (compact, `ensure_ascii=False`) instead of `json.dumps(**kwargs)` per call.
- Echoed ids from `random.getrandbits` formatted as UUIDv4, not `uuid.uuid4()`.
- Answer length estimated from characters while composing; the text is tokenized once
  (the profile showed 8 regex passes per small completion before, 2 after).
- SSE events rendered from prebuilt prefixes/suffixes with one C-level string escape per chunk,
  written ~64 KiB at a time with `--pack-stream` (benchmarks); by default each event is its own
  flushed write, which costs a send() per event.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40_000, help="small completions to time")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--streams", type=int, default=12)
    parser.add_argument("--stream-tokens", type=int, default=50_000)
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="time cap per measurement")
    parser.add_argument("--memory-seconds", type=float, default=120.0)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--baseline", metavar="SRC", help="also time small completions on the gigapy in SRC "
                                                          "(another checkout's src/), interleaved with this tree")
    parser.add_argument("--ceiling", action="store_true", help="also time a bare aiohttp server answering one "
                                                                  "fixed body, interleaved with the emulator")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds for --baseline and --ceiling")
    args = parser.parse_args()
    port = free_port()
    proc = start_emulator(port)
    try:
        figures = asyncio.run(run_all(args, port, proc.pid))
    finally:
        proc.stop()
    port = free_port()
    proc = start_emulator(port, pack=False)
    try:
        figures["framed_rate"] = asyncio.run(framed_chunks(args, port))
    finally:
        proc.stop()
    if args.baseline:
        figures.update(side_by_side(args), rounds=args.rounds)
    if args.ceiling:
        figures.update(ceiling(args), rounds=args.rounds)
    if args.write:
        write_results(figures, NOTES)


if __name__ == "__main__":
    main()
