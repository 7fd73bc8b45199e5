"""Bulk runs that lose nothing: thousands to millions of chat or embeddings requests.

INPUT is JSONL in the service's own batch format, one ``{"id": "...", "request": {...}}``
per line (``request`` is the body of ``/chat/completions`` or ``/embeddings``). OUTPUT
gets one ``{"id": ..., "response": {...}}`` line per finished request, appended and
flushed as each one finishes; requests that still fail after retries, and input lines that
cannot be sent (not JSON, no usable id, text that UTF-8 cannot encode, an argument the
client rejects), go to the errors file (``OUTPUT.errors.jsonl``) as ``{"id": ..., "line": N,
"error": {"class", "status", "message", "request_id", ...}}``; nothing is sent for a bad line.
Every line is checked (with the client's own checks) before the first request is sent; a refused
line is checked again on every run, so once fixed it runs. OpenAI batch lines (``custom_id`` /
``url`` / ``body``) are accepted and mapped as the OpenAI bridge maps them.

A request that may have reached the model (:func:`~gigapy.errors.may_have_reached_model`: a 502
or 504, a timeout or a connection lost after sending) is not sent again unless
``retry_non_idempotent``. Requests that cannot connect at all stop the run (a circuit breaker)
without being recorded as failed, so a plain rerun sends them.

A crash, ``kill -9`` or Ctrl-C loses nothing: a rerun with the same arguments cuts a torn
last line, skips every id that has a whole, valid line in OUTPUT or in the errors file, and
runs the rest, so each input id ends up exactly once in one of the two files. A line that is
not a whole result line (glued to another, torn, garbage) does not count: it moves to
``OUTPUT.corrupt`` with a warning and its id runs again. ``retry_failed=True`` runs the failed
ids again and drops their old error lines once they succeed.

Every write is checked: a write that fails (disk full, file too large, I/O error) stops the
run with :class:`BatchWriteError`, the file is cut back to its last whole line, and a rerun
after the cause is fixed resumes. OUTPUT and the errors file are locked themselves (not their
names), so a second run on the same file through any path (a symlink, a hard link, a relative
path) is refused.

Concurrency adapts (AIMD): it halves on 429s and retried answers, grows by one per
window of healthy answers, and never exceeds ``concurrency``. By default (``concurrency=None``)
the client's own gate sets the pace: it starts at the account's documented limit, finds a raised
one, and sends a request the service refused for concurrency again as soon as a slot frees, so
the quota stays full and no 429 reaches the run; the runner keeps a few more requests ready than
the gate lets through, so a freed slot is taken at once::

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
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._bulk_files import (
    Appender,
    BatchWriteError,
    Files,
    append_file,
    atomic_write,
    compact_errors,
    default_errors_path,
    dump_line,
    load_output,
)
from ._bulk_lines import Key, Kind, Line, iter_lines, kind_of, kind_problem, line_error, problem_text, scan_input
from ._core import params as P
from ._ops.base import usage_of
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    AuthenticationError,
    BatchAborted,
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
    may_have_reached_model,
)
from .usage import PriceTable, UsageTotals, estimate_cost

if TYPE_CHECKING:
    from ._clients.async_client import AsyncGigaChat
    from .coordinator import Coordinator
    from .coordinator._share import FleetShare
    from .types.batches import BatchResult

__all__ = [
    "BatchAborted",
    "BatchProgress",
    "BatchSummary",
    "BatchWriteError",
    "default_errors_path",
    "detect_kind",
    "run_batch",
    "run_via_batches_api",
    "write_batch_results",
]

ProgressCallback = Callable[["BatchProgress"], None]

#: Request fields ``completion()`` takes as keywords (checked); anything else is sent via extra_body, as
#: given (an input line is the service's request body: fields gigapy does not know pass silently).
_CHAT_FIELDS = P.CHAT_FIELDS
#: Errors every following request would hit too: the run stops instead of filling the errors file.
_FATAL = (AuthenticationError, PermissionDeniedError, PaymentRequiredError, TLSVerificationError, ConfigurationError)
#: Errors worth another attempt (after the client's own retries); one that may have reached the model
#: (:func:`~gigapy.errors.may_have_reached_model`) only with ``retry_non_idempotent``.
_RETRYABLE = (RateLimitError, InternalServerError, APIConnectionError, StreamError, RequestTimeoutError, LockedError,
              APIResponseValidationError)
#: Consecutive requests that could not connect (after every retry) before the run stops: the service is
#: unreachable, so the rest would fail the same way. Those ids are not recorded as failed: a rerun sends them.
BREAKER = 3


def _unreached(exc: BaseException) -> bool:
    """A connection failure before the request left (refused, DNS, connect timeout): nothing was sent."""
    return isinstance(exc, APIConnectionError) and not exc.sent


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
    #: Requests sent in this run that finished (answered, or failed after sending).
    completed_this_run: int = 0
    retries: int = 0
    rate_limited: int = 0
    status: str = "running"
    #: Lines of this run refused before sending (bad input); counted in ``failed``, never sent.
    rejected: int = 0

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
    #: What the run repaired or ignored (corrupt result lines moved aside, ...), one sentence each.
    warnings: tuple[str, ...] = ()
    #: This run's token totals per model: ``{model: {prompt_tokens, completion_tokens, cached_tokens,
    #: requests, errors}}``.
    usage: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: This run's cost **estimate** (see :func:`gigapy.usage.estimate_cost`), in roubles.
    cost: Mapping[str, Any] = field(default_factory=dict)
    #: The run stopped before its cost estimate would pass ``budget_rub``; what was not sent stays pending.
    budget_reached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (with rate and counts)."""
        return {
            "total": self.total, "done": self.done, "failed": self.failed, "skipped": self.skipped,
            "remaining": self.remaining, "rejected": self.rejected, "tokens": self.tokens,
            "elapsed": round(self.elapsed, 3), "cpu_seconds": round(self.cpu_seconds, 3),
            "requests_per_second": round(self.requests_per_second, 2), "retries": self.retries,
            "rate_limited": self.rate_limited, "interrupted": self.interrupted, "output": self.output_path,
            "errors": self.errors_path, "duplicate_ids": list(self.duplicate_ids), "warnings": list(self.warnings),
            "usage": {model: dict(values) for model, values in self.usage.items()}, "cost_estimate": dict(self.cost),
            "budget_reached": self.budget_reached,
        }


def detect_kind(input_path: str | os.PathLike[str]) -> Kind:
    """``chat`` or ``embeddings``, from the first request of a JSONL file."""
    path = Path(input_path)
    for lineno, _, request, problem in iter_lines(path):
        if problem is not None or request is None:
            raise InvalidArgumentError(f"{path}:{lineno}", problem_text(problem or ("line", "no request")))
        kind = kind_of(request)
        if kind is None:
            raise InvalidArgumentError(f"{path}:{lineno}", 'cannot tell the kind: the request has neither "messages" '
                                                           'nor "input"; choose the kind: chat or embeddings')
        return kind
    raise InvalidArgumentError("input", f"no requests in {path}")


_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _retries_of(result: Any) -> int:
    """``result.retries_taken`` without pydantic's slow ``__getattr__`` for private attributes."""
    private = getattr(result, "__pydantic_private__", None)
    meta = private.get("_meta") if private else None
    return int(meta.retries_taken) if meta is not None else 0


def error_record(exc: BaseException, attempts: int) -> dict[str, Any]:
    """The errors-file form of an exception: class, status, message, code, request_id, field, attempts."""
    record: dict[str, Any] = {"class": type(exc).__name__, "status": getattr(exc, "status_code", None),
                              "message": str(exc)}
    for name in ("server_message", "code", "request_id", "field"):
        value = getattr(exc, name, None)
        if value is not None:
            record[name] = value
    record["attempts"] = attempts
    return record


def _error_line(key: Key, lineno: int | None, exc: BaseException, attempts: int) -> bytes:
    item: dict[str, Any] = {"id": key if isinstance(key, str) else None}
    if lineno is not None:
        item["line"] = lineno
    item["error"] = error_record(exc, attempts)
    return dump_line(item)


@dataclass
class _Job:
    """Paths, the ids already accounted for, and the counters shared by a run."""

    input_path: Path
    files: Files
    kind: Kind
    total: int
    duplicates: tuple[str, ...]
    done: set[str]
    failed: set[Key]
    skip: set[Key]
    progress: BatchProgress
    warnings: list[str]


def _prepare(files: Files, kind: str, retry_failed: bool) -> _Job:
    """Scan INPUT, repair OUTPUT and the errors file, and work out what is left to run."""
    if kind not in ("auto", "chat", "embeddings"):
        raise InvalidArgumentError("kind", f"expected chat, embeddings or auto, got {_shown(kind)}")
    assert files.input is not None
    scan = scan_input(files.input)
    if kind == "auto" and scan.kind is None and scan.requests:
        raise InvalidArgumentError("kind", 'cannot tell chat from embeddings (no "messages" or "input" in any '
                                           "request); choose the kind: chat or embeddings")
    chosen: Kind = (scan.kind or "chat") if kind == "auto" else ("chat" if kind == "chat" else "embeddings")
    in_output, warnings = load_output(files.output)
    done = {rid for rid in in_output if rid in scan.keys}
    remaining, more = compact_errors(files.errors, done, scan.keys)
    warnings += more
    failed = {key for key in remaining if key in scan.keys}
    # bad input is not a failure: its lines are checked again on every run (the input may be fixed)
    rejected = _rejected_keys(files.errors.path, failed) if failed else set()
    skip: set[Key] = set(done) if retry_failed else {*done, *(failed - rejected)}
    counted_failed = 0 if retry_failed else len(failed - rejected)
    progress = BatchProgress(total=len(scan.keys), done=len(done), failed=counted_failed,
                             skipped=len(done) + counted_failed)
    return _Job(files.input, files, chosen, len(scan.keys), tuple(scan.duplicates), done, failed, skip, progress,
                warnings)


def _rejected_keys(path: Path, keys: set[Key]) -> set[Key]:
    """The keys among ``keys`` whose record in the errors file is a line refused before sending."""
    out: set[Key] = set()
    with open(path, "rb") as fh:
        for raw in fh:
            if b'"attempts":0' not in raw:
                continue
            try:
                item = json.loads(raw)
                error = item["error"]
            except (ValueError, KeyError, TypeError):
                continue
            key = item.get("id") if isinstance(item.get("id"), str) else item.get("line")
            if key in keys and isinstance(error, dict) and error.get("attempts") == 0:
                out.add(key)
    return out


def _shown(value: Any) -> str:
    """A value for a message, as JSON (never Python's repr)."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return type(value).__name__


#: Request fields of an embeddings line that the client checks.
_EMBEDDING_FIELDS = frozenset({"input", "model"})


def check_request(kind: Kind, request: Mapping[str, Any], default_model: str) -> InvalidArgumentError | None:
    """The client's own checks of one input request, before anything is sent: ranges, roles,
    types, and a misspelt field name ("did you mean"); None when it can be sent. Fields the
    client does not know (and that are no typo of one it does) are sent as given."""
    known = _CHAT_FIELDS if kind == "chat" else _EMBEDDING_FIELDS
    for name in request:
        if name in known or name == "stream":
            continue
        typo = P.close_to(name, known)
        if typo is not None:
            return InvalidArgumentError(name, f'unknown field; did you mean "{typo}"?')
    try:
        if kind == "chat":
            P.chat_body({k: v for k, v in request.items() if k in known}, default_model=default_model,
                        profanity_check=None, flags=None)
        else:
            P.text(request.get("model") or "Embeddings", "model")
            P.strings(request.get("input"), "input")
    except InvalidArgumentError as exc:
        return exc
    return None


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
                 on_progress: ProgressCallback | None, progress_interval: float, fsync_interval: float,
                 repeat: bool = False, budget: float | None = None, prices: PriceTable | None = None) -> None:
        self.client = client
        self.usage = UsageTotals()  # this run's
        self.hook = client._core.hook()  # telemetry: a span per item under the run's span
        self.budget = budget
        self.prices = prices if prices is not None else PriceTable.default()
        self.scope = client._core.settings.scope
        self.spent = 0.0  # the estimate of what finished
        self.reserved = 0.0  # the estimate of what is in flight
        self.budget_reached = False
        self.repeat = repeat  # send again a request that may have reached the model
        self.unreached = 0  # consecutive requests that could not connect (the circuit breaker)
        self.breaker_open = False
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
        self.rejected = 0
        self.tokens = 0
        self.retried = 0
        self.rate_limited = 0
        self.streak = 0  # consecutive retryable failures
        self.max_streak = max(20, 2 * concurrency)
        self.fatal: BaseException | None = None
        self.write_failure: BatchWriteError | None = None
        self.errors_dirty = False
        self.recovered: set[str] = set()
        self.started = time.monotonic()
        self.cpu_started = time.process_time()
        self.out: Appender | None = None
        self.err: Appender | None = None
        self.halt: asyncio.Event | None = None
        self.share: FleetShare | None = None  # workers sharing one input through a coordinator

    def snapshot(self, status: str = "running") -> BatchProgress:
        lost_ok = self.out.lost if self.out is not None else 0
        lost_bad = self.err.lost if self.err is not None else 0
        lost_rejected = self.err.lost_rejected if self.err is not None else 0
        return replace(self.job.progress, done=self.done - lost_ok, failed=self.failed - lost_bad, tokens=self.tokens,
                       in_flight=self.limiter.active, concurrency=self.limiter.limit,
                       elapsed=time.monotonic() - self.started,
                       completed_this_run=self.completed - lost_ok - (lost_bad - lost_rejected),
                       cpu_seconds=time.process_time() - self.cpu_started, retries=self.retried,
                       rate_limited=self.rate_limited, status=status, rejected=self.rejected - lost_rejected)

    # writing
    def _write_failed(self, exc: BatchWriteError) -> None:
        if self.write_failure is None:
            self.write_failure = exc
        if self.halt is not None:
            self.halt.set()

    def _write_ok(self, rid: str, response_json: str) -> None:
        assert self.out is not None
        self.out.add(f'{{"id":{_encode_str(rid)},"response":{response_json}}}\n'.encode(), key=rid)
        self.done += 1
        self.completed += 1
        if rid in self.job.failed:
            self.recovered.add(rid)  # its old error line goes when the errors file is compacted
            self.errors_dirty = True

    def _write_error(self, key: Key, lineno: int, exc: BaseException, attempts: int) -> None:
        assert self.err is not None
        sent = attempts > 0
        self.err.add(_error_line(key, lineno, exc, attempts), rejected=not sent, key=key)
        self.failed += 1
        if sent:
            self.completed += 1
        else:
            self.rejected += 1
        if key in self.job.failed:
            self.errors_dirty = True  # an older line for this key is now superseded

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

    def _model(self, request: Mapping[str, Any]) -> str:
        model = request.get("model")
        if isinstance(model, str) and model:
            return model
        return self.client._core.settings.model if self.job.kind == "chat" else "Embeddings"

    def _estimate(self, model: str, request: Mapping[str, Any]) -> float:
        """A request's cost estimate before it is sent: its text at ~3 bytes per token, and the
        answer at ``max_tokens`` or the average answer of this run so far (512 before the first)."""
        text = request.get("messages") if self.job.kind == "chat" else request.get("input")
        prompt = len(json.dumps(text, ensure_ascii=False).encode("utf-8")) // 3 + 1
        completion = 0
        if self.job.kind == "chat":
            max_tokens = request.get("max_tokens")
            totals = self.usage.total()
            answered = totals.requests - totals.errors
            average = totals.completion_tokens / answered if answered else 512
            completion = int(max_tokens) if isinstance(max_tokens, int) and max_tokens > 0 else int(average) + 1
        cost = self.prices.cost(self.scope, model, prompt, completion)
        return 0.0 if cost is None else cost

    def _cost(self, model: str, result: Any) -> float:
        prompt, completion, _ = usage_of(result)
        cost = self.prices.cost(self.scope, model, prompt, completion)
        return 0.0 if cost is None else cost

    async def process(self, rid: str, lineno: int, request: dict[str, Any]) -> None:
        """One line: under the budget (when there is one) and its own span (when telemetry is on)."""
        model = self._model(request)
        estimate = 0.0
        if self.budget is not None:
            estimate = self._estimate(model, request)
            if self.spent + self.reserved + estimate > self.budget:
                self.budget_reached = True  # the line stays pending: a rerun (with more budget) sends it
                return
            self.reserved += estimate
        try:
            if self.hook is None:
                await self._process(rid, lineno, request, model)
            else:
                with self.hook.span("gigapy.bulk.item", {"gigapy.bulk.id": rid, "gigapy.bulk.line": lineno,
                                                         "gen_ai.request.model": model}):
                    await self._process(rid, lineno, request, model)
        finally:
            self.reserved -= estimate

    async def _process(self, rid: str, lineno: int, request: dict[str, Any], model: str) -> None:
        attempt = 0
        while True:
            await self.limiter.acquire()
            try:
                result = await self._start(request)
            except _FATAL as exc:
                self.fatal = exc
                return
            except InvalidArgumentError as exc:  # the client refused the request before sending it
                self._write_error(rid, lineno, exc, 0)
                return
            except _RETRYABLE as exc:
                if isinstance(exc, RateLimitError):
                    self.rate_limited += 1
                self.limiter.congestion()
                if _unreached(exc):  # nothing was sent: never recorded as failed, the id stays pending
                    self.unreached += 1
                    if self.unreached >= BREAKER or attempt >= self.retries or self.fatal is not None:
                        self.breaker_open = True
                        if self.fatal is None:
                            self.fatal = exc
                        return
                else:
                    self.unreached = 0
                    if attempt >= self.retries or (not self.repeat and may_have_reached_model(exc)):
                        self.streak += 1
                        if self.streak >= self.max_streak:
                            self.fatal = exc
                        self._write_error(rid, lineno, exc, attempt + 1)
                        self.usage.record(model, error=True)
                        return
                delay = self._delay(exc, attempt)
            except GigaChatError as exc:  # the request itself is wrong: retrying cannot help
                self.streak = self.unreached = 0
                self._write_error(rid, lineno, exc, attempt + 1)
                self.usage.record(model, error=True)
                return
            else:
                self.streak = self.unreached = 0
                client_retries = _retries_of(result)
                if client_retries:
                    self.retried += client_retries
                    self.limiter.congestion()
                else:
                    self.limiter.success()
                self.tokens += self._tokens(result)
                self.usage.record(model, *usage_of(result))
                self.spent += self._cost(model, result)
                self._write_ok(rid, result.model_dump_json(by_alias=True, exclude_unset=True))
                return
            finally:
                self.limiter.release()
            attempt += 1
            self.retried += 1
            await asyncio.sleep(delay)

    def _check_all(self, lines: Iterable[Line]) -> list[tuple[int, Key, InvalidArgumentError]]:
        """(line number, key, error) of every line that cannot be sent, by the client's own checks."""
        kind = self.job.kind
        default_model = self.client._core.settings.model
        refused: list[tuple[int, Key, InvalidArgumentError]] = []
        for lineno, key, request, problem in lines:
            if problem is None and request is not None:
                problem = kind_problem(kind, request)
            if problem is not None or request is None or not isinstance(key, str):
                exc = line_error(lineno, problem)
            else:
                checked = check_request(kind, request, default_model)
                if checked is None:
                    continue
                exc = checked
            refused.append((lineno, key, exc))
            if len(refused) <= 5:
                self.job.warnings.append(f"line {lineno} not sent: {exc}")
        if len(refused) > 5:
            self.job.warnings.append(f"{len(refused) - 5} more lines not sent: see the errors file")
        return refused

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
            if appender is not None:
                await appender.sync()

    async def run(self, stop: asyncio.Event | None) -> bool:
        """Run every pending line; returns True when stopped early by ``stop``."""
        halt = self.halt = asyncio.Event()  # a fatal error or a failed write
        job = self.job

        def pending() -> Iterator[Line]:
            seen: set[Key] = set()
            for line in iter_lines(job.input_path):
                key = line[1]
                if key in job.skip or key in seen:
                    continue
                seen.add(key)
                yield line

        # every line is checked before the first request is sent; the refused go to the errors file first
        refused = await asyncio.to_thread(self._check_all, pending())
        refused_lines = {lineno for lineno, _, _ in refused}
        items = pending()  # shared by the workers: one event loop, so next() is never re-entered

        share = self.share
        # a shared run writes a refused line like any other: only after claiming it
        refused_map = {lineno: (key, exc) for lineno, key, exc in refused} if share is not None else {}

        deferred: deque[Line] = deque()  # shared runs: lines another worker held when we reached them

        free: deque[Line] = deque()  # deferred lines whose claim was given back or lapsed: take them again

        async def prune() -> None:
            """Sort the deferred lines with one batched look at the store (not a claim each): drop the
            finished, move those no live claim holds to ``free``, keep the others deferred. Only the
            tail's one tick calls it, so two looks never overlap."""
            if share is None or not deferred:
                return
            lines = list(deferred)
            states = await share.states([line[1] for line in lines])
            for line, state in zip(lines, states, strict=True):
                if state != "busy":
                    with contextlib.suppress(ValueError):  # another task may have taken it meanwhile
                        deferred.remove(line)
                        if state == "free":
                            free.append(line)

        ticks: list[asyncio.Future[None]] = []  # the tail's current tick, shared by the waiting tasks

        async def look() -> None:
            await asyncio.sleep(0.05)
            await prune()

        async def work() -> None:
            for line in items:
                if await one(line):
                    return
            # ids other workers hold: run them only if their worker gives them back or dies first.
            # The waiting tasks share one tick (a pause, then one batched look at the store), so a
            # short tick costs one call per process and ends the run soon after the fleet's last answer
            while deferred or free:
                if free:
                    if await one(free.popleft()):
                        return
                    continue
                if not ticks or ticks[-1].done():
                    ticks[:] = [asyncio.ensure_future(look())]
                await asyncio.shield(ticks[-1])

        async def one(line: Line) -> bool:
            """Run (or defer) one line; True when the run must stop."""
            lineno, key, request, problem = line
            if share is None and lineno in refused_lines:
                return False  # written before the first request
            if share is not None:
                got = await share.take(key)
                if got != "mine":
                    if got == "busy":
                        deferred.append(line)
                    return False
            if problem is None and request is not None:
                problem = kind_problem(job.kind, request)
            if lineno in refused_map:
                self._write_error(refused_map[lineno][0], lineno, refused_map[lineno][1], 0)
                await asyncio.sleep(0)
            elif problem is not None or request is None or not isinstance(key, str):
                self._write_error(key, lineno, line_error(lineno, problem), 0)
                await asyncio.sleep(0)  # nothing was awaited: let the writes and the other workers run
            else:
                await self.process(key, lineno, request)
            if self.fatal is not None or self.write_failure is not None:
                halt.set()
                return True
            return self.budget_reached  # no new line; those in flight finish and are saved

        written = None if share is None else share.written
        self.out = Appender(job.files.output, self._write_failed, written)
        try:
            self.err = Appender(job.files.errors, self._write_failed, written)
        except BaseException:
            os.close(self.out.fd)
            raise
        for lineno, key, exc in (refused if share is None else ()):  # line by line: a file-size limit
            self._write_error(key, lineno, exc, 0)                      # keeps every whole line before it
            self.err.flush()
            if self.write_failure is not None:
                break
        workers = self.concurrency if self.write_failure is None else 0
        tasks = [asyncio.ensure_future(work()) for _ in range(workers)]
        everything = asyncio.gather(*tasks)
        ticker = asyncio.ensure_future(self._ticker())
        waiters: set[asyncio.Future[Any]] = {everything, ticker, asyncio.ensure_future(halt.wait())}
        if stop is not None:
            waiters.add(asyncio.ensure_future(stop.wait()))
        stopped = False
        try:
            if self.on_progress is not None:
                self.on_progress(self.snapshot())
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            stopped = not everything.done()
            if everything.done():
                everything.result()  # re-raise an unexpected failure
            if ticker.done():
                ticker.result()  # an on_progress callback that raised
        finally:
            for t in [*tasks, *waiters, *ticks]:
                t.cancel()
            await asyncio.gather(*tasks, *waiters, *ticks, return_exceptions=True)
            for appender in (self.out, self.err):
                await appender.aclose()
            if share is not None:
                await share.aclose()
        return stopped and self.fatal is None and self.write_failure is None


def auto_concurrency(client: AsyncGigaChat) -> int:
    """Requests the runner keeps ready by default: four times the account's documented limit
    (at least 16), so the client's gate, which finds the real limit, always has the next one."""
    from ._clients.gate import SCOPE_LIMITS

    if client._fleet is not None:
        return max(16, 2 * client._fleet.ceiling)
    return max(16, 4 * SCOPE_LIMITS.get(client._core.settings.scope, 1))


async def run_batch(
    client: AsyncGigaChat,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    kind: str = "auto",
    concurrency: int | None = None,
    errors_path: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    retries: int = 3,
    on_progress: ProgressCallback | None = None,
    progress_interval: float = 0.5,
    fsync_interval: float = 1.0,
    stop: asyncio.Event | None = None,
    retry_non_idempotent: bool | None = None,
    coordinator: str | Coordinator | None = None,
    job: str | None = None,
    budget_rub: float | None = None,
    prices: PriceTable | None = None,
) -> BatchSummary:
    """Run every line of ``input_path`` that is not done yet, appending to ``output_path``.

    ``kind``: ``chat``, ``embeddings`` or ``auto`` (from the first request). ``concurrency``
    caps requests in flight (the adaptive limit stays at or below it); None (the default) leaves
    the pace to the client's gate, with :func:`auto_concurrency` requests ready. ``retries``: extra
    attempts per request after the client's own retries (429 waits for Retry-After); a
    request that may have reached the model (a 502 or 504, a timeout or a connection lost
    after sending: :func:`~gigapy.errors.may_have_reached_model`) is recorded as failed at
    once, never sent twice, unless ``retry_non_idempotent`` (default: the client's setting).
    Every line is checked with the client's own checks before the first request is sent.
    Requests that cannot connect at all stop the run (a circuit breaker) and are not recorded
    as failed, so a rerun sends them. ``budget_rub`` stops the run before its cost estimate
    (``prices``, default :meth:`~gigapy.usage.PriceTable.default`, for the client's scope) would
    pass that many roubles: lines not sent stay pending (``budget_reached`` in the summary).
    ``on_progress`` gets a :class:`BatchProgress` every ``progress_interval`` seconds.
    Setting ``stop`` ends the run early (what finished is saved). A line that cannot be sent
    goes to the errors file with its line number, and the run goes on. Raises
    :class:`BatchAborted` when every further request would fail (bad credentials, no access,
    TLS, a service that keeps failing), :class:`BatchWriteError` when a file cannot be
    written, and InvalidArgumentError for bad arguments or when another run holds the files.

    ``coordinator`` (a URL or a :class:`gigapy.coordinator.Coordinator`) shares the input with
    other workers: each runs with its own ``output_path``, ids are claimed through the coordinator,
    and every id lands exactly once in the union of the workers' files (``job`` names the shared
    job; by default a digest of the input, the same for every worker). The client's own
    ``coordinator`` setting is what bounds the fleet's concurrency.
    """
    if concurrency is None:
        concurrency = auto_concurrency(client)
    elif isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError("concurrency", f"must be an integer >= 1, or None, got {concurrency!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidArgumentError("retries", f"must be an integer >= 0, got {retries!r}")
    if budget_rub is not None and (isinstance(budget_rub, bool) or not isinstance(budget_rub, (int, float))
                                   or not budget_rub >= 0 or budget_rub == float("inf")):
        raise InvalidArgumentError("budget_rub", f"must be a finite number of roubles >= 0, got {budget_rub!r}")
    with Files(input_path, output_path, errors_path) as files:
        prepared = await asyncio.to_thread(_prepare, files, kind, retry_failed)
        repeat = client._core.policy.retry_non_idempotent if retry_non_idempotent is None else retry_non_idempotent
        runner = _Runner(client, prepared, concurrency, retries, on_progress, progress_interval, fsync_interval,
                         bool(repeat), None if budget_rub is None else float(budget_rub), prices)
        if coordinator is not None:
            runner.share = await _share(coordinator, job, files, prepared)
        if runner.hook is None:
            interrupted = await runner.run(stop)
        else:
            with runner.hook.span(f"gigapy.bulk {prepared.kind}", {"gigapy.bulk.kind": prepared.kind,
                                                                    "gigapy.bulk.concurrency": concurrency}) as span:
                interrupted = await runner.run(stop)
                span.set_attribute("gigapy.bulk.done", runner.done)
                span.set_attribute("gigapy.bulk.failed", runner.failed)
        if runner.errors_dirty and runner.write_failure is None:  # else the next run compacts
            try:
                await asyncio.to_thread(compact_errors, files.errors, prepared.done | runner.recovered)
            except BatchWriteError as failure:
                runner.write_failure = failure
        summary = _summary(runner, prepared, interrupted)
    if on_progress is not None:
        on_progress(summary)
    if runner.write_failure is not None:
        runner.write_failure.summary = summary
        raise runner.write_failure
    if runner.fatal is not None:
        exc = runner.fatal
        if runner.breaker_open:
            raise BatchAborted(f"batch stopped: cannot reach the service: {exc}; the {summary.remaining} requests "
                               "not answered yet are not recorded as failed: rerun the same command once it is "
                               "reachable", summary) from exc
        raise BatchAborted(f"batch stopped: {exc}", summary) from exc
    return summary


async def _share(coordinator: str | Coordinator, name: str | None, files: Files, job: _Job) -> FleetShare:
    """This worker's part of a job shared through ``coordinator``; its finished ids are published."""
    from .coordinator import Coordinator, shared
    from .coordinator._share import FleetShare, job_name

    if isinstance(coordinator, str):
        coordinator = shared(coordinator, field="coordinator")
    elif not isinstance(coordinator, Coordinator):
        raise InvalidArgumentError("coordinator", f"expected a URL or a Coordinator, got {type(coordinator).__name__}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidArgumentError("job", f"expected a non-empty string, got {name!r}")
    share = FleetShare(coordinator, name or job_name(job.input_path), files.output.path, files.errors.path)
    await share.start(job.skip)
    return share


def _summary(runner: _Runner, job: _Job, interrupted: bool) -> BatchSummary:
    aborted = runner.fatal is not None or runner.write_failure is not None
    status = "aborted" if aborted else "budget" if runner.budget_reached else "finished"
    snap = runner.snapshot("interrupted" if interrupted else status)
    usage = runner.usage.as_dict()
    return BatchSummary(**{f: getattr(snap, f) for f in BatchProgress.__dataclass_fields__},
                        output_path=str(job.files.output.shown), errors_path=str(job.files.errors.shown),
                        interrupted=interrupted, duplicate_ids=job.duplicates, warnings=tuple(job.warnings),
                        usage=usage, cost=estimate_cost(usage, runner.scope, runner.prices),
                        budget_reached=runner.budget_reached)


# --- through the service's /batches API ------------------------------------------------------

def write_batch_results(results: Iterable[BatchResult], output_path: str | os.PathLike[str],
                        errors_path: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """Append a finished service batch's results in ``gigapy batch``'s OUTPUT format (failures
    go to the errors file, ``OUTPUT.errors.jsonl`` by default). Ids that already have a line in
    either file are skipped, so writing the same results twice adds nothing. Returns (written
    answers, written failures). Raises :class:`BatchWriteError` when a file cannot be written."""
    with Files(None, output_path, errors_path) as files:
        done, _ = load_output(files.output)
        failed, _ = compact_errors(files.errors, done)
        accounted: set[Key] = {*done, *failed}
        return _write_results(results, files, accounted, set(), {})


def _write_results(results: Iterable[BatchResult], files: Files, accounted: set[Key], succeeded: set[str],
                   lines: Mapping[str, int]) -> tuple[int, int]:
    """Write results whose id is not in ``accounted`` (then add it); ok ids go to ``succeeded``."""
    ok_lines, bad_lines = [], []
    for r in results:
        if r.id in accounted:
            continue
        accounted.add(r.id)
        if r.ok and r.body is not None:
            ok_lines.append(dump_line({"id": r.id, "response": r.body}))
            succeeded.add(r.id)
        else:
            error = r.error or {}
            status = error.get("status", r.status_code)
            message = str(error.get("message") or "the service reported no result for this request")
            item: dict[str, Any] = {"id": r.id}
            if r.id in lines:
                item["line"] = lines[r.id]
            item["error"] = {"class": "BatchRequestError", "status": status, "message": message, "attempts": 1}
            bad_lines.append(dump_line(item))
    for file, chunk in ((files.output, ok_lines), (files.errors, bad_lines)):
        if chunk:
            append_file(file.path, b"".join(chunk), file.shown)
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
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise BatchWriteError(path, exc, action="remove") from exc
        return
    atomic_write(path, json.dumps({"batches": batches}, ensure_ascii=False).encode("utf-8"))


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
    batches instead of paying twice. Results are written in the same OUTPUT format; lines
    that cannot be sent go to the errors file with their line number and are not submitted.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError("batch_size", f"must be an integer >= 1, got {batch_size!r}")
    started = time.monotonic()
    succeeded: set[str] = set()
    interrupted = False
    rejected = 0
    with Files(input_path, output_path, errors_path) as files:
        job = await asyncio.to_thread(_prepare, files, kind, retry_failed)
        ok_total, bad_total = job.progress.done, job.progress.failed

        def summarize(status: str) -> BatchSummary:
            return BatchSummary(total=job.total, done=ok_total, failed=bad_total, skipped=job.progress.skipped,
                                elapsed=time.monotonic() - started,
                                completed_this_run=ok_total + bad_total - job.progress.finished - rejected,
                                status=status, rejected=rejected, output_path=str(files.output.shown),
                                errors_path=str(files.errors.shown), interrupted=status == "interrupted",
                                duplicate_ids=job.duplicates, warnings=tuple(job.warnings))

        method = "chat_completions" if job.kind == "chat" else "embedder"
        state_path = _state_path(files.output.path)
        accounted: set[Key] = set(job.skip)
        saved = _load_state(state_path)
        submitted: set[Key] = {rid for b in saved for rid in b.get("ids", [])}
        pending: list[tuple[str, dict[str, Any]]] = []
        line_of: dict[str, int] = {}
        refused: list[bytes] = []
        stale_refusals = False  # a line refused again: its older record goes
        for lineno, key, request, problem in iter_lines(job.input_path):
            if key in accounted or key in submitted:
                continue
            if problem is None and request is not None:
                problem = kind_problem(job.kind, request)
            checked = None
            if problem is None and request is not None and isinstance(key, str):
                checked = check_request(job.kind, request, client._core.settings.model)
            if problem is not None or request is None or not isinstance(key, str) or checked is not None:
                refused.append(_error_line(key, lineno, checked or line_error(lineno, problem), 0))
                accounted.add(key)
                stale_refusals = stale_refusals or key in job.failed
                continue
            submitted.add(key)
            line_of[key] = lineno
            pending.append((key, request))
        try:
            if refused:
                await asyncio.to_thread(append_file, files.errors.path, b"".join(refused), files.errors.shown)
                if stale_refusals:
                    await asyncio.to_thread(compact_errors, files.errors, job.done)
                rejected = len(refused)
                bad_total += rejected
            for start in range(0, len(pending), batch_size):
                chunk = pending[start:start + batch_size]
                body = b"".join(dump_line({"id": rid, "request": req}) for rid, req in chunk)
                batch = await client.create_batch(body, method=method)
                saved.append({"id": batch.id, "ids": [rid for rid, _ in chunk]})
                try:  # before polling: a crash must not resubmit
                    await asyncio.to_thread(_save_state, state_path, saved)
                except BatchWriteError as exc:
                    exc.message += (f"; batch {batch.id} was submitted but not recorded: once the disk is fixed, "
                                    f"run `gigapy batches results {batch.id} -o {files.output.shown}` before "
                                    "rerunning, or its lines are submitted again")
                    raise
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
                        ok, bad = await asyncio.to_thread(_write_results, results, files, accounted, succeeded,
                                                          line_of)
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
                                        elapsed=time.monotonic() - started, in_flight=len(saved), rejected=rejected,
                                        completed_this_run=finished - job.progress.finished - rejected,
                                        status="polling"))
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
                await asyncio.to_thread(compact_errors, files.errors, job.done | succeeded)
        except BatchWriteError as exc:
            exc.summary = summarize("aborted")
            raise
    summary = summarize("interrupted" if interrupted else "finished")
    if on_progress is not None:
        on_progress(summary)
    return summary
