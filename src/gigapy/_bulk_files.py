"""The files of a bulk run: checked writes, locks on the files themselves, and reading results back.

Every write goes through one loop that continues a short write and raises the error that ends
it; a failed append cuts the file back to its last whole line. OUTPUT and the errors file are
flock'ed on their own descriptors, so every path to a file meets the same lock. Reading back
trusts only whole, valid result lines; anything else is moved aside to ``FILE.corrupt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._bulk_lines import Key, lone_surrogate
from .errors import BatchWriteError as BatchWriteError  # its old home
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    pass

log = logging.getLogger("gigapy.batch")


def default_errors_path(output_path: str | os.PathLike[str]) -> Path:
    """``answers.jsonl`` -> ``answers.errors.jsonl`` (other names get ``.errors.jsonl`` appended)."""
    out = Path(output_path)
    if out.suffix == ".jsonl":
        return out.with_suffix(".errors.jsonl")
    return out.with_name(out.name + ".errors.jsonl")


# --- files: checked writes, locks on the files themselves ----------------------------------------

def write_all(fd: int, data: bytes) -> None:
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


class LockedFile:
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
                write_all(fd, chunk)
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


def append_file(path: Path, data: bytes, shown: Path | None = None) -> None:
    """Append ``data`` and fsync; on failure cut the file back to where it was and raise."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise BatchWriteError(shown or path, exc, action="open") from exc
    try:
        size = os.fstat(fd).st_size
        try:
            write_all(fd, data)
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


def atomic_write(path: Path, data: bytes) -> None:
    """Replace a small file atomically (temporary file, fsync, rename)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BatchWriteError(path, exc) from exc
    try:
        try:
            write_all(fd, data)
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


class Files:
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
        self.output = LockedFile(out, "output")
        self.errors = LockedFile(errs, "errors")

    def __enter__(self) -> Files:
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


def result_key(raw: bytes, errors: bool) -> Key | None:
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
    return rid if isinstance(rid, str) and rid and lone_surrogate(rid) is None else None


def _corrupt_path(file: LockedFile) -> Path:
    return file.path.with_name(file.path.name + ".corrupt")


def _set_aside(file: LockedFile, bad: list[tuple[int, int, bytes, str]], remove: Callable[[], None]) -> str:
    """Move the bad lines to ``FILE.corrupt`` (kept, never lost): append them there first, then
    ``remove`` them from the file; if that fails, the copies are taken back. Returns the warning."""
    target = _corrupt_path(file)
    try:
        before = os.stat(target).st_size
    except FileNotFoundError:
        before = None
    append_file(target, b"".join(raw for _, _, raw, _ in bad))
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


def load_output(file: LockedFile) -> tuple[set[str], list[str]]:
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
                key = result_key(raw, errors=False)
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


def compact_errors(file: LockedFile, done: set[str], bad_lines: set[Key] | None = None) -> tuple[set[Key], list[str]]:
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
                key = result_key(raw, errors=True)
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


def dump_line(item: Mapping[str, Any]) -> bytes:
    try:
        return (json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (say, in a server's message): escape it, keep the line valid
        return (json.dumps(item, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


class Appender:
    """Appends result lines to one locked file: the lines finished in one event-loop turn go out
    in one write at the end of that turn. Every write is checked: a short write is continued, and
    an error cuts the file back to its last whole line, keeps the unwritten lines pending (they
    are not counted) and reports the failure, which stops the run."""

    def __init__(self, file: LockedFile, on_failure: Callable[[BatchWriteError], None],
                 on_written: Callable[[list[Any]], None] | None = None) -> None:
        self.file = file
        self._on_written = on_written  # told the keys of the lines each successful write carried
        self._pending_keys: list[Any] = []
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

    def add(self, line: bytes, rejected: bool = False, key: Any = None) -> None:
        if not self._pending and self.failure is None:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(line)
        if self._on_written is not None:
            self._pending_keys.append(key)
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
            write_all(self.fd, data)
        except OSError as exc:
            self._fail(exc, cut=True)
            return
        pending.clear()  # only now: a failed write keeps its lines out of the counts
        self._pending_rejected = 0
        if self._on_written is not None:
            keys, self._pending_keys = self._pending_keys, []
            self._on_written(keys)
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
