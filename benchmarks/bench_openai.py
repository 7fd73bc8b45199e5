"""The OpenAI-compatible bridge: in-process CPU cost, and ``gigapy serve`` throughput side by side.

    .venv/bin/python -m benchmarks.bench_openai             # full run, writes the RESULTS.md section
    .venv/bin/python -m benchmarks.bench_openai --quick     # small counts, prints only
    .venv/bin/python -m benchmarks.bench_openai --gpt2giga .bench/gpt2giga/bin/gpt2giga

One emulator process (``python -m gigapy.emulator --no-limits``) serves every contender:

1. **In-process CPU per request** (this process, sequential, CPU time): plain
   ``GigaChat.completion()`` vs the same request through ``gigapy.openai``'s bridge
   (``Bridge.handle``: JSON in, translation, the same client call, JSON out), through the
   httpx transport (httpx's client machinery included), and a bare ``httpx.MockTransport``
   handing back the same bytes (httpx's own cost, to report the transport net of it).
   Target: the bridge adds ≤ 0.1 ms.
2. **Throughput at concurrency 64** (each load in a fresh worker process): plain async gigapy
   against the emulator; an aiohttp load generator against ``gigapy serve``; the same load
   generator against gpt2giga 0.3.0 (its own venv: its dependencies clash with ours) in
   front of the same emulator. The CPU of every process (load generator, proxy, emulator)
   per request is read from /proc. A second run puts 1 s of latency into the emulator's
   answers (CPU no longer the bound). Targets: serve ≥ 0.8× plain async gigapy, ≥ 3× gpt2giga.

Rounds are interleaved (the order rotates) and medians reported. Every load is bounded by a
request count and a time limit. gpt2giga is installed with
``python -m venv .bench/gpt2giga && .bench/gpt2giga/bin/pip install gpt2giga==0.3.0``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import MESSAGES, MODEL, ROOT, WORK, EmulatorProcess, free_port, machine, results_path, versions

RESULTS = results_path()
SECTION = "## OpenAI-compatible bridge"
CONCURRENCY = 64
LATENCY_MS = 1000  # the second throughput run: the emulator answers after this long, as GigaChat may
DEMO = None  # the emulator's demo key, read in main()
BODY = json.dumps({"model": MODEL, "messages": MESSAGES}).encode()


def _settings(emu_url: str) -> dict[str, Any]:
    from gigapy.emulator import DEMO_CREDENTIALS

    return {"credentials": DEMO_CREDENTIALS, "scope": "GIGACHAT_API_PERS", "base_url": f"{emu_url}/api/v1",
            "auth_url": f"{emu_url}/api/v2/oauth", "max_retries": 0}


# ------------------------------------------------------------------------------ 1. CPU cost


def cpu_overhead(emu_url: str, count: int, rounds: int) -> dict[str, Any]:
    """CPU microseconds per request: plain client, bridge, httpx transport (medians of rounds)."""
    import gigapy.openai
    from gigapy import GigaChat
    from gigapy.openai._bridge import Bridge, Reply

    client = GigaChat(**_settings(emu_url))
    bridge = Bridge(client)
    http = gigapy.openai.http_client(client, lib="httpx")
    headers = {"content-type": "application/json"}

    def plain() -> None:
        client.completion(MESSAGES, model=MODEL)

    def bridged() -> None:
        reply = bridge.handle("POST", "/v1/chat/completions", headers, BODY)
        assert reply.status == 200, reply

    def transport() -> None:
        reply = http.post("/chat/completions", content=BODY, headers=headers)
        assert reply.status_code == 200, reply.text

    import httpx

    canned = bridge.handle("POST", "/v1/chat/completions", headers, BODY)
    assert isinstance(canned, Reply)
    mock = httpx.Client(
        base_url="http://mock/v1",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, headers=canned.headers, content=canned.body)),
    )

    def bare_httpx() -> None:  # httpx's own client cost: a transport that only hands back canned bytes
        reply = mock.post("/chat/completions", content=BODY, headers=headers)
        assert reply.status_code == 200

    contenders = {"plain gigapy": plain, "bridge": bridged, "httpx transport": transport, "bare httpx": bare_httpx}
    for fn in contenders.values():  # warm-up: token, connections, lazy model builds
        for _ in range(50):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    deadline = time.monotonic() + 300
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = contenders[name]
            start = time.process_time()
            for _ in range(count):
                fn()
            samples[name].append((time.process_time() - start) / count * 1e6)
        if time.monotonic() > deadline:
            break
    answer = client.completion(MESSAGES, model=MODEL)
    http.close()
    mock.close()
    client.close()
    med = {name: statistics.median(values) for name, values in samples.items()}
    med["translation alone"] = translation_alone(answer, 5000 if count >= 1000 else 500, rounds)
    return {"us": med, "spread": {n: (min(v), max(v)) for n, v in samples.items()},
            "count": count, "rounds": len(samples["bridge"])}


def translation_alone(answer: Any, count: int, rounds: int) -> float:
    """CPU microseconds of the bridge's own work on one request, no I/O: JSON in, plan, the
    client call's arguments, the completion rendered from GigaChat's JSON dict to JSON bytes
    (the median of ``rounds``). The dict itself is not counted: reading GigaChat's JSON into
    it replaces plain gigapy's model validation of the same bytes."""
    from gigapy._translate import TranslateContext, chat_completion_json, chat_request, request_json
    from gigapy.openai._bridge import _gigachat_kwargs, _request_id

    raw = answer.to_dict()

    def one() -> None:
        rid = _request_id({})
        call = chat_request(request_json(BODY)).finish({})
        _gigachat_kwargs(call, rid)
        assert chat_completion_json(call, raw, TranslateContext(request_id=rid, now=time.time)) is not None

    for _ in range(200):
        one()
    values = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(count):
            one()
        values.append((time.process_time() - start) / count * 1e6)
    return statistics.median(values)


# ---------------------------------------------------------------------- 2. throughput workers


async def _load_plain(emu_url: str, total: int, limit: float) -> dict[str, Any]:
    from gigapy import AsyncGigaChat

    async with AsyncGigaChat(**_settings(emu_url)) as client:
        for _ in range(CONCURRENCY):  # warm-up: token and a pool of connections
            await client.completion(MESSAGES, model=MODEL)
        await asyncio.gather(*(client.completion(MESSAGES, model=MODEL) for _ in range(CONCURRENCY)))
        return await _drive(lambda: client.completion(MESSAGES, model=MODEL), total, limit)


async def _load_http(url: str, total: int, limit: float) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}

        async def one() -> None:
            async with session.post(f"{url}/v1/chat/completions", data=BODY, headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {body[:300]!r}")
                json.loads(body)

        await asyncio.gather(*(one() for _ in range(CONCURRENCY)))  # warm-up
        return await _drive(one, total, limit)


async def _drive(one: Any, total: int, limit: float) -> dict[str, Any]:
    """``total`` requests, ``CONCURRENCY`` at a time, stopped at ``limit`` seconds."""
    done = 0
    failed = 0
    deadline = time.monotonic() + limit

    async def lane(share: int) -> None:
        nonlocal done, failed
        for _ in range(share):
            if time.monotonic() > deadline:
                return
            try:
                await one()
                done += 1
            except Exception:
                failed += 1

    start = time.perf_counter()
    cpu = time.process_time()
    shares = [total // CONCURRENCY + (1 if i < total % CONCURRENCY else 0) for i in range(CONCURRENCY)]
    await asyncio.gather(*(lane(s) for s in shares))
    wall = time.perf_counter() - start
    return {"done": done, "failed": failed, "wall": wall, "rps": done / wall if wall else 0.0,
            "cpu_us": (time.process_time() - cpu) / max(done, 1) * 1e6}


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One load in this (fresh) process."""
    if spec["kind"] == "plain":
        return asyncio.run(_load_plain(spec["emu"], spec["total"], spec["limit"]))
    return asyncio.run(_load_http(spec["url"], spec["total"], spec["limit"]))


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_openai", "--worker", json.dumps(spec)],
                         capture_output=True, text=True, cwd=ROOT, timeout=spec["limit"] + 120, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker {spec['kind']} failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------ the servers


class Proxy:
    """A proxy process on loopback (gigapy serve or gpt2giga), waited for until /health answers."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, cwd: Path = ROOT) -> None:
        self.name, self.cmd, self.env, self.port, self.cwd = name, cmd, env, port, cwd
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Proxy:
        import urllib.request

        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}") from None
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{self.name} did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def serve_proxy(emu_url: str) -> Proxy:
    port = free_port()
    env = {**os.environ, **{f"GIGACHAT_{k.upper()}": str(v) for k, v in _settings(emu_url).items()}}
    cmd = [sys.executable, "-c", "from gigapy.cli import main; main()", "serve", "--port", str(port)]
    return Proxy("gigapy serve", cmd, env, port)


def gpt2giga_proxy(exe: str, emu_url: str) -> Proxy:
    port = free_port()
    s = _settings(emu_url)
    cmd = [exe, "--proxy.host", "127.0.0.1", "--proxy.port", str(port), "--proxy.pass-model", "true",
           "--proxy.log-level", "WARNING", "--gigachat.base-url", s["base_url"], "--gigachat.auth-url", s["auth_url"],
           "--gigachat.credentials", s["credentials"], "--gigachat.scope", s["scope"],
           "--gigachat.verify-ssl-certs", "false"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGACHAT_")}
    WORK.mkdir(parents=True, exist_ok=True)
    return Proxy("gpt2giga", cmd, env, port, cwd=WORK)  # it writes gpt2giga.log into its working directory


def gpt2giga_version(exe: str) -> str:
    python = Path(exe).with_name("python")
    out = subprocess.run([str(python), "-c", "from importlib.metadata import version; print(version('gpt2giga'))"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def throughput(emu: EmulatorProcess, rounds: int, total: int, limit: float, g2g_exe: str | None) -> dict[str, Any]:
    """Interleaved rounds at concurrency 64 against ``emu``: plain async gigapy, gigapy serve and
    (when given) gpt2giga. Medians of req/s and of CPU per request of every process involved:
    the load generator, the proxy, the emulator."""
    names = ["plain async gigapy", "gigapy serve"] + (["gpt2giga"] if g2g_exe else [])
    rps: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, dict[str, list[float]]] = {name: {"client": [], "proxy": [], "emulator": []} for name in names}
    assert emu.proc is not None
    with serve_proxy(emu.url) as serve:
        g2g_ctx = gpt2giga_proxy(g2g_exe, emu.url) if g2g_exe else None
        g2g = g2g_ctx.__enter__() if g2g_ctx else None
        try:
            specs = {"plain async gigapy": {"kind": "plain", "emu": emu.url},
                     "gigapy serve": {"kind": "http", "url": serve.url}}
            if g2g is not None:
                specs["gpt2giga"] = {"kind": "http", "url": g2g.url}
            for r in range(rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    spec = {**specs[name], "total": total, "limit": limit}
                    proxy = {"gigapy serve": serve, "gpt2giga": g2g}.get(name)
                    pid = proxy.proc.pid if proxy is not None and proxy.proc is not None else None
                    before = process_cpu(pid) if pid else 0.0
                    emu_before = process_cpu(emu.proc.pid)
                    result = run_worker(spec)
                    # per request, warm-up included (64 more requests; 128 for plain gigapy)
                    sent = result["done"] + CONCURRENCY * (2 if name == "plain async gigapy" else 1)
                    result["emulator_cpu_us"] = (process_cpu(emu.proc.pid) - emu_before) / sent * 1e6
                    if pid:
                        result["proxy_cpu_us"] = (process_cpu(pid) - before) / sent * 1e6
                        cpu[name]["proxy"].append(result["proxy_cpu_us"])
                    print(f"round {r + 1} {name}: {result}", flush=True)
                    rps[name].append(result["rps"])
                    cpu[name]["client"].append(result["cpu_us"])
                    cpu[name]["emulator"].append(result["emulator_cpu_us"])
        finally:
            if g2g_ctx is not None:
                g2g_ctx.__exit__()
    return {"rps": {n: statistics.median(v) for n, v in rps.items() if v},
            "spread": {n: (min(v), max(v)) for n, v in rps.items() if v},
            "cpu": {n: {part: statistics.median(v) for part, v in parts.items() if v} for n, parts in cpu.items()}}


# ----------------------------------------------------------------------------------- report


def _cpu_row(run: dict[str, Any], name: str) -> str:
    parts = run["cpu"].get(name, {})
    cells = [f"{label} {parts[key]:.0f}" for key, label in (("client", "load generator"), ("proxy", "proxy"),
                                                           ("emulator", "emulator")) if key in parts]
    return ", ".join(cells) + f" = **{sum(parts.values()):.0f} us**"


def section(cpu: dict[str, Any], bound: dict[str, Any], waiting: dict[str, Any], meta: dict[str, Any]) -> str:
    us = cpu["us"]
    extra = us["bridge"] - us["plain gigapy"]
    transport_extra = us["httpx transport"] - us["plain gigapy"]
    net = transport_extra - us["bare httpx"]
    lines = [
        SECTION, "",
        f"Machine: {meta['machine']['os']}, {meta['machine']['cpu']}, {meta['machine']['cores']} cores; "
        f"{meta['machine']['python']}; gigapy {meta['versions']['gigapy']}, httpx {meta['versions']['httpx']}, "
        f"aiohttp {meta['versions']['aiohttp']}; gpt2giga {meta['gpt2giga']}. Load average (1 min) at the "
        f"start and the end of the run: {meta['load'][0]:.1f}, {meta['load'][1]:.1f} (other work shared the "
        "machine: absolute figures are inflated, the side-by-side ratios are the ones to read).",
        "One run of `python -m benchmarks.bench_openai`: one emulator process (`--no-limits`) behind every "
        "contender; small non-streamed chat completions; medians of interleaved rounds.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| in-process CPU per request: plain `GigaChat.completion()` | {us['plain gigapy']:.0f} us | |",
        f"| in-process CPU per request: through the bridge (`Bridge.handle`) | {us['bridge']:.0f} us "
        f"(+{extra:.0f} us = {extra / 1000:.3f} ms) | ≤ +0.1 ms |",
        f"| in-process CPU per request: the bridge's own work alone, no I/O (JSON in, plan, render from "
        f"GigaChat's JSON dict, JSON out) | {us['translation alone']:.0f} us = "
        f"{us['translation alone'] / 1000:.3f} ms | ≤ 0.1 ms |",
        f"| in-process CPU per request: through `http_client()` (httpx's client included) | "
        f"{us['httpx transport']:.0f} us (+{transport_extra:.0f} us) | |",
        f"| the same, net of httpx's own client (a bare `httpx.MockTransport` handing back the same bytes: "
        f"{us['bare httpx']:.0f} us) | +{net:.0f} us = {net / 1000:.3f} ms | ≤ +0.1 ms |",
    ]
    for label, run in (("CPU-bound (no upstream latency)", bound),
                       (f"upstream latency {LATENCY_MS} ms", waiting)):
        rps = run["rps"]
        plain, serve = rps.get("plain async gigapy"), rps.get("gigapy serve")
        if plain and serve:
            lines.append(f"| throughput at concurrency {CONCURRENCY}, {label}: gigapy serve / plain async gigapy | "
                         f"{serve:,.0f} / {plain:,.0f} req/s = **{serve / plain:.2f}×** | ≥ 0.8× |")
        g2g = rps.get("gpt2giga")
        if serve and g2g:
            lines.append(f"| throughput at concurrency {CONCURRENCY}, {label}: gigapy serve / gpt2giga "
                         f"{meta['gpt2giga']} | {serve:,.0f} / {g2g:,.0f} req/s = **{serve / g2g:.2f}×** | ≥ 3× |")
    for name in bound["cpu"]:
        lines.append(f"| CPU per request, CPU-bound run, {name} (process CPU / requests) | {_cpu_row(bound, name)} | |")
    lines += ["", "Throughput rounds (req/s, min–max): " + "; ".join(
        f"{name} {lo:,.0f}–{hi:,.0f}" for name, (lo, hi) in bound["spread"].items()) + f"; with {LATENCY_MS} ms "
        "upstream latency: " + "; ".join(f"{name} {lo:,.0f}–{hi:,.0f}" for name, (lo, hi) in waiting["spread"].items())
        + ".",
        f"CPU rounds: {cpu['rounds']} × {cpu['count']} sequential requests per contender (min–max us: " + "; ".join(
        f"{name} {lo:.0f}–{hi:.0f}" for name, (lo, hi) in cpu["spread"].items()) + ").", ""]
    lines += [
        "How to read it: the in-process rows are this process's CPU time per request (the emulator runs in "
        "another process), so the bridge's row minus the plain row is what the translation costs. The "
        "throughput rows share two cores between the load generator, the proxy and the emulator, so when "
        "the run is CPU-bound the ratio is the ratio of the summed CPU per request of the processes (the "
        "CPU rows): gigapy serve adds a second HTTP hop (an aiohttp server in front of an aiohttp client), "
        "which costs about what the emulator's server and the plain client cost together. With upstream "
        f"latency ({LATENCY_MS} ms) the run is bound by concurrency and latency instead, as with GigaChat "
        "itself.", ""]
    return "\n".join(lines)


def write_section(text: str) -> None:
    current = RESULTS.read_text(encoding="utf-8")
    if SECTION in current:
        head, _, rest = current.partition(SECTION)
        after = rest.split("\n## ", 1)
        tail = ("\n## " + after[1]) if len(after) > 1 else ""
        current = head + text.rstrip() + "\n" + tail
    else:
        current = current.rstrip() + "\n\n" + text
        current = current.replace("[Client](#client)", "[Client](#client) · [OpenAI-compatible bridge]"
                                  "(#openai-compatible-bridge)", 1)
    RESULTS.write_text(current, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_openai")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small counts, one round, RESULTS.md untouched")
    parser.add_argument("--gpt2giga", default=str(ROOT / ".bench" / "gpt2giga" / "bin" / "gpt2giga"),
                        help="the gpt2giga executable (its own venv)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000, help="requests per throughput round")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    rounds = 1 if args.quick else args.rounds
    total = 400 if args.quick else args.requests
    limit = 120.0
    have_g2g = Path(args.gpt2giga).exists()
    load_start = os.getloadavg()[0]
    with EmulatorProcess() as emu:
        print("cpu overhead ...", flush=True)
        cpu = cpu_overhead(emu.url, 100 if args.quick else 1000, 2 if args.quick else 5)
        print(json.dumps(cpu["us"]), flush=True)
        bound = throughput(emu, rounds, total, limit, args.gpt2giga if have_g2g else None)
    with EmulatorProcess("--faults", f"latency_ms:{LATENCY_MS}") as slow:
        print(f"upstream latency {LATENCY_MS} ms ...", flush=True)
        waiting = throughput(slow, rounds, min(total, 1000), limit, None)  # 64 req/s at most: fewer requests
    meta = {"machine": machine(), "versions": versions(), "load": (load_start, os.getloadavg()[0]),
            "gpt2giga": gpt2giga_version(args.gpt2giga) if have_g2g else "not installed"}
    text = section(cpu, bound, waiting, meta)
    print(text)
    if not args.quick:
        write_section(text)


if __name__ == "__main__":
    main()
