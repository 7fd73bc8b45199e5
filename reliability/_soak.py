"""The chaos soak: one emulator subprocess with faults, one AsyncGigaChat and one GigaChat shared by
several threads, ``gigapy batch`` with a SIGKILL, one emulator restart; measured, then judged
property by property."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gigapy import AsyncGigaChat, GigaChat, Timeout, clear_token_cache
from gigapy.emulator import DEMO_CREDENTIALS

from . import _workload as W
from ._batch import BatchDriver, BatchReport, child_env
from ._emulator import FAULTS, EmulatorProcess
from ._probe import Snapshot, snapshot

#: The client's timeouts in the soak: a stuck request becomes a typed APITimeoutError long before
#: the per-request hang bound (``op_timeout``) calls it a failure.
CLIENT_TIMEOUT = Timeout(connect=5.0, read=20.0, write=20.0, pool=20.0)
#: The client's default retry budget (``max_retries``), which the soak keeps.
MAX_RETRIES = 2


@dataclass
class SoakConfig:
    """Scale and bounds of a soak run (defaults: the full run of the brief)."""

    requests: int = 10_000
    concurrency: int = 32
    #: Requests through one sync GigaChat shared by ``sync_threads`` threads, alongside the async load.
    sync_requests: int = 3_000
    sync_threads: int = 8
    batch_lines: int = 3_000
    batch_concurrency: int = 16
    batch_kill_fraction: float = 0.3
    restart_fraction: float = 0.5
    minutes: float = 5.0
    seed: int = 0
    faults: str = FAULTS
    token_ttl: float = 20.0
    op_timeout: float = 60.0
    #: RSS after closing may exceed the baseline by at most this (allocator arenas, caches).
    rss_margin_mib: float = 16.0
    #: Python heap blocks after closing may exceed the baseline, beyond what the soak's own per-request
    #: records hold, by at most this (first-use caches); one leaked object per request would exceed it.
    heap_margin_blocks: int = 5_000
    workdir: Path | None = None
    keep_workdir: bool = False
    progress: Callable[[str], None] | None = None

    @classmethod
    def quick(cls, **overrides: Any) -> SoakConfig:
        """The ~30 s smoke run."""
        values: dict[str, Any] = {"requests": 3_000, "sync_requests": 1_000, "batch_lines": 1_000, "minutes": 1.5}
        values.update(overrides)
        return cls(**values)

    @property
    def budget(self) -> float:
        return self.minutes * 60.0


@dataclass
class Verdict:
    """One property: a short key, its statement, whether it held, and the figures that say so."""

    key: str
    name: str
    passed: bool
    evidence: str


@dataclass
class SoakResult:
    """Everything measured; ``verdicts`` judges each property."""

    config: SoakConfig
    emulator_command: list[str] = field(default_factory=list)
    planned_requests: int = 0
    records: list[W.Record] = field(default_factory=list)
    not_sent: int = 0  # downloads skipped because their upload failed, ops cut by the time bound
    cut_by_deadline: int = 0
    reference_requests: int = 0
    batch: BatchReport | None = None
    restart: dict[str, float] = field(default_factory=dict)
    restart_at_request: int = 0
    restart_began: float | None = None
    after_restart: dict[str, int] = field(default_factory=dict)
    emulator_stats: dict[str, Any] = field(default_factory=dict)
    token_fetches: list[float] = field(default_factory=list)
    orphan_retries: int = 0
    token_retries: int = 0
    baseline: Snapshot = field(default_factory=Snapshot)
    peak_sockets: int = 0
    peak_rss: int = 0
    after: Snapshot = field(default_factory=Snapshot)
    settle_seconds: float = 0.0
    bookkeeping_blocks: int = 0  # heap blocks held by the soak's own per-request records
    load_seconds: float = 0.0
    duration: float = 0.0
    workdir: str = ""
    error: str | None = None

    # --- figures -------------------------------------------------------------------------
    def count(self, outcome: str, kind: str | None = None) -> int:
        return sum(1 for r in self.records if r.outcome == outcome and (kind is None or r.kind == kind))

    @property
    def streams(self) -> list[W.Record]:
        return [r for r in self.records if r.kind == "stream"]

    @property
    def unexplained_blocks(self) -> int:
        """Heap growth from baseline to after-close that the soak's own records do not account for."""
        return self.after.blocks - self.baseline.blocks - self.bookkeeping_blocks

    @property
    def retry_mismatches(self) -> int:
        """Successes whose logged retries differ from the result's ``retries_taken``."""
        return sum(1 for r in self.records if r.outcome == "ok" and r.retries_taken is not None
                   and r.retries_taken != r.retries)

    def by_client(self, client: str) -> list[W.Record]:
        return [r for r in self.records if r.client == client]

    def verdicts(self) -> list[Verdict]:
        cfg = self.config
        out: list[Verdict] = []
        sent = len(self.records)
        failures = self.count("failure")
        most = max((r.retries for r in self.records), default=0)
        sync = self.by_client("sync")
        split = ", ".join(
            f"{name} {len(rs):,} ({sum(r.outcome == 'ok' for r in rs):,} ok, "
            f"{sum(r.outcome == 'failure' for r in rs)} failures)"
            for name, rs in ((f"async (1 loop, {cfg.concurrency} in flight)", self.by_client("async")),
                             (f"sync ({cfg.sync_threads} threads, one client)", sync)))
        out.append(Verdict(
            "typed", "Every request ends as a success or a typed error after its retry budget",
            self.error is None and failures == 0 and sent + self.not_sent == self.planned_requests
            and self.cut_by_deadline == 0 and sent > 0 and most <= MAX_RETRIES and self.retry_mismatches == 0
            and (len(sync) > 0 or cfg.sync_requests == 0),
            f"{sent:,} requests sent of {self.planned_requests:,} planned: {self.count('ok'):,} succeeded, "
            f"{self.count('typed'):,} typed errors, {failures} failures (untyped, wrong content or hung); by client: "
            f"{split}; at most {most} retries per request (budget {MAX_RETRIES}); {self.retry_mismatches} successes "
            f"with a wrong `retries_taken`; {self.not_sent} downloads not sent (upload failed), {self.cut_by_deadline} "
            "cut by the time bound"))
        b = self.batch
        if b is None:
            out.append(Verdict("exactly_once", "gigapy batch delivers every input id exactly once", False,
                               "the batch did not run"))
        else:
            out.append(Verdict(
                "exactly_once", "gigapy batch delivers every input id exactly once (SIGKILL mid-run, rerun)",
                b.exactly_once and b.killed_mid_run and b.output.wrong == 0,
                f"{b.lines:,} ids: {len(b.output.ids):,} in OUTPUT + {len(b.errors.ids):,} in the errors file; "
                f"missing {b.missing}, duplicates {b.duplicates}, in both {b.in_both}, unknown {b.unknown}, "
                f"torn lines {b.output.torn + b.errors.torn}, answers not matching their request {b.output.wrong}; "
                f"killed at {max((r.lines_at_kill for r in b.runs), default=0):,} lines, "
                f"{len(b.runs) - 1} rerun(s)"))
        streams = self.streams
        dup = sum(1 for r in streams if r.duplicated)
        roles = max((r.role_chunks for r in streams), default=0)
        out.append(Verdict(
            "streams", "No stream chunk is ever delivered twice",
            dup == 0 and roles <= 1 and len(streams) > 0,
            f"{len(streams):,} streams ({sum(r.chunks for r in streams):,} chunks): {dup} with a repeated chunk, "
            f"at most {roles} role chunk per stream; {sum(1 for r in streams if r.complete):,} complete and equal "
            f"to the reference, {sum(1 for r in streams if r.error == 'StreamError'):,} cut (StreamError)"))
        ar = self.after_restart
        out.append(Verdict(
            "restart", "The client survives an emulator restart (tokens forgotten, refreshed transparently)",
            bool(self.restart) and ar.get("ok", 0) > 0 and ar.get("tokens", 0) > 0
            and ar.get("auth_errors", 0) == 0,
            f"restart at request {self.restart_at_request:,}, down {self.restart.get('downtime', 0):.2f} s; "
            f"requests in flight at the kill or later: {ar.get('requests', 0):,}, {ar.get('ok', 0):,} succeeded; "
            f"{ar.get('refreshes', 0)} met a 401 for the forgotten token and went on after a refresh; the client "
            f"fetched {ar.get('tokens', 0)} new token(s); {ar.get('auth_errors', 0)} AuthenticationError"))
        base, after = self.baseline, self.after
        extra = sorted(after.sockets - base.sockets)
        gone = len(base.sockets - after.sockets)
        if extra:
            how = f" (still open: {', '.join(extra[:5])})"
        elif gone:  # closed by someone else in this process (only when embedded, e.g. in a test run)
            how = f" (no socket of the run left; {gone} baseline socket(s) closed by other code meanwhile)"
        else:
            how = " (exactly the sockets of the baseline)"
        out.append(Verdict(
            "sockets", "Open sockets return to the baseline after closing",
            not extra and self.peak_sockets > base.socket_count,
            f"baseline {base.socket_count}, peak {self.peak_sockets}, after close {after.socket_count}{how}"))
        grow = (after.rss - base.rss) / 1048576
        leak = self.unexplained_blocks
        out.append(Verdict(
            "memory", f"Memory returns to the baseline (RSS within +{cfg.rss_margin_mib:g} MiB, Python heap within "
                      f"+{cfg.heap_margin_blocks:,} blocks beyond the soak's own records)",
            grow <= cfg.rss_margin_mib and leak <= cfg.heap_margin_blocks,
            f"RSS baseline {base.rss / 1048576:.1f} MiB, peak {self.peak_rss / 1048576:.1f} MiB, after close "
            f"{after.rss / 1048576:.1f} MiB ({grow:+.1f} MiB); Python heap blocks {base.blocks:,} -> "
            f"{after.blocks:,} ({after.blocks - base.blocks:+,}, of which {self.bookkeeping_blocks:,} are the soak's "
            f"own request records: {leak:+,} otherwise)"))
        out.append(Verdict(
            "time", f"Bounded to {cfg.minutes:g} minutes",
            self.duration <= cfg.budget,
            f"{self.duration:.1f} s wall time"))
        return out

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts())


class _Sampler:
    """Peak sockets and RSS of this process, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak_sockets = 0
        self.peak_rss = 0
        self.last = Snapshot()
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        snap = snapshot()
        self.last = snap
        self.peak_sockets = max(self.peak_sockets, snap.socket_count)
        self.peak_rss = max(self.peak_rss, snap.rss)

    async def _loop(self, until: float) -> None:
        while time.monotonic() < until:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self, until: float) -> None:
        self._task = asyncio.ensure_future(self._loop(until))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()


def run_soak(config: SoakConfig) -> SoakResult:
    """Run the whole soak (blocking) and return what it measured."""
    t0 = time.monotonic()
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="gigapy-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    emu = EmulatorProcess(faults=config.faults, token_ttl=config.token_ttl, seed=config.seed,
                          log_path=workdir / "emulator.log")
    result = SoakResult(config, emulator_command=emu.command(), workdir=str(workdir))
    clear_token_cache()
    try:
        emu.start()
        asyncio.run(_soak(config, emu, workdir, result, t0))
    except Exception as exc:  # reported as a failed run, with the reason
        result.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        result.emulator_stats = emu.all_stats()
        emu.stop()
        clear_token_cache()
        result.duration = time.monotonic() - t0
        if config.workdir is None and not config.keep_workdir and result.error is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def _say(config: SoakConfig, text: str) -> None:
    if config.progress is not None:
        config.progress(text)


async def _soak(cfg: SoakConfig, emu: EmulatorProcess, workdir: Path, result: SoakResult, t0: float) -> None:
    deadline = t0 + cfg.budget - 5.0  # leave time for closing, measuring and the report
    op_bound = min(cfg.op_timeout, cfg.budget / 4)
    last_start = deadline - op_bound  # no new request after this: every started one can still end in time
    settings: dict[str, Any] = {"credentials": DEMO_CREDENTIALS, "scope": "GIGACHAT_API_PERS",
                                "base_url": emu.base_url, "auth_url": emu.auth_url, "timeout": CLIENT_TIMEOUT}

    prompts, texts = W.prompt_pool(cfg.seed), W.text_pool(cfg.seed)
    _say(cfg, f"emulator on port {emu.port}; fetching reference answers")
    async with AsyncGigaChat(**settings) as ref_client:  # also warms every code path up before the baseline
        reference = await W.fetch_reference(ref_client, prompts, texts)
    result.reference_requests = reference.requests
    ops = W.plan(cfg.requests, cfg.seed, len(prompts), len(texts))
    sync_ops = W.plan(cfg.sync_requests, cfg.seed + 1, len(prompts), len(texts)) if cfg.sync_requests else []
    result.planned_requests = cfg.requests + cfg.sync_requests

    batch = BatchDriver(workdir, child_env(emu.base_url, emu.auth_url, workdir / "config"), lines=cfg.batch_lines,
                        concurrency=cfg.batch_concurrency, prompts=prompts, answers=reference.answers,
                        kill_fraction=cfg.batch_kill_fraction)
    batch.write_input()

    await asyncio.sleep(0.05)
    gc.collect()
    result.baseline = snapshot()
    sampler = _Sampler()
    sampler.sample()
    sampler.start(deadline + 30)

    log = W.ClientLog()
    client = AsyncGigaChat(**settings, max_connections=cfg.concurrency * 2)
    # the sync client cannot be cancelled: its total deadline ends a request that would hang
    sync_settings = {**settings, "timeout": dataclasses.replace(CLIENT_TIMEOUT, total=op_bound)}
    sync_client = GigaChat(**sync_settings, max_connections=max(2, cfg.sync_threads * 2))
    records = result.records
    restart_at = max(1, int((cfg.requests + cfg.sync_requests) * cfg.restart_fraction))
    restart_task: asyncio.Task[None] | None = None
    queue = list(reversed(ops))
    sync_queue = list(reversed(sync_ops))
    sync_lock = threading.Lock()
    load_start = time.monotonic()

    async def restart() -> None:
        _say(cfg, f"restarting the emulator (SIGKILL) after {len(records):,} requests")
        result.restart_began = time.monotonic()
        result.restart_at_request = len(records)
        result.restart = await asyncio.to_thread(emu.restart)
        _say(cfg, f"emulator back after {result.restart['downtime']:.2f} s")

    async def one(op: W.Op) -> None:
        nonlocal restart_task
        if op.kind == "completion":
            rec = W.Record("completion")
            records.append(rec)
            p = op.prompt
            await W.measured(rec, lambda r: W.do_completion(client, prompts[p], reference.answers[p], r), op_bound)
        elif op.kind == "stream":
            rec = W.Record("stream")
            records.append(rec)
            p = op.prompt
            await W.measured(rec, lambda r: W.do_stream(client, prompts[p], reference.answers[p], r), op_bound)
        elif op.kind == "embedding":
            rec = W.Record("embedding")
            records.append(rec)
            items = [texts[i] for i in op.inputs]
            vectors = [reference.vectors[i] for i in op.inputs]
            await W.measured(rec, lambda r: W.do_embedding(client, items, vectors, r), op_bound)
        else:
            body = W.file_body(op.index, cfg.seed)
            up = W.Uploaded()
            rec = W.Record("upload")
            records.append(rec)
            await W.measured(rec, lambda r: W.do_upload(client, body, f"chaos-{op.index}.txt", up, r), op_bound)
            if up.file_id is None:
                result.not_sent += 1
            else:
                fid = up.file_id
                down = W.Record("download", upload_started=rec.started)
                records.append(down)
                await W.measured(down, lambda r: W.do_download(client, fid, body, r), op_bound)
                if down.error == "NotFoundError" and not _may_be_forgotten(result, rec.started):
                    down.outcome = "failure"  # only the restart may forget a file we uploaded
                    down.error = f"lost file: 404 for a file uploaded after the restart ({down.detail[:100]})"
        if restart_task is None and (len(records) >= restart_at or not queue):
            restart_task = asyncio.ensure_future(restart())

    async def worker() -> None:
        while queue:
            if time.monotonic() >= last_start:
                result.cut_by_deadline += 2 if queue[-1].kind == "file" else 1
                queue.pop()
                continue
            await one(queue.pop())

    def sync_one(op: W.Op) -> None:
        """The sync twin of ``one`` (run in a worker thread)."""
        if op.kind in ("completion", "stream"):
            rec = W.Record(op.kind, client="sync")
            records.append(rec)
            p = op.prompt
            do = W.sync_completion if op.kind == "completion" else W.sync_stream
            W.measured_sync(rec, lambda r: do(sync_client, prompts[p], reference.answers[p], r), op_bound)
        elif op.kind == "embedding":
            rec = W.Record("embedding", client="sync")
            records.append(rec)
            items = [texts[i] for i in op.inputs]
            vectors = [reference.vectors[i] for i in op.inputs]
            W.measured_sync(rec, lambda r: W.sync_embedding(sync_client, items, vectors, r), op_bound)
        else:
            body = W.file_body(10_000_000 + op.index, cfg.seed)
            up = W.Uploaded()
            rec = W.Record("upload", client="sync")
            records.append(rec)
            W.measured_sync(rec, lambda r: W.sync_upload(sync_client, body, f"chaos-sync-{op.index}.txt", up, r),
                            op_bound)
            if up.file_id is None:
                with sync_lock:
                    result.not_sent += 1
            else:
                fid = up.file_id
                down = W.Record("download", client="sync", upload_started=rec.started)
                records.append(down)
                W.measured_sync(down, lambda r: W.sync_download(sync_client, fid, body, r), op_bound)
                if down.error == "NotFoundError" and not _may_be_forgotten(result, rec.started):
                    down.outcome = "failure"
                    down.error = f"lost file: 404 for a file uploaded after the restart ({down.detail[:100]})"

    def sync_worker() -> None:
        while True:
            with sync_lock:
                if not sync_queue:
                    return
                op = sync_queue.pop()
                if time.monotonic() >= last_start:
                    result.cut_by_deadline += 2 if op.kind == "file" else 1
                    continue
            sync_one(op)

    def sync_load() -> None:
        """``sync_threads`` threads share the one sync client until the sync plan is done."""
        threads = [threading.Thread(target=sync_worker, name=f"soak-sync-{i}", daemon=True)
                   for i in range(cfg.sync_threads if sync_ops else 0)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, deadline + op_bound - time.monotonic()))

    async def reporter() -> None:
        while True:
            await asyncio.sleep(5.0)
            ok = sum(1 for r in records if r.outcome == "ok")
            planned = cfg.requests + cfg.sync_requests
            _say(cfg, f"{time.monotonic() - t0:5.0f} s: {len(records):,}/{planned:,} requests ({ok:,} ok), "
                      f"batch {batch.progress_lines:,}/{cfg.batch_lines:,} lines, sockets {sampler.last.socket_count}, "
                      f"RSS {sampler.last.rss / 1048576:.0f} MiB")

    report_task = asyncio.ensure_future(reporter())
    batch_task = asyncio.ensure_future(batch.run(deadline))
    try:
        with log:
            await asyncio.gather(asyncio.to_thread(sync_load), *(worker() for _ in range(cfg.concurrency)))
            result.load_seconds = time.monotonic() - load_start
            _say(cfg, f"client load done in {result.load_seconds:.1f} s; waiting for the batch")
            if restart_task is not None:
                await restart_task
            result.batch = await batch_task
    finally:
        report_task.cancel()
        batch_task.cancel()  # a no-op unless something failed: then its process is killed too
        await asyncio.gather(report_task, batch_task, return_exceptions=True)
        result.token_fetches = log.token_fetches
        result.orphan_retries = log.orphan_retries
        result.token_retries = log.token_retries
        # after closing: sockets must be exactly the baseline's (allow the loop a moment to close them)
        await client.aclose()
        sync_client.close()
        await sampler.stop()
        result.peak_sockets, result.peak_rss = sampler.peak_sockets, sampler.peak_rss
        closed_at = time.monotonic()
        for _ in range(50):
            await asyncio.sleep(0.02)
            gc.collect()
            result.after = snapshot()
            if result.after.sockets <= result.baseline.sockets:
                break
        result.settle_seconds = time.monotonic() - closed_at

    if result.restart:
        killed_at = result.restart["killed_at"]
        later = [r for r in records if r.started + r.elapsed >= killed_at]  # in flight at the kill, or after it
        result.after_restart = {
            "requests": len(later),
            "ok": sum(1 for r in later if r.outcome == "ok"),
            "refreshes": sum(1 for r in later if r.refreshes),
            "tokens": sum(1 for t in result.token_fetches if t >= killed_at),
            "auth_errors": sum(1 for r in later if r.error == "AuthenticationError"),
            "connection_errors": sum(1 for r in later if r.error in ("APIConnectionError", "APITimeoutError")),
            "lost_files": sum(1 for r in records if r.error == "NotFoundError" and r.kind == "download"),
        }
    ids = [*result.batch.output.ids, *result.batch.errors.ids] if result.batch else []
    result.bookkeeping_blocks = _bookkeeping_blocks(records, ids)


def _may_be_forgotten(result: SoakResult, upload_started: float) -> bool:
    """Whether an upload that started at ``upload_started`` may have reached the emulator process that
    the restart killed: it started before the new process was answering."""
    if result.restart_began is None:
        return False
    if not result.restart:
        return True  # the restart is under way
    return upload_started < result.restart["killed_at"] + result.restart["downtime"]


def _fresh(value: Any) -> Any:
    """A new object equal to ``value`` (what a record field cost when it was first assigned)."""
    if isinstance(value, float) and value != 0.0:
        return value + 0.0
    if isinstance(value, str) and len(value) > 40:
        return "".join(list(value))
    return value


def _bookkeeping_blocks(records: list[W.Record], ids: list[str]) -> int:
    """How many heap blocks the soak's own records (and the batch ids it read back) hold: build
    as many equal objects and count."""
    gc.collect()
    before = sys.getallocatedblocks()
    copies = [W.Record(**{f.name: _fresh(getattr(r, f.name)) for f in dataclasses.fields(r)}) for r in records]
    id_copies = ["".join(list(i)) for i in ids]
    held = sys.getallocatedblocks() - before
    del copies, id_copies
    gc.collect()
    return max(0, held)
