"""Bulk runs that lose nothing: thousands to millions of chat or embeddings requests.

INPUT is JSONL in the service's own batch format, one ``{"id": "...", "request": {...}}``
per line (``request`` is the body of ``/chat/completions`` or ``/embeddings``). OUTPUT
gets one ``{"id": ..., "response": {...}}`` line per finished request, appended and
flushed as each one finishes; requests that still fail after retries go to the errors
file (``OUTPUT.errors.jsonl``) as ``{"id": ..., "error": {"class", "status", "message",
"request_id", ...}}``.

A crash, ``kill -9`` or Ctrl-C loses nothing: a rerun with the same arguments repairs a
torn last line, skips every id already in OUTPUT or in the errors file, and runs the rest,
so each input id ends up exactly once in one of the two files. ``retry_failed=True``
runs the failed ids again and drops their old error lines once they succeed.

Concurrency adapts (AIMD): it halves on 429s and retried answers, grows by one per
window of healthy answers, and never exceeds ``concurrency``::

    import asyncio
    from gigapy import AsyncGigaChat
    from gigapy.batch import run_batch

    async def main():
        async with AsyncGigaChat() as client:
            summary = await run_batch(client, "prompts.jsonl", "answers.jsonl", concurrency=16)
            print(summary.done, summary.failed)

    asyncio.run(main())

``run_via_batches_api`` does the same through the service's ``/batches`` API.
This module imports no CLI libraries; ``gigapy batch`` is a progress UI over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    AuthenticationError,
    ConfigurationError,
    GigaChatError,
    InternalServerError,
    InvalidArgumentError,
    LockedError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    StreamError,
    TLSVerificationError,
)

if TYPE_CHECKING:
    from ._async import AsyncGigaChat
    from .types.batches import BatchResult

__all__ = [
    "BatchAborted",
    "BatchProgress",
    "BatchSummary",
    "default_errors_path",
    "detect_kind",
    "run_batch",
    "run_via_batches_api",
    "write_batch_results",
]

Kind = Literal["chat", "embeddings"]
ProgressCallback = Callable[["BatchProgress"], None]

#: Request fields ``completion()`` takes as keywords; anything else is sent via extra_body.
_CHAT_FIELDS = frozenset({
    "model", "messages", "temperature", "top_p", "n", "max_tokens", "repetition_penalty", "update_interval",
    "profanity_check", "functions", "function_call", "flags", "response_format", "reasoning_effort", "storage",
    "function_ranker", "attachments",
})
#: Errors every following request would hit too: the run stops instead of filling the errors file.
_FATAL = (AuthenticationError, PermissionDeniedError, PaymentRequiredError, TLSVerificationError, ConfigurationError)
#: Errors worth another attempt (after the client's own retries).
_RETRYABLE = (RateLimitError, InternalServerError, APIConnectionError, StreamError, RequestTimeoutError, LockedError,
              APIResponseValidationError)


# --- results -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchProgress:
    """A snapshot of a run. Counts cover the whole job, previous runs included."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    in_flight: int = 0
    concurrency: float = 0.0
    tokens: int = 0
    elapsed: float = 0.0
    #: CPU seconds this process spent during the run (all threads).
    cpu_seconds: float = 0.0
    completed_this_run: int = 0
    retries: int = 0
    rate_limited: int = 0
    status: str = "running"

    @property
    def finished(self) -> int:
        """Ids accounted for: succeeded or failed."""
        return self.done + self.failed

    @property
    def remaining(self) -> int:
        """Ids not yet accounted for."""
        return max(self.total - self.finished, 0)

    @property
    def requests_per_second(self) -> float:
        """Requests finished per second in this run."""
        return self.completed_this_run / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None before the first result)."""
        rate = self.requests_per_second
        return self.remaining / rate if rate > 0 else None


@dataclass(frozen=True)
class BatchSummary(BatchProgress):
    """The outcome of a run: final counts, the files, and whether it was interrupted."""

    output_path: str = ""
    errors_path: str = ""
    interrupted: bool = False
    duplicate_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (with rate and counts)."""
        return {
            "total": self.total, "done": self.done, "failed": self.failed, "skipped": self.skipped,
            "remaining": self.remaining, "tokens": self.tokens, "elapsed": round(self.elapsed, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "requests_per_second": round(self.requests_per_second, 2), "retries": self.retries,
            "rate_limited": self.rate_limited, "interrupted": self.interrupted, "output": self.output_path,
            "errors": self.errors_path, "duplicate_ids": list(self.duplicate_ids),
        }


class BatchAborted(GigaChatError):
    """The run stopped because every further request would fail too (bad credentials, no access,
    TLS failure, a service that keeps failing). Everything finished is saved; ``summary`` tells
    how far it got and ``__cause__`` is the error that stopped it."""

    def __init__(self, message: str, summary: BatchSummary) -> None:
        super().__init__(message)
        self.summary = summary


# --- files -------------------------------------------------------------------------------------

def default_errors_path(output_path: str | os.PathLike[str]) -> Path:
    """``answers.jsonl`` -> ``answers.errors.jsonl`` (other names get ``.errors.jsonl`` appended)."""
    out = Path(output_path)
    if out.suffix == ".jsonl":
        return out.with_suffix(".errors.jsonl")
    return out.with_name(out.name + ".errors.jsonl")


def _input_error(path: Path, lineno: int, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{path}:{lineno}", reason)


def _iter_input(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, id, request) for each non-blank line; raises on a malformed line."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    except FileNotFoundError:
        raise InvalidArgumentError("input", f"file not found: {path}") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                raise _input_error(path, lineno, "not valid JSON") from None
            if not isinstance(item, dict):
                raise _input_error(path, lineno, 'expected {"id": "...", "request": {...}}')
            rid, request = item.get("id"), item.get("request")
            if not isinstance(rid, str) or not rid:
                raise _input_error(path, lineno, '"id" must be a non-empty string')
            if not isinstance(request, dict):
                raise _input_error(path, lineno, '"request" must be an object: the body of /chat/completions '
                                                 "or /embeddings")
            yield lineno, rid, request


def _kind_of(request: Mapping[str, Any]) -> Kind | None:
    if "messages" in request:
        return "chat"
    if "input" in request:
        return "embeddings"
    return None


def detect_kind(input_path: str | os.PathLike[str]) -> Kind:
    """``chat`` or ``embeddings``, from the first request of a JSONL file."""
    path = Path(input_path)
    for lineno, _, request in _iter_input(path):
        kind = _kind_of(request)
        if kind is None:
            raise _input_error(path, lineno, 'cannot tell the kind: the request has neither "messages" nor "input"; '
                                             "pass kind='chat' or 'embeddings'")
        return kind
    raise InvalidArgumentError("input", f"no requests in {path}")


@dataclass
class _Scan:
    total: int = 0
    kind: Kind | None = None
    duplicates: list[str] = field(default_factory=list)


def _scan_input(path: Path, kind: str) -> tuple[_Scan, set[str]]:
    """Validate every line up front (a bad line 900 000 should not stop a run at 90%)."""
    scan = _Scan()
    ids: set[str] = set()
    for lineno, rid, request in _iter_input(path):
        if rid in ids:
            scan.duplicates.append(rid)
            continue
        ids.add(rid)
        scan.total += 1
        line_kind = _kind_of(request)
        if scan.kind is None:
            scan.kind = line_kind
        if kind == "chat" and "messages" not in request:
            raise _input_error(path, lineno, 'a chat request needs "messages"')
        if kind == "embeddings" and "input" not in request:
            raise _input_error(path, lineno, 'an embeddings request needs "input"')
    if scan.total == 0:
        raise InvalidArgumentError("input", f"no requests in {path}")
    if kind == "auto" and scan.kind is None:
        raise InvalidArgumentError("kind", 'cannot tell chat from embeddings (no "messages" or "input" in the first '
                                           "request); pass kind='chat' or 'embeddings'")
    return scan, ids


_ID_PREFIX = b'{"id":'
_decoder = json.JSONDecoder()


def _line_id(raw: bytes) -> str | None:
    """The id of a result line; fast for lines this module wrote (id first), None when corrupt."""
    line = raw.rstrip(b"\r\n")
    if not line.endswith(b"}"):
        return None
    if line.startswith(_ID_PREFIX):
        try:
            value, _ = _decoder.raw_decode(line[len(_ID_PREFIX):].decode("utf-8").lstrip())
        except (ValueError, UnicodeDecodeError):
            value = None
        if isinstance(value, str):
            return value
    try:
        item = json.loads(line)
    except ValueError:
        return None
    rid = item.get("id") if isinstance(item, dict) else None
    return rid if isinstance(rid, str) else None


def _repair_and_read(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (id, line) of a results file; a torn last line (kill -9 mid-write) is cut off.

    A corrupt line elsewhere cannot come from this module's writer; it is reported, not guessed at.
    """
    if not path.exists():
        return
    good_end = 0
    pending_bad: tuple[int, int] | None = None  # (line number, offset) of a corrupt line
    with open(path, "r+b") as fh:
        offset = 0
        for lineno, raw in enumerate(fh, start=1):
            end = offset + len(raw)
            if pending_bad is not None:
                raise InvalidArgumentError(str(path), f"line {pending_bad[0]} is corrupt (not a JSON result line); "
                                                      "fix or remove it, then rerun")
            if not raw.strip():
                good_end = offset = end
                continue
            rid = _line_id(raw) if raw.endswith(b"\n") else None
            if rid is None:
                pending_bad = (lineno, offset)
            else:
                good_end = end
                yield rid, raw
            offset = end
        if pending_bad is not None or good_end < offset:
            fh.truncate(good_end)  # the torn tail of an interrupted write


def _rewrite(path: Path, lines: Iterable[bytes]) -> None:
    """Replace a file atomically (write a temporary file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for line in lines:
                fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _compact_errors(path: Path, done: set[str]) -> int:
    """Drop error lines of ids that have since succeeded, and older lines of ids that failed
    again; returns how many failed ids remain."""
    latest: dict[str, bytes] = {}
    count = 0
    for rid, raw in _repair_and_read(path):
        count += 1
        latest.pop(rid, None)
        if rid not in done:
            latest[rid] = raw
    if count != len(latest):
        _rewrite(path, latest.values())
    return len(latest)


_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _retries_of(result: Any) -> int:
    """``result.retries_taken`` without pydantic's slow ``__getattr__`` for private attributes."""
    private = getattr(result, "__pydantic_private__", None)
    meta = private.get("_meta") if private else None
    return int(meta.retries_taken) if meta is not None else 0


def _dump_line(item: Mapping[str, Any]) -> bytes:
    return (json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def error_record(exc: BaseException, attempts: int) -> dict[str, Any]:
    """The errors-file form of an exception: class, status, message, code, request_id, attempts."""
    record: dict[str, Any] = {"class": type(exc).__name__, "status": getattr(exc, "status_code", None),
                              "message": str(exc)}
    for name in ("server_message", "code", "request_id"):
        value = getattr(exc, name, None)
        if value is not None:
            record[name] = value
    record["attempts"] = attempts
    return record


class _Lock:
    """An exclusive lock on the output file, so two runs never write the same results."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(f".{path.name}.lock")
        self.name = path.name
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> _Lock:
        if not self.path.parent.is_dir():
            raise InvalidArgumentError("output", f"directory does not exist: {self.path.parent}")
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks
            return self
        fh = open(self.path, "ab")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise InvalidArgumentError("output", f"another run is writing {self.name} "
                                                 "(wait for it, or stop it first)") from None
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            with contextlib.suppress(OSError):
                self.path.unlink()


class _Appender:
    """Appends result lines to a file: the lines finished in one event-loop turn go out in one
    unbuffered ``write()`` at the end of that turn (the next turn, before the loop waits again)."""

    def __init__(self, path: Path) -> None:
        self.fh: IO[bytes] = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        self._pending: list[bytes] = []
        self.dirty = False

    def add(self, line: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            self.fh.write(data)
            self.dirty = True

    def close(self) -> None:
        self.flush()
        self.fh.close()


@dataclass
class _Job:
    """Paths, the ids already accounted for, and the counters shared by a run."""

    input_path: Path
    output_path: Path
    errors_path: Path
    kind: Kind
    total: int
    duplicates: tuple[str, ...]
    done: set[str]
    failed: set[str]
    skip: set[str]
    progress: BatchProgress


def _prepare(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str],
             errors_path: str | os.PathLike[str] | None, kind: str, retry_failed: bool) -> _Job:
    if kind not in ("auto", "chat", "embeddings"):
        raise InvalidArgumentError("kind", f"expected 'chat', 'embeddings' or 'auto', got {kind!r}")
    src, out = Path(input_path), Path(output_path)
    errs = Path(errors_path) if errors_path is not None else default_errors_path(out)
    if len({src.resolve(), out.resolve(), errs.resolve()}) != 3:
        raise InvalidArgumentError("output", "input, output and errors files must be three different files")
    if not out.parent.is_dir():
        raise InvalidArgumentError("output", f"directory does not exist: {out.parent}")
    scan, ids = _scan_input(src, kind)
    chosen: Kind = scan.kind if kind == "auto" and scan.kind is not None else ("chat" if kind == "chat" else
                                                                                 "embeddings")
    done = {rid for rid, _ in _repair_and_read(out) if rid in ids}
    remaining_failed = _compact_errors(errs, done) if errs.exists() else 0
    failed = {rid for rid, _ in _repair_and_read(errs) if rid in ids} if remaining_failed else set()
    skip = done if retry_failed else done | failed
    counted_failed = 0 if retry_failed else len(failed)
    progress = BatchProgress(total=scan.total, done=len(done), failed=counted_failed,
                             skipped=len(done) + counted_failed)
    return _Job(src, out, errs, chosen, scan.total, tuple(scan.duplicates), done, failed, skip, progress)


# --- adaptive concurrency ----------------------------------------------------------------------

class AdaptiveLimiter:
    """AIMD concurrency: halve on congestion (at most once per ``cooldown``), +1 per window of
    successes, always within [1, maximum]."""

    def __init__(self, maximum: int, *, cooldown: float = 1.0) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self.active = 0
        self.cooldown = cooldown
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._last_decrease = -1e9
        self.decreases = 0

    async def acquire(self) -> None:
        """Wait for a free slot under the current limit."""
        if self.active < int(self.limit) and not self._waiters:
            self.active += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was granted just before the cancellation
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def release(self) -> None:
        """Give a slot back."""
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.active < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self.active += 1
                fut.set_result(None)

    def success(self) -> None:
        """A healthy answer: grow by 1/limit (so +1 per window of answers)."""
        if self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
            self._wake()

    def congestion(self) -> None:
        """A 429 (or an answer that needed retries): halve, once per cooldown."""
        now = time.monotonic()
        if now - self._last_decrease >= self.cooldown:
            self._last_decrease = now
            self.limit = max(1.0, self.limit / 2)
            self.decreases += 1


# --- the runner --------------------------------------------------------------------------------

class _Runner:
    def __init__(self, client: AsyncGigaChat, job: _Job, concurrency: int, retries: int,
                 on_progress: ProgressCallback | None, progress_interval: float, fsync_interval: float) -> None:
        self.client = client
        self.job = job
        self.concurrency = concurrency
        self.retries = retries
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self.fsync_interval = fsync_interval
        self.limiter = AdaptiveLimiter(concurrency)
        self.done = job.progress.done
        self.failed = job.progress.failed
        self.completed = 0
        self.tokens = 0
        self.retried = 0
        self.rate_limited = 0
        self.streak = 0  # consecutive retryable failures
        self.max_streak = max(20, 2 * concurrency)
        self.fatal: BaseException | None = None
        self.errors_dirty = False
        self.recovered: set[str] = set()
        self.started = time.monotonic()
        self.cpu_started = time.process_time()
        self.out: _Appender | None = None
        self.err: _Appender | None = None

    def snapshot(self, status: str = "running") -> BatchProgress:
        return replace(self.job.progress, done=self.done, failed=self.failed, tokens=self.tokens,
                       in_flight=self.limiter.active, concurrency=self.limiter.limit,
                       elapsed=time.monotonic() - self.started, completed_this_run=self.completed,
                       cpu_seconds=time.process_time() - self.cpu_started,
                       retries=self.retried, rate_limited=self.rate_limited, status=status)

    # writing
    def _write_ok(self, rid: str, response_json: str) -> None:
        assert self.out is not None
        self.out.add(f'{{"id":{_encode_str(rid)},"response":{response_json}}}\n'.encode())
        self.done += 1
        self.completed += 1
        if rid in self.job.failed:
            self.recovered.add(rid)  # its old error line goes when the errors file is compacted
            self.errors_dirty = True

    def _write_error(self, rid: str, exc: BaseException, attempts: int) -> None:
        if self.err is None:
            self.err = _Appender(self.job.errors_path)
        self.err.add(_dump_line({"id": rid, "error": error_record(exc, attempts)}))
        self.failed += 1
        self.completed += 1
        if rid in self.job.failed:
            self.errors_dirty = True  # an older line for this id is now superseded

    # one request
    def _start(self, request: dict[str, Any]) -> Awaitable[Any]:
        """The client call for one request (awaited by ``process``: no extra coroutine per request)."""
        if self.job.kind == "chat":
            fields = {k: v for k, v in request.items() if k in _CHAT_FIELDS}
            if len(fields) != len(request):
                extra = {k: v for k, v in request.items() if k not in _CHAT_FIELDS and k != "stream"}
                if extra:
                    fields["extra_body"] = extra
            return self.client.completion(**fields)
        extra = {k: v for k, v in request.items() if k not in ("input", "model")}
        options: dict[str, Any] = {"extra_body": extra} if extra else {}
        return self.client.embedding(request.get("input"),  # type: ignore[arg-type]
                                     model=request.get("model") or "Embeddings", **options)

    def _tokens(self, result: Any) -> int:
        if self.job.kind == "chat":
            usage = result.usage
            return int(usage.total_tokens) if usage is not None else 0
        return int(result.prompt_tokens)

    async def process(self, rid: str, request: dict[str, Any]) -> None:
        attempt = 0
        while True:
            await self.limiter.acquire()
            try:
                result = await self._start(request)
            except _FATAL as exc:
                self.fatal = exc
                return
            except _RETRYABLE as exc:
                if isinstance(exc, RateLimitError):
                    self.rate_limited += 1
                self.limiter.congestion()
                if attempt >= self.retries:
                    self.streak += 1
                    if self.streak >= self.max_streak:
                        self.fatal = exc
                    self._write_error(rid, exc, attempt + 1)
                    return
                delay = self._delay(exc, attempt)
            except GigaChatError as exc:  # the request itself is wrong: retrying cannot help
                self.streak = 0
                self._write_error(rid, exc, attempt + 1)
                return
            else:
                self.streak = 0
                client_retries = _retries_of(result)
                if client_retries:
                    self.retried += client_retries
                    self.limiter.congestion()
                else:
                    self.limiter.success()
                self.tokens += self._tokens(result)
                self._write_ok(rid, result.model_dump_json(by_alias=True, exclude_unset=True))
                return
            finally:
                self.limiter.release()
            attempt += 1
            self.retried += 1
            await asyncio.sleep(delay)

    @staticmethod
    def _delay(exc: BaseException, attempt: int) -> float:
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, (int, float)) and 0 <= hint <= 60:
            return float(hint) + random.uniform(0, 0.25)
        return min(0.5 * 2.0 ** attempt, 10.0) * random.uniform(0.75, 1.0)

    # the loop
    async def _ticker(self) -> None:
        last_sync = time.monotonic()
        while True:
            await asyncio.sleep(self.progress_interval)
            if self.on_progress is not None:
                self.on_progress(self.snapshot())
            if time.monotonic() - last_sync >= self.fsync_interval:
                await self._fsync()
                last_sync = time.monotonic()

    async def _fsync(self) -> None:
        """Push written lines to the disk (a worker thread: the event loop never waits for it)."""
        for appender in (self.out, self.err):
            if appender is not None and appender.dirty:
                appender.dirty = False
                with contextlib.suppress(OSError, ValueError):
                    await asyncio.to_thread(os.fsync, appender.fh.fileno())

    async def run(self, stop: asyncio.Event | None) -> bool:
        """Run every pending request; returns True when stopped early."""
        fatal_event = asyncio.Event()

        def pending() -> Iterator[tuple[str, dict[str, Any]]]:
            seen: set[str] = set()
            for _, rid, request in _iter_input(self.job.input_path):
                if rid in self.job.skip or rid in seen:
                    continue
                seen.add(rid)
                yield rid, request

        items = pending()  # shared by the workers: one event loop, so next() is never re-entered

        async def work() -> None:
            for rid, request in items:
                await self.process(rid, request)
                if self.fatal is not None:
                    fatal_event.set()
                    return

        self.out = _Appender(self.job.output_path)
        tasks = [asyncio.ensure_future(work()) for _ in range(self.concurrency)]
        everything = asyncio.gather(*tasks)
        waiters: set[asyncio.Future[Any]] = {everything, asyncio.ensure_future(fatal_event.wait())}
        if stop is not None:
            waiters.add(asyncio.ensure_future(stop.wait()))
        if self.on_progress is not None:
            self.on_progress(self.snapshot())
        ticker = asyncio.ensure_future(self._ticker())
        stopped = False
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            stopped = not everything.done()
            if everything.done():
                everything.result()  # re-raise an unexpected failure
        finally:
            for t in [*tasks, *waiters, ticker]:
                t.cancel()
            await asyncio.gather(*tasks, *waiters, ticker, return_exceptions=True)
            for appender in (self.out, self.err):
                if appender is not None:
                    appender.flush()
            await self._fsync()
            for appender in (self.out, self.err):
                if appender is not None:
                    appender.close()
        return stopped and self.fatal is None


async def run_batch(
    client: AsyncGigaChat,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    kind: str = "auto",
    concurrency: int = 8,
    errors_path: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    retries: int = 3,
    on_progress: ProgressCallback | None = None,
    progress_interval: float = 0.5,
    fsync_interval: float = 1.0,
    stop: asyncio.Event | None = None,
) -> BatchSummary:
    """Run every request of ``input_path`` that is not done yet, appending to ``output_path``.

    ``kind``: ``chat``, ``embeddings`` or ``auto`` (from the first request). ``concurrency``
    caps requests in flight (the adaptive limit stays at or below it). ``retries``: extra
    attempts per request after the client's own retries (429 waits for Retry-After).
    ``on_progress`` gets a :class:`BatchProgress` every ``progress_interval`` seconds.
    Setting ``stop`` ends the run early (what finished is saved). Raises
    :class:`BatchAborted` when every further request would fail (bad credentials, no access,
    TLS, a service that keeps failing), and InvalidArgumentError for a malformed input line.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError("concurrency", f"must be an integer >= 1, got {concurrency!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidArgumentError("retries", f"must be an integer >= 0, got {retries!r}")
    with _Lock(Path(output_path)):
        job = await asyncio.to_thread(_prepare, input_path, output_path, errors_path, kind, retry_failed)
        runner = _Runner(client, job, concurrency, retries, on_progress, progress_interval, fsync_interval)
        interrupted = True
        try:
            interrupted = await runner.run(stop)
        finally:
            if runner.errors_dirty:
                await asyncio.to_thread(_compact_errors, job.errors_path, job.done | runner.recovered)
        summary = _summary(runner, job, interrupted)
    if on_progress is not None:
        on_progress(summary)
    if runner.fatal is not None:
        exc = runner.fatal
        raise BatchAborted(f"batch stopped: {exc}", summary) from exc
    return summary


def _summary(runner: _Runner, job: _Job, interrupted: bool) -> BatchSummary:
    snap = runner.snapshot("interrupted" if interrupted else ("aborted" if runner.fatal else "finished"))
    return BatchSummary(**{f: getattr(snap, f) for f in BatchProgress.__dataclass_fields__},
                        output_path=str(job.output_path), errors_path=str(job.errors_path),
                        interrupted=interrupted, duplicate_ids=job.duplicates)


# --- through the service's /batches API ------------------------------------------------------

def write_batch_results(results: Iterable[BatchResult], output_path: str | os.PathLike[str],
                        errors_path: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """Append a finished service batch's results in ``gigapy batch``'s OUTPUT format (failures
    go to the errors file, ``OUTPUT.errors.jsonl`` by default). Returns (succeeded, failed)."""
    out = Path(output_path)
    errs = Path(errors_path) if errors_path is not None else default_errors_path(out)
    ok, bad = _write_results(results, out, errs, set(), set())
    return ok, bad


def _write_results(results: Iterable[BatchResult], out: Path, errs: Path, accounted: set[str],
                   succeeded: set[str]) -> tuple[int, int]:
    """Write results whose id is not in ``accounted`` (then add it); ok ids go to ``succeeded``."""
    ok_lines, bad_lines = [], []
    for r in results:
        if r.id in accounted:
            continue
        accounted.add(r.id)
        if r.ok and r.body is not None:
            ok_lines.append(_dump_line({"id": r.id, "response": r.body}))
            succeeded.add(r.id)
        else:
            error = r.error or {}
            status = error.get("status", r.status_code)
            message = str(error.get("message") or "the service reported no result for this request")
            bad_lines.append(_dump_line({"id": r.id, "error": {"class": "BatchRequestError", "status": status,
                                                                "message": message, "attempts": 1}}))
    for path, lines in ((out, ok_lines), (errs, bad_lines)):
        if lines:
            with open(path, "ab") as fh:
                fh.write(b"".join(lines))
                fh.flush()
                os.fsync(fh.fileno())
    return len(ok_lines), len(bad_lines)


def _state_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.batches.json")


def _load_state(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except ValueError:
        raise InvalidArgumentError(str(path), "the saved batch state is corrupt; delete it to resubmit") from None
    batches = data.get("batches") if isinstance(data, dict) else None
    return [b for b in batches if isinstance(b, dict) and isinstance(b.get("id"), str)] if batches else []


def _save_state(path: Path, batches: list[dict[str, Any]]) -> None:
    if not batches:
        path.unlink(missing_ok=True)
        return
    _rewrite(path, [json.dumps({"batches": batches}, ensure_ascii=False).encode("utf-8")])


async def run_via_batches_api(
    client: AsyncGigaChat,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    kind: str = "auto",
    errors_path: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    batch_size: int = 10_000,
    poll_interval: float = 5.0,
    on_progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
    max_wait: float | None = None,
) -> BatchSummary:
    """Like :func:`run_batch`, but the service runs the requests (``/batches``).

    Pending lines are submitted in batches of ``batch_size``; their ids are saved next to
    OUTPUT (``.OUTPUT.batches.json``) before polling, so a rerun after a crash polls the same
    batches instead of paying twice. Results are written in the same OUTPUT format.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError("batch_size", f"must be an integer >= 1, got {batch_size!r}")
    started = time.monotonic()
    succeeded: set[str] = set()
    interrupted = False
    with _Lock(Path(output_path)):
        job = await asyncio.to_thread(_prepare, input_path, output_path, errors_path, kind, retry_failed)
        method = "chat_completions" if job.kind == "chat" else "embedder"
        state_path = _state_path(job.output_path)
        accounted = set(job.skip)
        ok_total, bad_total = job.progress.done, job.progress.failed
        saved = _load_state(state_path)
        submitted = {rid for b in saved for rid in b.get("ids", [])}
        pending: list[tuple[str, dict[str, Any]]] = []
        for _, rid, request in _iter_input(job.input_path):
            if rid not in accounted and rid not in submitted:
                submitted.add(rid)
                pending.append((rid, request))
        for start in range(0, len(pending), batch_size):
            chunk = pending[start:start + batch_size]
            body = b"".join(_dump_line({"id": rid, "request": req}) for rid, req in chunk)
            batch = await client.create_batch(body, method=method)
            saved.append({"id": batch.id, "ids": [rid for rid, _ in chunk]})
            await asyncio.to_thread(_save_state, state_path, saved)  # before polling: a crash must not resubmit
        deadline = None if max_wait is None else started + max_wait
        counts: dict[str, tuple[int, int]] = {}
        while saved:
            for entry in list(saved):
                batch = await client.get_batch(entry["id"])
                c = batch.request_counts
                counts[entry["id"]] = (c.completed or 0, c.failed or 0)
                if not batch.is_done:
                    continue
                if batch.output_file_id:
                    results = await client.get_batch_results(batch)
                    ok, bad = await asyncio.to_thread(_write_results, results, job.output_path, job.errors_path,
                                                      accounted, succeeded)
                    ok_total += ok
                    bad_total += bad
                saved.remove(entry)  # a batch that ended without output leaves its ids pending for a rerun
                counts.pop(entry["id"], None)
                await asyncio.to_thread(_save_state, state_path, saved)
            if on_progress is not None:
                busy_ok = sum(v[0] for v in counts.values())
                busy_bad = sum(v[1] for v in counts.values())
                finished = ok_total + busy_ok + bad_total + busy_bad
                on_progress(replace(job.progress, done=ok_total + busy_ok, failed=bad_total + busy_bad,
                                    elapsed=time.monotonic() - started, in_flight=len(saved),
                                    completed_this_run=finished - job.progress.finished, status="polling"))
            if not saved:
                break
            if deadline is not None and time.monotonic() >= deadline:
                interrupted = True
                break
            if stop is None:
                await asyncio.sleep(poll_interval)
                continue
            try:
                await asyncio.wait_for(stop.wait(), poll_interval)
            except asyncio.TimeoutError:
                continue
            interrupted = True
            break
        if retry_failed and job.failed:
            await asyncio.to_thread(_compact_errors, job.errors_path, job.done | succeeded)
    summary = BatchSummary(total=job.total, done=ok_total, failed=bad_total, skipped=job.progress.skipped,
                           elapsed=time.monotonic() - started, completed_this_run=ok_total + bad_total
                           - job.progress.finished, status="interrupted" if interrupted else "finished",
                           output_path=str(job.output_path), errors_path=str(job.errors_path),
                           interrupted=interrupted, duplicate_ids=job.duplicates)
    if on_progress is not None:
        on_progress(summary)
    return summary
