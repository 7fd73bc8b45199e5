"""RELIABILITY.md from a :class:`SoakResult`."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ._batch import BAD_EVERY
from ._probe import mib
from ._soak import CLIENT_TIMEOUT, SoakResult
from ._workload import KINDS, MIX

if TYPE_CHECKING:
    from ._hostile import HostileReport

ROOT = Path(__file__).resolve().parent.parent


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1048576:.1f} GiB RAM"
    except OSError:
        pass
    return "unknown RAM"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S603, S607
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _overlap(result: SoakResult) -> str:
    """Which batch run the emulator restart fell in."""
    if not result.restart or result.batch is None:
        return ""
    killed = result.restart["killed_at"]
    for run in result.batch.runs:
        if run.started_at <= killed <= run.started_at + run.seconds:
            return f"; the emulator restart fell in run {run.index + 1}, which went on through it"
    return "; the emulator restart fell between batch runs"


def render(result: SoakResult, *, command: str, started: float, hostile: HostileReport | None = None) -> str:
    cfg = result.config
    records = result.records
    verdicts = result.verdicts()
    passed = result.passed and (hostile is None or hostile.passed)
    when = dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out: list[str] = [
        "# Reliability: chaos soak",
        "",
        f"Written by `{command}` on {when}. One emulator subprocess injects faults; one "
        "`AsyncGigaChat`, and at the same time one `GigaChat` shared by several threads, drive mixed requests "
        "through them while `gigapy batch` runs next to it, is killed with SIGKILL and rerun, and the emulator "
        "itself is killed and restarted once. Everything runs on 127.0.0.1. Beside the soak, every test of the "
        "suite marked as a hostile input or server runs, counted per failure class "
        "([table](#hostile-inputs-and-servers)).",
        "",
        f"**Result: {'every property holds' if passed else 'SOME PROPERTIES FAIL'}.**",
        "",
    ]
    rows = [[v.name, "**pass**" if v.passed else "**FAIL**", v.evidence] for v in verdicts]
    if hostile is not None:
        failing = [c.title for c in hostile.classes if not c.ok]
        rows.append(["Every hostile input and server of the eleven failure classes ends as specified",
                     "**pass**" if hostile.passed else "**FAIL**",
                     f"{hostile.tests:,} tests, {hostile.cases:,} cases in {len(hostile.classes)} classes; "
                     + (f"failing: {', '.join(failing)}" if failing else "all pass")
                     + f" (pytest exit {hostile.exit_code}, {hostile.seconds:.0f} s)"])
    out += _table(["Property", "Verdict", "Evidence"], rows)
    if result.error:
        out += ["", f"The run stopped early: `{result.error}`."]

    # --- setup ---------------------------------------------------------------------------
    cores = os.cpu_count() or 0
    out += [
        "", "## Setup", "",
        f"- Command: `.venv/bin/{command}` (options: `--quick` ~30 s smoke run, `--minutes`, `--seed`, "
        "`--requests`, `--batch-lines`, `--output`, `--no-hostile`, `--hostile-only`); the same soak at small "
        "scale runs in CI as `tests/test_chaos.py`.",
        f"- Machine: {platform.system()} {platform.release()}, {_cpu()}, {cores} cores, {_memory()}.",
        f"- Versions: Python {platform.python_version()}, gigapy {_version('gigapy')} (commit {_commit()}), "
        f"aiohttp {_version('aiohttp')}, httpx {_version('httpx')}, pydantic {_version('pydantic')}.",
        f"- Emulator: `{shlex.join(['python', *result.emulator_command[1:]])}`.",
        f"- Seed {cfg.seed}: the workload plan, the emulator's answers and its fault draws are all seeded.",
        "",
        "Fault mix (every API route, per request; streams draw `stream_drop` separately; OAuth is not faulted):",
        "",
    ]
    spec = dict(item.split(":") for item in cfg.faults.split(","))
    names = {"500": "HTTP 500", "502": "HTTP 502", "503": "HTTP 503", "504": "HTTP 504",
             "429": "HTTP 429 with `Retry-After: " + spec.get("retry_after", "1") + "`",
             "drop": "connection closed before any response", "stream_drop": "stream cut after about half its events"}
    out += _table(["Fault", "Rate"], [[names.get(k, k), f"{float(v):.0%}"] for k, v in spec.items()
                                     if k != "retry_after"])
    out += [
        "", f"Plus a {cfg.token_ttl:g}-second token lifetime and one emulator restart (SIGKILL, then a new process "
        "on the same port: every issued token, file and counter is forgotten).",
        "",
        f"Workload: {result.planned_requests:,} requests: {cfg.requests:,} through one `AsyncGigaChat` with "
        f"{cfg.concurrency} in flight, and at the same time {cfg.sync_requests:,} through one `GigaChat` shared by "
        f"{cfg.sync_threads} threads (its timeout adds `total` = the hang bound, since a sync call cannot be "
        f"cancelled); operations drawn as {', '.join(f'{k} {w:.0%}' for k, w in MIX)} (a file operation is an upload "
        "followed by a download of the same bytes, two requests). Client settings: default retry policy "
        f"(2 retries), timeouts connect {CLIENT_TIMEOUT.connect:g} s / read {CLIENT_TIMEOUT.read:g} s / write "
        f"{CLIENT_TIMEOUT.write:g} s / pool {CLIENT_TIMEOUT.pool:g} s. A request that has not ended "
        f"{min(cfg.op_timeout, cfg.budget / 4):g} s after it started counts as hung (a failure). Reference answers "
        f"were fetched first on the same emulator ({result.reference_requests} requests, "
        "not counted): a completion must equal the reference text of its prompt, a stream's delivered text must "
        "be a prefix of it (and equal it when the stream finishes), vectors must equal the reference vectors, a "
        "download must return the uploaded bytes. Anything else is a failure.",
    ]

    # --- outcomes -------------------------------------------------------------------------
    out += ["", "## Outcomes", ""]
    rows = []
    for kind in KINDS:
        rs = [r for r in records if r.kind == kind]
        times = [r.elapsed for r in rs]
        rows.append([kind, f"{len(rs):,}", f"{sum(r.outcome == 'ok' for r in rs):,}",
                     f"{sum(r.outcome == 'typed' for r in rs):,}", f"{sum(r.outcome == 'failure' for r in rs):,}",
                     f"{_pct(times, 0.5) * 1000:.0f} / {_pct(times, 0.99) * 1000:.0f} / "
                     f"{max(times, default=0) * 1000:.0f}"])
    rows.append(["**all**", f"**{len(records):,}**", f"**{result.count('ok'):,}**",
                 f"**{result.count('typed'):,}**", f"**{result.count('failure'):,}**", ""])
    out += _table(["Request", "Sent", "Success", "Typed error", "Failure", "Latency ms p50 / p99 / max"], rows)
    out += ["", "By client:", ""]
    out += _table(["Client", "Sent", "Success", "Typed error", "Failure"], [
        [name, f"{len(rs):,}", f"{sum(r.outcome == 'ok' for r in rs):,}", f"{sum(r.outcome == 'typed' for r in rs):,}",
         f"{sum(r.outcome == 'failure' for r in rs):,}"]
        for name, rs in ((f"`AsyncGigaChat` (one event loop, {cfg.concurrency} in flight)", result.by_client("async")),
                         (f"`GigaChat` ({cfg.sync_threads} threads, one client)", result.by_client("sync")))])
    if result.not_sent or result.cut_by_deadline:
        out += ["", f"Not sent: {result.not_sent} downloads (their upload ended in a typed error), "
                    f"{result.cut_by_deadline} requests cut by the time bound."]
    by_type = Counter((r.kind, r.error) for r in records if r.outcome == "typed")
    out += ["", "Typed errors by type (each after the client's retry budget, or not retryable):", ""]
    if by_type:
        out += _table(["Request", "Error", "Count"], [[k, f"`{e}`", f"{n:,}"] for (k, e), n in sorted(by_type.items())])
    else:
        out += ["None."]
    failures = [r for r in records if r.outcome == "failure"]
    out += ["", f"Failures (untyped exceptions, wrong content, hangs): **{len(failures)}**."]
    for r in failures[:20]:
        out.append(f"- {r.kind}: {r.error}")

    # --- retries --------------------------------------------------------------------------
    out += ["", "## Retries", "",
            "Retries per request, counted from the client's own retry log lines (attributed to each request by a "
            "context variable), by how the request ended:", ""]
    dist: Counter[tuple[str, int]] = Counter((r.outcome, r.retries) for r in records)
    top = max((n for _, n in dist), default=0)
    out += _table(["Retries", "Success", "Typed error", "Failure"],
                  [[str(n), f"{dist[('ok', n)]:,}", f"{dist[('typed', n)]:,}", f"{dist[('failure', n)]:,}"]
                   for n in range(top + 1)])
    total = sum(r.retries for r in records)
    refreshed = sum(1 for r in records if r.refreshes)
    st = result.emulator_stats
    out += [
        "",
        f"- {total:,} retries in all ({total / max(1, len(records)):.3f} per request); "
        f"{result.retry_mismatches} successes whose logged retries differ from their `retries_taken`"
        + "".join(f"; {r.kind}: logged {r.retries}, retries_taken {r.retries_taken}" for r in records
                  if r.outcome == "ok" and r.retries_taken is not None and r.retries_taken != r.retries) + ".",
        f"- Requests that met a 401 (token unknown after the restart, or expired) and went on after one token "
        f"refresh: {refreshed:,}; the client fetched {len(result.token_fetches)} tokens in "
        f"{result.load_seconds:.0f} s of load ({cfg.token_ttl:g} s lifetime, refreshed at half-life); token "
        f"requests were retried {result.token_retries} times (not counted above).",
        f"- Emulator side (both lives, the batch subprocess included): {st.get('faults_injected', 0):,} faults "
        f"injected, {st.get('oauth_requests', 0):,} OAuth requests; responses by status: "
        + ", ".join(f"{k}: {v:,}" for k, v in (st.get("responses") or {}).items()) + ".",
    ]

    # --- streams --------------------------------------------------------------------------
    streams = result.streams
    cut = [r for r in streams if r.error == "StreamError"]
    out += [
        "", "## Streams", "",
        f"{len(streams):,} streams delivered {sum(r.chunks for r in streams):,} chunks. Each delivered chunk's text "
        "was checked on arrival against the reference answer (it must continue it exactly), and role-carrying "
        "chunks were counted per stream.",
        "",
        f"- Finished and equal to the reference: {sum(1 for r in streams if r.complete):,}.",
        f"- Cut mid-way (`StreamError`, never replayed): {len(cut):,}, after {sum(r.chunks for r in cut):,} chunks "
        "in all; each error's `chunks_received` equals the chunks actually delivered.",
        f"- Streams with a chunk delivered twice: **{sum(1 for r in streams if r.duplicated)}**; most role chunks in "
        f"one stream: {max((r.role_chunks for r in streams), default=0)}.",
        f"- Other typed errors before the first chunk (retried first): "
        f"{sum(1 for r in streams if r.outcome == 'typed' and r.error != 'StreamError'):,}.",
    ]

    # --- batch ----------------------------------------------------------------------------
    b = result.batch
    out += ["", "## gigapy batch: exactly once across SIGKILL", ""]
    if b is None:
        out += ["The batch did not run."]
    else:
        cmd = ["gigapy", *b.command[1:]] if b.command and b.command[0].endswith("gigapy") else b.command
        shown = shlex.join(cmd).replace(result.workdir.rstrip("/") + "/", "")
        out += [
            f"`{shown}` (in the run's work directory) with `GIGACHAT_*` pointing at the emulator, on {b.lines:,} "
            f"chat requests; every {BAD_EVERY}th asks for a model that does not exist ({b.expected_bad} ids that must "
            f"end in the errors file). It ran at the same time as the client load{_overlap(result)}.",
            "",
        ]
        rows = []
        for r in b.runs:
            s = r.summary or {}
            what = f"SIGKILL at {r.lines_at_kill:,} output lines" if r.killed else "rerun, same arguments"
            rows.append([str(r.index + 1), what, f"{r.seconds:.1f}", str(r.returncode),
                         f"{s.get('done', '–')}", f"{s.get('failed', '–')}", f"{s.get('remaining', '–')}",
                         f"{s.get('skipped', '–')}"])
        out += _table(["Run", "What", "Seconds", "Exit", "Done", "Failed", "Remaining", "Skipped (resumed)"], rows)
        out += ["", "Exit codes: -9 is the SIGKILL; 1 means finished with some requests in the errors file (the "
                    "bad ones); 0 finished with none."]
        tear = ("the kill tore the last line" if b.torn_by_kill else
                "the kill fell between two writes, so a torn tail was appended to OUTPUT by hand")
        out += [
            "",
            f"- Torn tail after the kill: {tear}; the rerun cut it off.",
            f"- OUTPUT: {len(b.output.ids):,} answers, errors file: {len(b.errors.ids):,} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(b.error_classes.items())) or 'none'}); "
            f"{b.bad_in_errors} of the {b.expected_bad} bad requests are there, {b.bad_with_404} with status 404 (the "
            "others met a 502, a 504 or a dropped connection on their one attempt: a line that may have reached "
            "the model is not sent twice).",
            f"- Missing ids {b.missing}, duplicate ids {b.duplicates}, ids in both files {b.in_both}, unknown ids "
            f"{b.unknown}, torn or non-JSON lines {b.output.torn + b.errors.torn}, answers that are not the "
            f"reference answer to their own request {b.output.wrong}.",
            f"- Exactly once: **{'yes' if b.exactly_once else 'NO'}**." + (f" {b.note}" if b.note else ""),
        ]

    # --- restart --------------------------------------------------------------------------
    ar = result.after_restart
    out += ["", "## Emulator restart", ""]
    if result.restart:
        out += [
            f"After {result.restart_at_request:,} client requests the emulator was SIGKILLed and started again on "
            f"the same port; it answered again {result.restart['downtime']:.2f} s later (new process boot "
            f"{result.restart['boot']:.2f} s). Requests in flight at the kill or started later: "
            f"{ar.get('requests', 0):,}, of "
            f"which {ar.get('ok', 0):,} succeeded; {ar.get('refreshes', 0)} met a 401 for the forgotten token and "
            f"went on after one refresh (the client fetched {ar.get('tokens', 0)} new token(s) after the kill); "
            f"{ar.get('auth_errors', 0)} `AuthenticationError`; {ar.get('connection_errors', 0)} ended in a typed "
            "connection error: requests whose attempts all fell in the outage, or a non-idempotent POST whose "
            "connection was reset while the server held it (never repeated, since the server may have acted on "
            f"it). {ar.get('lost_files', 0)} downloads got 404 for a file uploaded before the kill: the new process "
            "never had it (a 404 for a file uploaded after the restart would count as a failure).",
        ]
    else:
        out += ["The restart did not happen."]

    # --- resources ------------------------------------------------------------------------
    base, after = result.baseline, result.after
    out += ["", "## Sockets and memory (client process)", "",
            "Sockets are the `socket:[inode]` links in `/proc/self/fd`; baseline is taken inside the event loop after "
            "the reference phase (every code path warm) and before the soak client exists; peak is sampled every "
            "0.1 s; after is taken once the client is closed.", ""]
    out += _table(["", "Baseline", "Peak", "After close"], [
        ["Open sockets", str(base.socket_count), str(result.peak_sockets),
         f"{after.socket_count} (settled in {result.settle_seconds:.2f} s)"],
        ["RSS", mib(base.rss), mib(result.peak_rss), f"{mib(after.rss)} ({(after.rss - base.rss) / 1048576:+.1f} MiB)"],
        ["Python heap blocks", f"{base.blocks:,}", "",
         f"{after.blocks:,} ({after.blocks - base.blocks:+,}: {result.bookkeeping_blocks:,} held by the soak's own "
         f"request records, {result.unexplained_blocks:+,} otherwise)"],
    ])
    out += ["", "No socket opened during the run may remain: after closing, the socket inodes must be the "
                f"baseline's (here they were {'the same set' if after.sockets == base.sockets else 'not the same set'})"
                f". RSS may stay up to {cfg.rss_margin_mib:g} MiB above "
                "the baseline, since freed memory is kept by the allocator rather than returned to the OS. Python "
                "heap blocks (`sys.getallocatedblocks()`) count live small objects: the soak keeps one record per "
                "request (counted by building as many equal records), and what remains beyond them may be at most "
                f"{cfg.heap_margin_blocks:,} blocks (caches filled on first use); a leak of one object per request "
                "would exceed that in the full run."]

    # --- duration -------------------------------------------------------------------------
    out += ["", "## Duration", "",
            f"{result.duration:.1f} s wall time in all (bound: {cfg.minutes:g} minutes); client load "
            f"{result.load_seconds:.1f} s ({len(records) / max(result.load_seconds, 1e-9):.0f} requests/s with faults, "
            "retries and waits included)."]

    if hostile is not None:
        out += ["", "## Hostile inputs and servers", "",
                "Every test of the suite marked `@pytest.mark.hostile(\"<class>\")` (registered in pyproject.toml), "
                "run through the pytest API in a subprocess (`python -m reliability._hostile`) and counted per "
                "failure class: a case is one test item (each parametrized cell is one), and each example a "
                "hypothesis property test ran counts as a case of its own. Real parts only: the emulator and a raw "
                "HTTP server over loopback, real files, tmpfs and RLIMIT_FSIZE (the tmpfs cases run as root), "
                "subprocesses of the real `gigapy` executable.",
                ""]
        out += table_of(hostile)
        out += ["", f"Command: `{hostile.command}`; {hostile.seconds:.0f} s."]
        if hostile.unknown:
            out += ["", "Marked with a class that does not exist: " + ", ".join(f"`{u}`" for u in hostile.unknown)]

    out += ["", "## Gaps", "",
            "- One machine, loopback only: no real network latency, packet loss or TLS; the emulator stands in for "
            "the service, so the figures show how the client behaves under these faults, not how the service "
            "fails.",
            "- Fault draws follow a seeded sequence, but which request meets which draw depends on timing under "
            "concurrency, so two runs are alike, not identical; `--seed` gives other sequences.",
            "- Once sent, a non-idempotent POST (completion, embedding, upload) is never repeated by the client, "
            "whatever happened to the connection, and not after a 502 or a 504 either: the service may already "
            "have acted on it. Such requests end as typed errors here (the emulator's `drop` and gateway faults "
            "answer before acting, so repeating them would have been safe in this soak, but a client cannot know "
            "that; `retry_non_idempotent=True` would repeat them); `gigapy batch` follows the same rule "
            "(`--retry-non-idempotent`), so such lines end in its errors file.",
            "- The emulator restart is one SIGKILL; slow shutdowns, half-open connections and DNS changes are not "
            "covered.",
            "- RSS is judged with a margin, not exactly: CPython keeps freed arenas, so exact equality would be "
            "noise; the Python heap block count shows whether objects leaked.",
            ""]
    return "\n".join(out)


def table_of(hostile: HostileReport) -> list[str]:
    """The hostile-input table (see :mod:`reliability._hostile`)."""
    from ._hostile import table

    return table(hostile)
