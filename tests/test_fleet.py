"""A fleet of real ``gigapy batch`` processes on one account, through a real redis-server, against
an emulator that allows 10 concurrent requests and whose generation time occupies them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from gigapy.emulator import DEMO_CREDENTIALS, Emulator
from gigapy.emulator._config import default_limits

from .redis_server import RedisServer

GIGAPY = str(Path(sys.executable).parent / "gigapy")
SRC = str(Path(__file__).resolve().parents[1] / "src")
GEN = 0.5  # seconds every answer occupies its slot
LIMIT = 10  # the emulator's concurrency for the CORP scope


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def fleet_emu() -> Iterator[Emulator]:
    with Emulator(ttft=GEN, tokens_per_second=0, token_ttl=4.0) as emu:
        yield emu


def _env(emu: Emulator, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
    env.update(
        GIGACHAT_CREDENTIALS=DEMO_CREDENTIALS,
        GIGACHAT_SCOPE="GIGACHAT_API_CORP",
        GIGACHAT_BASE_URL=emu.base_url,
        GIGACHAT_AUTH_URL=emu.auth_url,
        GIGAPY_CONFIG_DIR=str(tmp_path / "config"),
        PYTHONUNBUFFERED="1",
    )
    return env


def _input(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(
                json.dumps({"id": f"r{i}", "request": {"messages": [{"role": "user", "content": f"q {i}"}]}}) + "\n"
            )
    return path


def _ids(paths: list[Path]) -> Counter[str]:
    seen: Counter[str] = Counter()
    for path in paths:
        if not path.exists():
            continue
        for raw in path.read_bytes().splitlines(keepends=True):
            if raw.endswith(b"\n"):
                try:
                    seen[json.loads(raw)["id"]] += 1
                except ValueError:
                    pass  # a line torn by SIGKILL: not an answer (a rerun of that worker cuts it)
    return seen


class Sampler:
    """Samples the emulator's own count of held slots (bounded: stops with the run or after 120 s)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.samples.append((time.monotonic(), int(self.emu.stats()["slots_held"])))
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def utilization(self) -> float:
        """Mean slots held / LIMIT from the first full moment to the last one (the head, before
        the fleet has started, and the tail, with fewer ids left than slots, are outside)."""
        full = [i for i, (_, held) in enumerate(self.samples) if held >= LIMIT]
        assert full, "the fleet never used the whole quota"
        window = self.samples[full[0] : full[-1] + 1]
        return sum(held for _, held in window) / (LIMIT * len(window))


def _workers(
    n: int, src: Path, tmp_path: Path, env: dict[str, str], url: str, first: int = 0
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for w in range(first, first + n):
        cmd = [
            GIGAPY,
            "batch",
            str(src),
            "-o",
            str(tmp_path / f"out{w}.jsonl"),
            "-c",
            "10",
            "--no-progress",
            "--coordinator",
            url,
            "--json",
        ]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return procs


def _outputs(tmp_path: Path, n: int) -> list[Path]:
    return [p for w in range(n) for p in (tmp_path / f"out{w}.jsonl", tmp_path / f"out{w}.errors.jsonl")]


def _finish(procs: list[subprocess.Popen[bytes]], timeout: float = 90) -> list[dict[str, Any]]:
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err.decode()[-2000:]
        summaries.append(json.loads(out))
    return summaries


_WORKER = """
import asyncio, json, sys, time
sys.path.insert(0, {src!r})
import redis
from gigapy import AsyncGigaChat
from gigapy.batch import run_batch
from gigapy.coordinator import shared

async def main():
    async with AsyncGigaChat(coordinator={url!r}) as client:
        store = redis.Redis.from_url({plain!r})
        await client.all_models()  # warm up (token, connection, models) before the measured run
        await (await shared({url!r}).aacquire("warm-up", 16)).arelease()
        print("ready", flush=True)
        deadline = time.monotonic() + 120
        while not store.exists("test:go") and time.monotonic() < deadline:  # start together
            await asyncio.sleep(0.02)
        summary = await run_batch(client, {input!r}, {output!r}, concurrency=10, coordinator={url!r})
        print(json.dumps(summary.to_dict()), flush=True)

asyncio.run(main())
"""


@pytest.mark.serial  # the quota's use is measured: it runs alone, after the parallel part of the suite
def test_sixteen_workers_share_ten_slots(fleet_emu: Emulator, redis_url: str, tmp_path: Path) -> None:
    n_ids, n_workers = 192, 16
    src = _input(tmp_path / "in.jsonl", n_ids)
    env = _env(fleet_emu, tmp_path)
    url = redis_url + "?lease_ttl=5"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER.format(
                    src=SRC, url=url, plain=redis_url, input=str(src), output=str(tmp_path / f"out{w}.jsonl")
                ),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(n_workers)
    ]
    for proc in procs:  # the start-up of 16 interpreters is not what is measured
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
    fleet_emu.reset_stats()
    store = redis.Redis.from_url(redis_url)
    started = time.monotonic()
    with Sampler(fleet_emu) as sampler:
        store.set("test:go", 1)
        summaries = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()[-2000:]
            summaries.append(json.loads(out))
    elapsed = time.monotonic() - started
    store.close()
    stats = fleet_emu.stats()
    assert stats["slots_peak"] <= LIMIT  # never more than 10 in flight, by the emulator's own count
    assert stats["responses"].get("429", 0) == 0
    assert max(held for _, held in sampler.samples) == LIMIT
    utilization = sampler.utilization()
    cpu = sum(s["cpu_seconds"] for s in summaries)
    print(
        f"fleet of {n_workers}: utilization {utilization:.3f}, {elapsed:.1f} s, "
        f"oauth {stats['oauth_requests']}, worker cpu {cpu:.1f} s"
    )
    # the spec's goal: the fleet keeps at least 95% of the quota busy while it has work for all of it
    # (0.99 measured alone on 2 cores; deferred ids are sorted with one batched look at Redis, not
    # re-claimed one by one, which had cost 16 workers 80 ms of CPU per answer)
    assert utilization >= 0.95
    # one OAuth fetch per refresh of the fleet's token (4 s tokens are refreshed after half their
    # lifetime), not one per process
    assert stats["oauth_requests"] <= elapsed / 2.0 + 2
    seen = _ids(_outputs(tmp_path, n_workers))
    assert set(seen) == {f"r{i}" for i in range(n_ids)}
    assert set(seen.values()) == {1}  # every id exactly once in the union of the workers' files
    assert sum(s["done"] for s in summaries) == n_ids
    assert sum(1 for s in summaries if s["done"]) >= n_workers // 2  # the work really was spread out


def _leases_of(url: str, pid: int) -> int:
    client = redis.Redis.from_url(url)
    now_ms = int(client.time()[0] * 1000)
    count = 0
    for key in client.scan_iter("gigapy:lease:*"):
        count += sum(1 for m in client.zrangebyscore(key, now_ms, "+inf") if m.decode().startswith(f"{pid}-"))
    client.close()
    return count


def test_sigkilled_worker_frees_its_leases_and_loses_nothing(
    fleet_emu: Emulator, redis_url: str, tmp_path: Path
) -> None:
    n_ids, n_workers, ttl = 160, 4, 1.5
    src = _input(tmp_path / "in.jsonl", n_ids)
    env = _env(fleet_emu, tmp_path)
    fleet_emu.reset_stats()
    procs = _workers(n_workers, src, tmp_path, env, f"{redis_url}?lease_ttl={ttl}")
    victim = procs[0]
    deadline, leased = time.monotonic() + 60, 0
    while not leased and time.monotonic() < deadline:  # seen once, kill at once (not a second look)
        leased = _leases_of(redis_url, victim.pid)
        time.sleep(0 if leased else 0.01)
    assert leased > 0, "the worker never held a lease"
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=10)
    killed = time.monotonic()
    while _leases_of(redis_url, victim.pid) and time.monotonic() - killed < 30:
        time.sleep(0.05)
    freed_after = time.monotonic() - killed
    assert _leases_of(redis_url, victim.pid) == 0
    assert freed_after <= ttl * 3  # one TTL after its last heartbeat (plus slack), well within 30 s
    # by the emulator's own count: the survivors fill the whole quota again (the dead worker's
    # slots are not held for ever)
    refilled = False
    while not refilled and time.monotonic() - killed < 30:
        refilled = int(fleet_emu.stats()["slots_held"]) >= LIMIT
        time.sleep(0.01)
    assert refilled
    _finish(procs[1:])
    assert fleet_emu.stats()["slots_peak"] <= LIMIT
    seen = _ids(_outputs(tmp_path, n_workers))
    assert set(seen) == {f"r{i}" for i in range(n_ids)}
    assert set(seen.values()) == {1}


_TOKEN_USER = """
import sys
sys.path.insert(0, {src!r})
from gigapy import GigaChat
with GigaChat(coordinator={url!r}) as client:
    for i in range(3):
        assert client.completion(f"q{{i}}").choices[0].message.content
print("ok", flush=True)
"""


def test_one_oauth_fetch_per_token_lifetime_for_the_fleet(redis_url: str, tmp_path: Path) -> None:
    n_procs = 3
    with Emulator(token_ttl=60.0) as emu:  # every process runs well within one token lifetime
        env = _env(emu, tmp_path)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _TOKEN_USER.format(src=SRC, url=redis_url)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(n_procs)
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0 and out.strip() == b"ok", err.decode()[-2000:]
        stats = emu.stats()
    assert stats["responses"].get("200", 0) >= n_procs * 3
    assert stats["oauth_requests"] == 1  # by the emulator's count: one for the fleet, not one per process


def _any_lease(url: str, pids: list[int]) -> bool:
    return any(_leases_of(url, pid) for pid in pids)


@pytest.mark.serial  # the 429s seen while workers come back one by one depend on timing: run alone
@pytest.mark.parametrize("loss", ["restarted", "flushed", "snapshot"])
def test_redis_losing_its_state_mid_run_loses_and_duplicates_nothing(
    loss: str, fleet_emu: Emulator, tmp_path: Path
) -> None:
    """Redis restarted empty (the workers see it go), flushed (no worker ever sees an error) or
    restarted from an older snapshot (its done marks roll back): every id is written exactly
    once, also by a worker that joins after the loss and reads the input from its first line."""
    n_ids, n_workers = 90, 3
    src = _input(tmp_path / "in.jsonl", n_ids)
    env = _env(fleet_emu, tmp_path)
    outs = _outputs(tmp_path, n_workers + 1)
    with RedisServer() as server:
        url = f"{server.url}?lease_ttl=1.5"
        procs = _workers(n_workers, src, tmp_path, env, url)
        store = redis.Redis.from_url(server.url)
        deadline = time.monotonic() + 60
        while sum(_ids(outs).values()) < n_ids // 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        if loss == "snapshot":
            store.save()  # what the server will come back with: the first eighth done, no more
        while sum(_ids(outs).values()) < n_ids // 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        written_before = sum(_ids(outs).values())
        assert n_ids // 4 <= written_before < n_ids
        fleet_emu.reset_stats()
        with Sampler(fleet_emu) as sampler:
            if loss == "flushed":
                store.flushall()
            else:
                server.stop()  # the store and everything in it is gone (but the snapshot on disk)
                down = time.monotonic()
                while time.monotonic() - down < 1.0:
                    time.sleep(0.02)
                outage = (down, time.monotonic())
                server.start()
            late = _workers(1, src, tmp_path, env, url, first=n_workers)
            if loss == "restarted":  # back on the shared store: the workers' leases are in it again
                back, leased = time.monotonic() + 30, False
                while not leased and time.monotonic() < back:  # seen once is enough: a lease lasts one answer
                    leased = _any_lease(server.url, [p.pid for p in procs + late])
                    time.sleep(0 if leased else 0.02)
                assert leased
            summaries = _finish(procs + late)
        store.close()
    seen = _ids(outs)
    assert set(seen) == {f"r{i}" for i in range(n_ids)}
    assert [k for k, v in seen.items() if v > 1] == []  # every id exactly once in the union of the files
    assert all(s["failed"] == 0 for s in summaries)
    assert sum(s["done"] for s in summaries) == n_ids  # nothing answered twice, even if written once
    stats = fleet_emu.stats()
    # local limits kept the account's quota meanwhile: no 429 reached a caller (nothing failed). While
    # the workers come back one by one, a worker that joined meanwhile cannot see the leases the others
    # still hold locally: at most one limit's worth of requests is over it at that moment (the bound
    # docs/guide/fleet.md gives), and the first 429 halves the shared limit
    limit = default_limits()["GIGACHAT_API_CORP"]
    assert stats["responses"].get("429", 0) <= limit
    if loss == "restarted":  # work went on while Redis was down, under local limits
        during = [held for at, held in sampler.samples if outage[0] <= at <= outage[1]]
        assert during and max(during) > 0
