"""Goodput under a concurrency quota: a fraction of the ideal rate (quota / generation time).

One emulator process with the service's default limits (10 concurrent requests for CORP) and a
fixed generation time per answer, one real redis-server. Contenders:

- one ``gigapy batch`` process with default settings;
- a fleet of 4 and of 16 worker processes sharing the input through Redis (``run_batch`` with
  ``coordinator=``; each worker warms up, then all start together);
- the official ``gigachat`` SDK driven by ``asyncio.gather`` with a semaphore of 10, as users
  write it today.

For each: requests answered / wall time of the run / ideal rate, items that failed, and how many
429s the emulator sent. Run: ``.venv/bin/python -m benchmarks.bench_fleet [--gen 0.5] [--n 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gigapy.emulator import EmulatorProcess

from ._common import ROOT, emulator_stats, machine

sys.path.insert(0, str(ROOT))
from tests.redis_server import RedisServer

LIMIT = 10
GIGAPY = str(Path(sys.executable).parent / "gigapy")
CREDENTIALS = None  # filled from the emulator's demo account


def _emulator(gen: float) -> EmulatorProcess:
    return EmulatorProcess("--ttft", str(gen), "--tokens-per-second", "0", cwd=ROOT).start()


def _env(url: str, home: Path) -> dict[str, str]:
    from gigapy.emulator import DEMO_CREDENTIALS

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
    env.update(GIGACHAT_CREDENTIALS=DEMO_CREDENTIALS, GIGACHAT_SCOPE="GIGACHAT_API_CORP",
               GIGACHAT_BASE_URL=url + "/api/v1", GIGACHAT_AUTH_URL=url + "/api/v2/oauth",
               GIGAPY_CONFIG_DIR=str(home / "config"))
    return env


def _input(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"r{i}", "request": {"messages": [{"role": "user", "content": f"q{i}"}]}})
                     + "\n")
    return path


def _reset(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(url + "/__emulator__/reset", method="POST"), timeout=10).read()


def _fresh(outputs: list[Path]) -> None:
    """Remove a previous round's files (else the runner resumes with nothing left to do)."""
    for out in outputs:
        errors = out.with_name(out.name.replace(".jsonl", ".errors.jsonl"))
        for path in (out, errors, out.with_name(out.name + ".corrupt")):
            path.unlink(missing_ok=True)


def _count_lines(paths: list[Path]) -> int:
    return sum(p.read_bytes().count(b"\n") for p in paths if p.exists())


def one_batch(url: str, n: int, home: Path) -> dict[str, Any]:
    """One ``gigapy batch`` process with default settings."""
    src = _input(home / "in1.jsonl", n)
    out = home / "out1.jsonl"
    _fresh([out])
    _reset(url)
    done = subprocess.run([GIGAPY, "batch", str(src), "-o", str(out), "--no-progress", "--json"],
                          env=_env(url, home), capture_output=True, text=True, timeout=600)
    summary = json.loads(done.stdout)
    return {"ok": summary["done"], "failed": summary["failed"], "seconds": summary["elapsed"],
            "cpu_ms_per_answer": 1000 * summary["cpu_seconds"] / max(1, summary["done"])}


_WORKER = """
import asyncio, json, sys, time
import redis
from gigapy import AsyncGigaChat
from gigapy.batch import run_batch
from gigapy.coordinator import shared

async def main():
    async with AsyncGigaChat(coordinator={url!r}) as client:
        store = redis.Redis.from_url({plain!r})
        await client.all_models()
        await (await shared({url!r}).aacquire("warm-up", 64)).arelease()
        print("ready", flush=True)
        deadline = time.monotonic() + 300
        while not store.exists("bench:go") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        coordinator = shared({url!r})
        calls, cpu = coordinator.backend_calls, time.process_time()
        summary = await run_batch(client, {input!r}, {output!r}, concurrency=10, coordinator={url!r})
        facts = summary.to_dict()
        facts.update(t_end=time.time(), lease_calls=coordinator.backend_calls - calls, passed_on=coordinator.passed_on,
                     cpu=time.process_time() - cpu)
        print(json.dumps(facts), flush=True)

asyncio.run(main())
"""


def fleet(url: str, n: int, workers: int, redis_url: str, home: Path) -> dict[str, Any]:
    """``workers`` processes sharing one input through Redis."""
    import redis

    store = redis.Redis.from_url(redis_url)
    store.flushall()
    # a store that has been up a while, as a fleet meets it in production: a store the fleet sees
    # for the first time (or after it lost its state) grants no claim for the recovery grace
    # (2.5 s, once per store lifetime), which is no part of the steady rate measured here
    from gigapy.coordinator import shared

    primed = time.monotonic()
    shared(redis_url).claim_wait()
    src = _input(home / f"in{workers}.jsonl", n)
    outs = [home / f"fleet{workers}.{w}.jsonl" for w in range(workers)]
    _fresh(outs)
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER.format(url=redis_url, plain=redis_url, input=str(src),
                                                                     output=str(out))],
                              env=_env(url, home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for out in outs]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(proc.communicate()[1][-2000:])
    from gigapy.coordinator._coordinator import RECOVERY_GRACE

    time.sleep(max(0.0, primed + RECOVERY_GRACE + 0.1 - time.monotonic()))
    _reset(url)
    started = time.monotonic()
    store.set("bench:go", 1)
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0 or not out.strip():
            raise RuntimeError(f"a fleet worker failed (exit {proc.returncode}):\n{err[-3000:]}")
        summaries.append(json.loads(out))
    # the runners' own time from the common start to the last answer written (an interpreter's exit
    # after its summary is not part of the run; the single-process row reads the same figure)
    seconds = max(s["elapsed"] for s in summaries) if summaries else time.monotonic() - started
    store.close()
    ids: dict[str, int] = {}
    for out in outs:
        for raw in out.read_bytes().splitlines():
            rid = json.loads(raw)["id"]
            ids[rid] = ids.get(rid, 0) + 1
    if len(ids) != n or set(ids.values()) != {1}:
        raise RuntimeError("an id is missing or written twice")
    ok = sum(s["done"] for s in summaries)
    return {"ok": ok, "failed": sum(s["failed"] for s in summaries), "seconds": seconds,
            # lease operations that reached Redis (acquire tries, releases, hand-overs) per answer, and
            # the workers' CPU per answer: what the code costs, apart from what the machine does
            "lease_calls_per_answer": sum(s.get("lease_calls", 0) for s in summaries) / max(1, ok),
            "cpu_ms_per_answer": 1000 * sum(s.get("cpu", 0.0) for s in summaries) / max(1, ok),
            # after the fleet's last answer was written, how long until the last worker's run ended
            "tail_s": max(s["t_end"] for s in summaries) - max(o.stat().st_mtime for o in outs if o.exists())}


def official_sdk(url: str, n: int) -> dict[str, Any]:
    """The official SDK: asyncio.gather over a semaphore of 10."""
    from gigachat import GigaChat

    from gigapy.emulator import DEMO_CREDENTIALS

    async def main() -> dict[str, Any]:
        ok = failed = 0
        sem = asyncio.Semaphore(LIMIT)
        async with GigaChat(credentials=DEMO_CREDENTIALS, scope="GIGACHAT_API_CORP", base_url=url + "/api/v1",
                            auth_url=url + "/api/v2/oauth", verify_ssl_certs=False, model="GigaChat-2") as giga:
            await giga.aget_models()  # warm up: token and connection

            async def one(i: int) -> None:
                nonlocal ok, failed
                async with sem:
                    try:
                        await giga.achat(f"q{i}")
                        ok += 1
                    except Exception:
                        failed += 1

            _reset(url)
            started = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(n)))
            return {"ok": ok, "failed": failed, "seconds": time.monotonic() - started}

    return asyncio.run(main())


def gigapy_gather(url: str, n: int) -> dict[str, Any]:
    """gigapy's async client driven by a plain ``asyncio.gather`` (no semaphore: the client's gate)."""
    from gigapy import AsyncGigaChat
    from gigapy.emulator import DEMO_CREDENTIALS

    async def main() -> dict[str, Any]:
        async with AsyncGigaChat(credentials=DEMO_CREDENTIALS, scope="GIGACHAT_API_CORP", base_url=url + "/api/v1",
                                 auth_url=url + "/api/v2/oauth") as client:
            await client.all_models()  # warm up: token and connection
            _reset(url)
            started, cpu = time.monotonic(), time.process_time()
            results = await asyncio.gather(*(client.completion(f"q{i}") for i in range(n)), return_exceptions=True)
            seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        failed = sum(isinstance(r, BaseException) for r in results)
        return {"ok": n - failed, "failed": failed, "seconds": seconds, "cpu_ms_per_answer": 1000 * cpu / max(1, n)}

    return asyncio.run(main())


def _faults(url: str, spec: dict[str, Any] | None) -> None:
    import urllib.request

    req = (urllib.request.Request(url + "/__emulator__/faults", data=json.dumps(spec).encode(), method="POST",
                                  headers={"Content-Type": "application/json"})
           if spec is not None else urllib.request.Request(url + "/__emulator__/faults", method="DELETE"))
    urllib.request.urlopen(req, timeout=10).read()


def gigapy_embed_many(url: str, n: int, gen: float) -> dict[str, Any]:
    """gigapy's ``embed_many`` with default settings, ``n`` batches of one short text; each batch
    takes the generation time inside its slot (the emulator's ``latency_ms`` on /embeddings)."""
    _faults(url, {"spec": f"latency_ms:{gen * 1000:g}", "routes": ["/embeddings"]})
    try:
        return _embed_many(url, n)
    finally:
        _faults(url, None)


def _embed_many(url: str, n: int) -> dict[str, Any]:
    from gigapy import AsyncGigaChat
    from gigapy.emulator import DEMO_CREDENTIALS

    async def main() -> dict[str, Any]:
        async with AsyncGigaChat(credentials=DEMO_CREDENTIALS, scope="GIGACHAT_API_CORP", base_url=url + "/api/v1",
                                 auth_url=url + "/api/v2/oauth") as client:
            await client.all_models()
            _reset(url)
            started = time.monotonic()
            ok = failed = 0
            try:
                vectors = await client.embed_many([f"text {i}" for i in range(n)], batch_size=1)
                ok = len(vectors)
            except Exception:
                failed = n
            return {"ok": ok, "failed": failed, "seconds": time.monotonic() - started}

    return asyncio.run(main())


class Occupancy:
    """Mean slots the emulator holds while a contender runs (its own count, sampled every 50 ms):
    what separates quota left unused by the clients from an emulator slowed by other load."""

    def __init__(self, url: str) -> None:
        import threading

        self.url = url
        self.samples: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 900
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                self.samples.append(int(emulator_stats(self.url)["slots_held"]))
            except OSError:
                pass
            time.sleep(0.05)

    def __enter__(self) -> Occupancy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def fraction(self) -> float:
        """Mean held / quota over the samples from the first busy one to the last busy one."""
        busy = [i for i, held in enumerate(self.samples) if held > 0]
        if not busy:
            return 0.0
        window = self.samples[busy[0]:busy[-1] + 1]
        return sum(window) / (LIMIT * len(window))

    def idle_slot_seconds(self) -> float:
        """Slot-seconds left idle over the busy part of the run (50 ms per sample)."""
        busy = [i for i, held in enumerate(self.samples) if held > 0]
        if not busy:
            return 0.0
        return sum(LIMIT - held for held in self.samples[busy[0]:busy[-1] + 1]) * 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen", type=float, default=0.5, help="generation time per answer, seconds")
    parser.add_argument("--n", type=int, default=200, help="requests per contender")
    parser.add_argument("--only", default="", help="comma-separated contenders: batch,fleet4,fleet16,gather,"
                                                    "embed,sdk (default: all)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every contender, interleaved (medians)")
    args = parser.parse_args()
    ideal = LIMIT / args.gen
    emu = _emulator(args.gen)
    url = emu.url
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            plan = [("batch", "one `gigapy batch` process, default settings", lambda: one_batch(url, args.n, home)),
                    ("fleet4", "fleet of 4 workers through Redis", lambda: fleet(url, args.n, 4, server.url, home)),
                    ("fleet16", "fleet of 16 workers through Redis",
                     lambda: fleet(url, args.n, 16, server.url, home)),
                    ("gather", "gigapy async client, plain asyncio.gather (no semaphore)",
                     lambda: gigapy_gather(url, args.n)),
                    ("embed", "gigapy embed_many, default settings (one text per batch)",
                     lambda: gigapy_embed_many(url, args.n, args.gen)),
                    ("sdk", "official SDK, asyncio.gather + Semaphore(10)", lambda: official_sdk(url, args.n))]
            chosen = {c for c in args.only.split(",") if c}
            plan = [p for p in plan if not chosen or p[0] in chosen]
            runs: dict[str, list[dict[str, Any]]] = {}
            for _ in range(max(1, args.rounds)):
                for _key, name, run in plan:
                    with Occupancy(url) as occupancy:
                        result = run()
                    result["occupancy"] = occupancy.fraction()
                    # each answer frees its slot once: idle slot time / answers = the gap per hand-off
                    result["gap_ms"] = 1000 * occupancy.idle_slot_seconds() / max(1, result["ok"])
                    stats = emulator_stats(url)
                    result["429"] = int(stats["responses"].get("429", 0))
                    result["peak"] = int(stats["slots_peak"])
                    result["goodput"] = result["ok"] / result["seconds"] / ideal
                    runs.setdefault(name, []).append(result)
                    print(f"{name}: {result}", flush=True)
            for _key, name, _run in plan:
                results = sorted(runs[name], key=lambda r: r["goodput"])
                rows.append((name, results[len(results) // 2]))
    finally:
        emu.kill()
    m = machine()
    print(f"\nMachine: {m}; generation {args.gen:g} s per answer, quota {LIMIT}, ideal {ideal:g} req/s, "
          f"{args.n} requests per contender.\n")
    print("| contender | goodput (of ideal) | quota occupied | idle ms per hand-off | client CPU ms per answer "
          "| Redis lease calls per answer | answered | failed | 429 from the emulator | peak in flight |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        cpu = f"{r['cpu_ms_per_answer']:.1f}" if "cpu_ms_per_answer" in r else "—"
        calls = f"{r['lease_calls_per_answer']:.2f}" if "lease_calls_per_answer" in r else "—"
        print(f"| {name} | {r['goodput']:.3f} | {r['occupancy']:.2f} | {r['gap_ms']:.0f} | {cpu} | {calls} "
              f"| {r['ok']} | {r['failed']} | {r['429']} | {r['peak']} |")
    print(f"\nLoad average during the run: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min).")


if __name__ == "__main__":
    main()
