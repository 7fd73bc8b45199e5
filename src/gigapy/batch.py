"""Bulk runs that lose nothing: thousands to millions of chat or embeddings requests.

INPUT is JSONL in the service's own batch format, one ``{"id": "...", "request": {...}}``
per line (``request`` is the body of ``/chat/completions`` or ``/embeddings``). OUTPUT
gets one ``{"id": ..., "response": {...}}`` line per finished request, appended and
flushed as each one finishes; requests that still fail after retries, and input lines that
cannot be sent (not JSON, no usable id, text that UTF-8 cannot encode, an argument the
client rejects), go to the errors file (``OUTPUT.errors.jsonl``) as ``{"id": ..., "line": N,
"error": {"class", "status", "message", "request_id", ...}}``; nothing is sent for a bad line.

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
import errno
import json
import logging
import math
import os
import random
import re
import stat
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

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
    "BatchWriteError",
    "default_errors_path",
    "detect_kind",
    "run_batch",
    "run_via_batches_api",
    "write_batch_results",
]

log = logging.getLogger("gigapy.batch")

Kind = Literal["chat", "embeddings"]
ProgressCallback = Callable[["BatchProgress"], None]
#: What a line is accounted under: its id, or its line number when it has no usable id.
Key: TypeAlias = str | int
#: (field, reason) of an input line that cannot be sent.
Problem: TypeAlias = tuple[str, str]
#: (line number, key, request or None, problem or None) of one input line.
Line: TypeAlias = tuple[int, Key, dict[str, Any] | None, Problem | None]

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (with rate and counts)."""
        return {
            "total": self.total, "done": self.done, "failed": self.failed, "skipped": self.skipped,
            "remaining": self.remaining, "rejected": self.rejected, "tokens": self.tokens,
            "elapsed": round(self.elapsed, 3), "cpu_seconds": round(self.cpu_seconds, 3),
            "requests_per_second": round(self.requests_per_second, 2), "retries": self.retries,
            "rate_limited": self.rate_limited, "interrupted": self.interrupted, "output": self.output_path,
            "errors": self.errors_path, "duplicate_ids": list(self.duplicate_ids), "warnings": list(self.warnings),
        }


class BatchAborted(GigaChatError):
    """The run stopped because every further request would fail too (bad credentials, no access,
    TLS failure, a service that keeps failing). Everything finished is saved; ``summary`` tells
    how far it got and ``__cause__`` is the error that stopped it."""

    def __init__(self, message: str, summary: BatchSummary) -> None:
        super().__init__(message)
        self.summary = summary


class BatchWriteError(GigaChatError):
    """OUTPUT, the errors file or a state file of the run could not be written (disk full, file too
    large, I/O error, no permission). The run stopped at once; every line before the failure is
    whole and kept, so a rerun after the cause is fixed resumes exactly once.

    ``path`` is the file, ``os_error`` (also ``__cause__``) the OSError, and ``summary`` the
    counts of the run (None when it failed before the first request)."""

    def __init__(self, path: str | os.PathLike[str], os_error: OSError, *, action: str = "write",
                 note: str = "") -> None:
        code = errno.errorcode.get(os_error.errno or 0)
        what = os_error.strerror or str(os_error)
        super().__init__(f"cannot {action} {path}: {what}{f' ({code})' if code else ''}{note}")
        self.path = str(path)
        self.os_error = os_error
        self.summary: BatchSummary | None = None
        self.__cause__ = os_error


# --- input lines -------------------------------------------------------------------------------

def default_errors_path(output_path: str | os.PathLike[str]) -> Path:
    """``answers.jsonl`` -> ``answers.errors.jsonl`` (other names get ``.errors.jsonl`` appended)."""
    out = Path(output_path)
    if out.suffix == ".jsonl":
        return out.with_suffix(".errors.jsonl")
    return out.with_name(out.name + ".errors.jsonl")


def _non_finite(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large for a JSON number")
    return value


#: Standard JSON only: NaN, Infinity and 1e999 are refused (they would go on the wire as invalid JSON).
_strict_json = json.JSONDecoder(parse_constant=_non_finite, parse_float=_finite_float)
#: A JSON escape of a UTF-16 surrogate: only such a line can hold text that UTF-8 cannot encode.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return "an array" if isinstance(value, list) else "an object"


def _lone_surrogate(text: str) -> int | None:
    """Index of the first character UTF-8 cannot encode (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _surrogate_reason(text: str, index: int) -> str:
    return (f"contains a lone surrogate U+{ord(text[index]):04X} at character {index + 1}: text that cannot be "
            "encoded as UTF-8 (was it cut in the middle of a character?)")


def _unencodable(value: Any) -> Problem | None:
    """(path, reason) of the first string or key in ``value`` that UTF-8 cannot encode, or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:  # iterative: a deeply nested line must not overflow the stack
        where, item = stack.pop()
        if isinstance(item, str):
            index = _lone_surrogate(item)
            if index is not None:
                return where, _surrogate_reason(item, index)
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                index = _lone_surrogate(key)
                if index is not None:
                    return (where or "line"), "a key " + _surrogate_reason(key, index)
                children.append((f"{where}.{key}" if where else key, child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{where}[{i}]", child) for i, child in enumerate(item)]))
    return None


def _parse_line(raw: bytes, lineno: int) -> Line:
    """(line number, key, request, problem) of one non-blank input line; ``problem`` is None
    for a line that can be sent. A line without a usable id is keyed by its line number."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        return lineno, lineno, None, ("line", f"contains a NUL byte (column {nul + 1}); is the file UTF-16 or "
                                              "binary? save it as UTF-8 JSONL")
    try:
        text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return lineno, lineno, None, ("line", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                                              f"{exc.start + 1}); save the file as UTF-8")
    try:
        item = _strict_json.decode(text)
    except json.JSONDecodeError as exc:
        return lineno, lineno, None, ("line", f"not valid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return lineno, lineno, None, ("line", "not valid JSON here: nested too deeply")
    except ValueError as exc:  # NaN, Infinity, 1e999, an integer of more than 4300 digits
        return lineno, lineno, None, ("line", f"not valid JSON: {exc}")
    if not isinstance(item, dict):
        return lineno, lineno, None, ("line", 'expected a JSON object {"id": "...", "request": {...}}, got '
                                              + _json_type(item))
    rid = item.get("id")
    if not isinstance(rid, str) or not rid:
        got = "it is missing" if "id" not in item else f"got {_json_type(rid)}"
        return lineno, lineno, None, ("id", f"must be a non-empty string; {got}")
    if _SURROGATE_ESCAPE.search(raw) is not None:
        index = _lone_surrogate(rid)
        if index is not None:
            return lineno, lineno, None, ("id", _surrogate_reason(rid, index))
        bad = _unencodable(item)
        if bad is not None:
            return lineno, rid, None, bad
    request = item.get("request")
    if not isinstance(request, dict):
        got = "it is missing" if "request" not in item else f"got {_json_type(request)}"
        return lineno, rid, None, ("request", f"must be an object, the body of /chat/completions or /embeddings; "
                                              f"{got}")
    return lineno, rid, request, None


def _iter_lines(path: Path) -> Iterator[Line]:
    """Every non-blank line of an INPUT file, parsed (bad lines too: they carry their problem)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    except FileNotFoundError:
        raise InvalidArgumentError("input", f"file not found: {path}") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if raw.strip():
                yield _parse_line(raw, lineno)


def _kind_of(request: Mapping[str, Any]) -> Kind | None:
    if "messages" in request:
        return "chat"
    if "input" in request:
        return "embeddings"
    return None


def _kind_problem(kind: Kind, request: Mapping[str, Any]) -> Problem | None:
    if kind == "chat" and "messages" not in request:
        return "request.messages", 'a chat request needs "messages"'
    if kind == "embeddings" and "input" not in request:
        return "request.input", 'an embeddings request needs "input"'
    return None


def _problem_text(problem: Problem) -> str:
    name, reason = problem
    return reason if name == "line" else f"{name}: {reason}"


def _line_error(lineno: int, problem: Problem | None) -> InvalidArgumentError:
    """The error recorded for an input line that is not sent."""
    name, reason = problem or ("line", "no request")
    return InvalidArgumentError(f"line {lineno}" if name == "line" else name, reason)


def detect_kind(input_path: str | os.PathLike[str]) -> Kind:
    """``chat`` or ``embeddings``, from the first request of a JSONL file."""
    path = Path(input_path)
    for lineno, _, request, problem in _iter_lines(path):
        if problem is not None or request is None:
            raise InvalidArgumentError(f"{path}:{lineno}", _problem_text(problem or ("line", "no request")))
        kind = _kind_of(request)
        if kind is None:
            raise InvalidArgumentError(f"{path}:{lineno}", 'cannot tell the kind: the request has neither "messages" '
                                                           "nor \"input\"; pass kind='chat' or 'embeddings'")
        return kind
    raise InvalidArgumentError("input", f"no requests in {path}")


@dataclass
class _Scan:
    kind: Kind | None = None
    requests: int = 0  # lines with a request object
    keys: set[Key] = field(default_factory=set)
    duplicates: list[str] = field(default_factory=list)


def _scan_input(path: Path) -> _Scan:
    """Count the keys of INPUT and find its kind and duplicate ids (the first line of an id wins)."""
    scan = _Scan()
    keys = scan.keys
    for _, key, request, _ in _iter_lines(path):
        if key in keys:
            scan.duplicates.append(str(key))
            continue
        keys.add(key)
        if request is not None:
            scan.requests += 1
            if scan.kind is None:
                scan.kind = _kind_of(request)
    if not keys:
        raise InvalidArgumentError("input", f"no requests in {path}")
    return scan


# --- files: checked writes, locks on the files themselves ----------------------------------------

def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` (a short write is continued; the error that ends it is raised)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - a regular file reports an error instead
            raise OSError(errno.EIO, "the write made no progress")
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: some file systems cannot fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _try_lock(fd: int, shown: Path, what: str) -> bool:
    """An exclusive, non-blocking flock on ``fd``; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # a file system without locks: refuse rather than risk two writers
        raise InvalidArgumentError(what, f"cannot lock {shown}: {exc.strerror or exc}; put it on a local disk") \
            from None
    return True


def _same_inode(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


class _LockedFile:
    """One results file, opened and exclusively locked: the flock is on the file itself, so
    every path that names it (symlink, hard link, relative or absolute) meets the same lock."""

    def __init__(self, path: Path, what: str) -> None:
        self.shown = path  # as the caller named it (for messages)
        self.what = what  # the argument it came from (for errors): "output" or "errors"
        self.path = Path(os.path.realpath(path))  # where it really is (renames go here, not over a symlink)
        self.fd = -1
        self.created = False

    def acquire(self) -> None:
        for _ in range(20):
            self.created = False
            try:
                try:
                    fd = os.open(self.path, os.O_RDWR)
                except FileNotFoundError:
                    try:
                        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                    except FileExistsError:
                        continue
                    self.created = True
            except OSError as exc:
                raise BatchWriteError(self.shown, exc, action="open") from exc
            if not _try_lock(fd, self.shown, self.what):
                os.close(fd)
                raise InvalidArgumentError(self.what, f"another run is writing {self.shown} "
                                                      "(wait for it, or stop it first)")
            if _same_inode(fd, self.path):  # not replaced or removed between open() and flock()
                self.fd = fd
                return
            os.close(fd)
        raise InvalidArgumentError(self.what, f"{self.shown} keeps being replaced; is another program writing it?")

    def release(self) -> None:
        """Unlock (a file this run created and left empty is removed first)."""
        if self.fd < 0:
            return
        if self.created:
            with contextlib.suppress(OSError):
                if os.fstat(self.fd).st_size == 0 and _same_inode(self.fd, self.path):
                    os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1

    def truncate(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            raise BatchWriteError(self.shown, exc, action="repair") from exc

    def replace(self, chunks: Iterable[bytes]) -> None:
        """Replace the content atomically (temporary file, fsync, rename); the new file is locked
        before it appears under the name."""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as exc:
            raise BatchWriteError(self.shown, exc) from exc
        try:
            _try_lock(fd, self.shown, self.what)
            with contextlib.suppress(OSError):
                os.fchmod(fd, stat.S_IMODE(os.fstat(self.fd).st_mode))
            for chunk in chunks:
                _write_all(fd, chunk)
            os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise BatchWriteError(self.shown, exc) from exc
            raise
        _fsync_dir(self.path.parent)
        # The old version can go (and free its space): a process that opened it before the rename
        # and locks it now finds that the name no longer leads to it, and retries on the new file.
        os.close(self.fd)
        self.fd = fd


def _append_file(path: Path, data: bytes, shown: Path | None = None) -> None:
    """Append ``data`` and fsync; on failure cut the file back to where it was and raise."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise BatchWriteError(shown or path, exc, action="open") from exc
    try:
        size = os.fstat(fd).st_size
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as exc:
            note = ""
            try:
                os.ftruncate(fd, size)
            except OSError:
                note = "; a partial line may remain at its end (a rerun cuts it)"
            raise BatchWriteError(shown or path, exc, note=note) from exc
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace a small file atomically (temporary file, fsync, rename)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BatchWriteError(path, exc) from exc
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise BatchWriteError(path, exc) from exc
        raise
    _fsync_dir(path.parent)


def _identity(path: Path) -> object:
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return st.st_dev, st.st_ino


class _Files:
    """The INPUT, OUTPUT and errors files of one run; OUTPUT and the errors file are locked."""

    def __init__(self, input_path: str | os.PathLike[str] | None, output_path: str | os.PathLike[str],
                 errors_path: str | os.PathLike[str] | None) -> None:
        self.input = Path(input_path) if input_path is not None else None
        out = Path(output_path)
        if errors_path is not None:
            errs = Path(errors_path)
        else:  # next to the real file, so every path to one OUTPUT shares one errors file
            real = Path(os.path.realpath(out))
            errs = default_errors_path(out if real == Path(os.path.abspath(out)) else real)
        self.output = _LockedFile(out, "output")
        self.errors = _LockedFile(errs, "errors")

    def __enter__(self) -> _Files:
        if self.input is not None and not self.input.is_file():
            raise InvalidArgumentError("input", f"file not found: {self.input}")
        for file in (self.output, self.errors):
            if not file.path.parent.is_dir():
                raise InvalidArgumentError(file.what, f"directory does not exist: {file.shown.parent}")
        named = [self.output.shown, self.errors.shown, *([self.input] if self.input is not None else [])]
        if len({_identity(p) for p in named}) != len(named):
            raise InvalidArgumentError("output", "input, output and errors files must be different files")
        self.output.acquire()
        try:
            self.errors.acquire()
        except BaseException:
            self.output.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.errors.release()
        self.output.release()


# --- reading results back ----------------------------------------------------------------------

def _from_json(raw: bytes) -> Any:
    from pydantic_core import from_json  # a dependency of the client already; imported when first needed

    globals()["_from_json"] = from_json
    return from_json(raw)


def _result_key(raw: bytes, errors: bool) -> Key | None:
    """The key of a whole, valid result line, else None. OUTPUT lines are ``{"id": str,
    "response": {...}}``; errors-file lines ``{"id": str, "error": {...}}`` or, for an input
    line without a usable id, ``{"id": null, "line": N, "error": {...}}``."""
    if not raw.endswith(b"\n"):
        return None
    try:
        item = _from_json(raw)  # pydantic-core's parser: a full decode in half the time of json's
    except ValueError:
        try:  # what it refuses and JSON allows (an escaped lone surrogate, nesting deeper than 200)
            item = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return None
    if not isinstance(item, dict):
        return None
    rid = item.get("id")
    if errors:
        if not isinstance(item.get("error"), dict):
            return None
        if rid is None:
            line = item.get("line")
            return line if type(line) is int and line > 0 else None
    elif not isinstance(item.get("response"), dict):
        return None
    return rid if isinstance(rid, str) and rid and _lone_surrogate(rid) is None else None


def _corrupt_path(file: _LockedFile) -> Path:
    return file.path.with_name(file.path.name + ".corrupt")


def _set_aside(file: _LockedFile, bad: list[tuple[int, int, bytes, str]], remove: Callable[[], None]) -> str:
    """Move the bad lines to ``FILE.corrupt`` (kept, never lost): append them there first, then
    ``remove`` them from the file; if that fails, the copies are taken back. Returns the warning."""
    target = _corrupt_path(file)
    try:
        before = os.stat(target).st_size
    except FileNotFoundError:
        before = None
    _append_file(target, b"".join(raw for _, _, raw, _ in bad))
    try:
        remove()
    except BaseException:
        with contextlib.suppress(OSError):
            if before is None:
                os.unlink(target)
            else:
                os.truncate(target, before)
        raise
    shown = "; ".join(f"line {lineno}: {reason}" for lineno, _, _, reason in bad[:5])
    more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
    text = (f"{file.shown}: {len(bad)} line(s) that are not whole result lines moved to {target} "
            f"({shown}{more}); ids without a whole line run again")
    log.warning("%s", text)
    return text


def _copy_lines(path: Path, skip: set[int]) -> Iterator[bytes]:
    """The whole lines of ``path`` whose start offset is not in ``skip``, in chunks."""
    chunk: list[bytes] = []
    size = offset = 0
    with open(path, "rb") as fh:
        for raw in fh:
            if offset not in skip and raw.endswith(b"\n"):
                chunk.append(raw)
                size += len(raw)
                if size >= 1 << 20:
                    yield b"".join(chunk)
                    chunk, size = [], 0
            offset += len(raw)
    if chunk:
        yield b"".join(chunk)


def _load_output(file: _LockedFile) -> tuple[set[str], list[str]]:
    """The ids with a whole, valid line in OUTPUT, and warnings. A torn last line is cut off;
    any other line that is not a whole result line (or repeats an id) moves to ``OUTPUT.corrupt``."""
    done: set[str] = set()
    bad: list[tuple[int, int, bytes, str]] = []  # (line number, offset, line, reason)
    keep_end = offset = 0
    with open(file.path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            end = offset + len(raw)
            if not raw.endswith(b"\n"):
                pass  # the torn tail of an interrupted write: only the last line can lack its newline
            elif not raw.strip():
                keep_end = end
            else:
                key = _result_key(raw, errors=False)
                if key is None:
                    bad.append((lineno, offset, raw, "not a whole result line"))
                elif key in done:
                    bad.append((lineno, offset, raw, f"a second line for id {key!r}"))
                else:
                    assert isinstance(key, str)
                    done.add(key)
                    keep_end = end
            offset = end
    if not bad:
        if keep_end < offset:
            file.truncate(keep_end)
        return done, []
    if bad[0][1] >= keep_end:  # every bad line comes after the last good one: cut them off in place
        warning = _set_aside(file, bad, lambda: file.truncate(keep_end))
    else:
        warning = _set_aside(file, bad, lambda: file.replace(_copy_lines(file.path, {off for _, off, _, _ in bad})))
    return done, [warning]


def _compact_errors(file: _LockedFile, done: set[str], bad_lines: set[Key] | None = None) -> tuple[set[Key], list[str]]:
    """Keep one (the latest) error line per key not in ``done``; returns the keys left and
    warnings. Lines that are not whole error lines move to ``ERRORS.corrupt``. With
    ``bad_lines`` (the keys of INPUT), the record of a line without a usable id goes once that
    line is no longer such a line."""
    latest: dict[Key, bytes] = {}
    bad: list[tuple[int, int, bytes, str]] = []
    lines = offset = 0
    torn = False
    with open(file.path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                torn = True
            elif raw.strip():
                key = _result_key(raw, errors=True)
                if key is None:
                    bad.append((lineno, offset, raw, "not a whole error line"))
                else:
                    lines += 1
                    latest.pop(key, None)
                    if key not in done and (bad_lines is None or isinstance(key, str) or key in bad_lines):
                        latest[key] = raw
            else:
                lines += 1  # a blank line: dropped by the rewrite
            offset += len(raw)
    def rewrite() -> None:
        file.replace(list(latest.values()))

    warnings: list[str] = []
    if bad:
        warnings.append(_set_aside(file, bad, rewrite))
    elif torn or lines != len(latest):
        rewrite()
    return set(latest), warnings


def _dump_line(item: Mapping[str, Any]) -> bytes:
    try:
        return (json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (say, in a server's message): escape it, keep the line valid
        return (json.dumps(item, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


class _Appender:
    """Appends result lines to one locked file: the lines finished in one event-loop turn go out
    in one write at the end of that turn. Every write is checked: a short write is continued, and
    an error cuts the file back to its last whole line, keeps the unwritten lines pending (they
    are not counted) and reports the failure, which stops the run."""

    def __init__(self, file: _LockedFile, on_failure: Callable[[BatchWriteError], None]) -> None:
        self.file = file
        try:
            self.fd = os.open(file.path, os.O_WRONLY | os.O_APPEND)
            self.size = os.fstat(self.fd).st_size  # the end of the last whole line
        except OSError as exc:
            raise BatchWriteError(file.shown, exc, action="open") from exc
        self._pending: list[bytes] = []
        self._pending_rejected = 0
        self.dirty = False
        self.failure: BatchWriteError | None = None
        self._on_failure = on_failure
        self._syncing: asyncio.Future[None] | None = None

    def add(self, line: bytes, rejected: bool = False) -> None:
        if not self._pending and self.failure is None:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(line)
        if rejected:
            self._pending_rejected += 1

    @property
    def lost(self) -> int:
        """Lines that were never written because a write failed."""
        return len(self._pending) if self.failure is not None else 0

    @property
    def lost_rejected(self) -> int:
        return self._pending_rejected if self.failure is not None else 0

    def flush(self) -> None:
        pending = self._pending
        if not pending or self.failure is not None:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        try:
            _write_all(self.fd, data)
        except OSError as exc:
            self._fail(exc, cut=True)
            return
        pending.clear()  # only now: a failed write keeps its lines out of the counts
        self._pending_rejected = 0
        self.size += len(data)
        self.dirty = True

    def _fail(self, exc: OSError, *, cut: bool) -> None:
        note = ""
        if cut:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                note = "; a partial line may remain at its end (a rerun cuts it)"
        else:
            note = "; the lines written since the last fsync may not be on the disk"
        if self.failure is None:
            self.failure = BatchWriteError(self.file.shown, exc, action="write" if cut else "fsync", note=note)
            self._on_failure(self.failure)

    async def sync(self) -> None:
        """fsync in a worker thread (the event loop never waits for the disk); a failure stops the run."""
        if not self.dirty or self.failure is not None or self._syncing is not None:
            return
        self.dirty = False
        self._syncing = asyncio.get_running_loop().run_in_executor(None, os.fsync, self.fd)
        try:
            await asyncio.shield(self._syncing)
        except OSError as exc:
            self._fail(exc, cut=False)
        finally:
            if self._syncing.done():
                self._syncing = None

    async def aclose(self) -> None:
        """Write what is pending, fsync, close (after an fsync still running from a cancelled tick)."""
        if self._syncing is not None:
            try:
                await self._syncing
            except OSError as exc:
                self._fail(exc, cut=False)
            self._syncing = None
        self.flush()
        await self.sync()
        os.close(self.fd)


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
    return _dump_line(item)


@dataclass
class _Job:
    """Paths, the ids already accounted for, and the counters shared by a run."""

    input_path: Path
    files: _Files
    kind: Kind
    total: int
    duplicates: tuple[str, ...]
    done: set[str]
    failed: set[Key]
    skip: set[Key]
    progress: BatchProgress
    warnings: list[str]


def _prepare(files: _Files, kind: str, retry_failed: bool) -> _Job:
    """Scan INPUT, repair OUTPUT and the errors file, and work out what is left to run."""
    if kind not in ("auto", "chat", "embeddings"):
        raise InvalidArgumentError("kind", f"expected 'chat', 'embeddings' or 'auto', got {kind!r}")
    assert files.input is not None
    scan = _scan_input(files.input)
    if kind == "auto" and scan.kind is None and scan.requests:
        raise InvalidArgumentError("kind", 'cannot tell chat from embeddings (no "messages" or "input" in any '
                                           "request); pass kind='chat' or 'embeddings'")
    chosen: Kind = (scan.kind or "chat") if kind == "auto" else ("chat" if kind == "chat" else "embeddings")
    in_output, warnings = _load_output(files.output)
    done = {rid for rid in in_output if rid in scan.keys}
    remaining, more = _compact_errors(files.errors, done, scan.keys)
    warnings += more
    failed = {key for key in remaining if key in scan.keys}
    skip: set[Key] = set(done) if retry_failed else {*done, *failed}
    counted_failed = 0 if retry_failed else len(failed)
    progress = BatchProgress(total=len(scan.keys), done=len(done), failed=counted_failed,
                             skipped=len(done) + counted_failed)
    return _Job(files.input, files, chosen, len(scan.keys), tuple(scan.duplicates), done, failed, skip, progress,
                warnings)


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
        self.out: _Appender | None = None
        self.err: _Appender | None = None
        self.halt: asyncio.Event | None = None

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
        self.out.add(f'{{"id":{_encode_str(rid)},"response":{response_json}}}\n'.encode())
        self.done += 1
        self.completed += 1
        if rid in self.job.failed:
            self.recovered.add(rid)  # its old error line goes when the errors file is compacted
            self.errors_dirty = True

    def _write_error(self, key: Key, lineno: int, exc: BaseException, attempts: int) -> None:
        assert self.err is not None
        sent = attempts > 0
        self.err.add(_error_line(key, lineno, exc, attempts), rejected=not sent)
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

    async def process(self, rid: str, lineno: int, request: dict[str, Any]) -> None:
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
                if attempt >= self.retries:
                    self.streak += 1
                    if self.streak >= self.max_streak:
                        self.fatal = exc
                    self._write_error(rid, lineno, exc, attempt + 1)
                    return
                delay = self._delay(exc, attempt)
            except GigaChatError as exc:  # the request itself is wrong: retrying cannot help
                self.streak = 0
                self._write_error(rid, lineno, exc, attempt + 1)
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
            if appender is not None:
                await appender.sync()

    async def run(self, stop: asyncio.Event | None) -> bool:
        """Run every pending line; returns True when stopped early by ``stop``."""
        halt = self.halt = asyncio.Event()  # a fatal error or a failed write
        job = self.job

        def pending() -> Iterator[Line]:
            seen: set[Key] = set()
            for line in _iter_lines(job.input_path):
                key = line[1]
                if key in job.skip or key in seen:
                    continue
                seen.add(key)
                yield line

        items = pending()  # shared by the workers: one event loop, so next() is never re-entered

        async def work() -> None:
            for lineno, key, request, problem in items:
                if problem is None and request is not None:
                    problem = _kind_problem(job.kind, request)
                if problem is not None or request is None or not isinstance(key, str):
                    self._write_error(key, lineno, _line_error(lineno, problem), 0)
                    await asyncio.sleep(0)  # nothing was awaited: let the writes and the other workers run
                else:
                    await self.process(key, lineno, request)
                if self.fatal is not None or self.write_failure is not None:
                    halt.set()
                    return

        self.out = _Appender(job.files.output, self._write_failed)
        try:
            self.err = _Appender(job.files.errors, self._write_failed)
        except BaseException:
            os.close(self.out.fd)
            raise
        tasks = [asyncio.ensure_future(work()) for _ in range(self.concurrency)]
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
            for t in [*tasks, *waiters]:
                t.cancel()
            await asyncio.gather(*tasks, *waiters, return_exceptions=True)
            for appender in (self.out, self.err):
                await appender.aclose()
        return stopped and self.fatal is None and self.write_failure is None


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
    """Run every line of ``input_path`` that is not done yet, appending to ``output_path``.

    ``kind``: ``chat``, ``embeddings`` or ``auto`` (from the first request). ``concurrency``
    caps requests in flight (the adaptive limit stays at or below it). ``retries``: extra
    attempts per request after the client's own retries (429 waits for Retry-After).
    ``on_progress`` gets a :class:`BatchProgress` every ``progress_interval`` seconds.
    Setting ``stop`` ends the run early (what finished is saved). A line that cannot be sent
    goes to the errors file with its line number, and the run goes on. Raises
    :class:`BatchAborted` when every further request would fail (bad credentials, no access,
    TLS, a service that keeps failing), :class:`BatchWriteError` when a file cannot be
    written, and InvalidArgumentError for bad arguments or when another run holds the files.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError("concurrency", f"must be an integer >= 1, got {concurrency!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidArgumentError("retries", f"must be an integer >= 0, got {retries!r}")
    with _Files(input_path, output_path, errors_path) as files:
        job = await asyncio.to_thread(_prepare, files, kind, retry_failed)
        runner = _Runner(client, job, concurrency, retries, on_progress, progress_interval, fsync_interval)
        interrupted = await runner.run(stop)
        if runner.errors_dirty and runner.write_failure is None:  # else the next run compacts
            try:
                await asyncio.to_thread(_compact_errors, files.errors, job.done | runner.recovered)
            except BatchWriteError as failure:
                runner.write_failure = failure
        summary = _summary(runner, job, interrupted)
    if on_progress is not None:
        on_progress(summary)
    if runner.write_failure is not None:
        runner.write_failure.summary = summary
        raise runner.write_failure
    if runner.fatal is not None:
        exc = runner.fatal
        raise BatchAborted(f"batch stopped: {exc}", summary) from exc
    return summary


def _summary(runner: _Runner, job: _Job, interrupted: bool) -> BatchSummary:
    aborted = runner.fatal is not None or runner.write_failure is not None
    snap = runner.snapshot("interrupted" if interrupted else ("aborted" if aborted else "finished"))
    return BatchSummary(**{f: getattr(snap, f) for f in BatchProgress.__dataclass_fields__},
                        output_path=str(job.files.output.shown), errors_path=str(job.files.errors.shown),
                        interrupted=interrupted, duplicate_ids=job.duplicates, warnings=tuple(job.warnings))


# --- through the service's /batches API ------------------------------------------------------

def write_batch_results(results: Iterable[BatchResult], output_path: str | os.PathLike[str],
                        errors_path: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """Append a finished service batch's results in ``gigapy batch``'s OUTPUT format (failures
    go to the errors file, ``OUTPUT.errors.jsonl`` by default). Ids that already have a line in
    either file are skipped, so writing the same results twice adds nothing. Returns (written
    answers, written failures). Raises :class:`BatchWriteError` when a file cannot be written."""
    with _Files(None, output_path, errors_path) as files:
        done, _ = _load_output(files.output)
        failed, _ = _compact_errors(files.errors, done)
        accounted: set[Key] = {*done, *failed}
        return _write_results(results, files, accounted, set(), {})


def _write_results(results: Iterable[BatchResult], files: _Files, accounted: set[Key], succeeded: set[str],
                   lines: Mapping[str, int]) -> tuple[int, int]:
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
            item: dict[str, Any] = {"id": r.id}
            if r.id in lines:
                item["line"] = lines[r.id]
            item["error"] = {"class": "BatchRequestError", "status": status, "message": message, "attempts": 1}
            bad_lines.append(_dump_line(item))
    for file, chunk in ((files.output, ok_lines), (files.errors, bad_lines)):
        if chunk:
            _append_file(file.path, b"".join(chunk), file.shown)
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
    _atomic_write(path, json.dumps({"batches": batches}, ensure_ascii=False).encode("utf-8"))


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
    with _Files(input_path, output_path, errors_path) as files:
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
        for lineno, key, request, problem in _iter_lines(job.input_path):
            if key in accounted or key in submitted:
                continue
            if problem is None and request is not None:
                problem = _kind_problem(job.kind, request)
            if problem is not None or request is None or not isinstance(key, str):
                refused.append(_error_line(key, lineno, _line_error(lineno, problem), 0))
                accounted.add(key)
                continue
            submitted.add(key)
            line_of[key] = lineno
            pending.append((key, request))
        try:
            if refused:
                await asyncio.to_thread(_append_file, files.errors.path, b"".join(refused), files.errors.shown)
                rejected = len(refused)
                bad_total += rejected
            for start in range(0, len(pending), batch_size):
                chunk = pending[start:start + batch_size]
                body = b"".join(_dump_line({"id": rid, "request": req}) for rid, req in chunk)
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
                await asyncio.to_thread(_compact_errors, files.errors, job.done | succeeded)
        except BatchWriteError as exc:
            exc.summary = summarize("aborted")
            raise
    summary = summarize("interrupted" if interrupted else "finished")
    if on_progress is not None:
        on_progress(summary)
    return summary
