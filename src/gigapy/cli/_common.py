"""What every command shares: global options (``State``), clients, consoles, JSON output, errors.

Nothing here imports the client at module level: ``gigapy --help`` must not load httpx,
aiohttp, pydantic or the emulator.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from gigapy import AsyncGigaChat, GigaChat
    from gigapy.emulator import Emulator

# Exit codes (documented in docs/cli.md).
EXIT_ERROR = 1  #: the API or a check failed; a batch finished with failed requests
EXIT_USAGE = 2  #: bad arguments or settings
EXIT_CONNECTION = 3  #: no connection, timeout, TLS verification failure
EXIT_IO = 4  #: a file could not be written (disk full, file too large, I/O error, no permission)
EXIT_INTERRUPTED = 130  #: Ctrl-C



class CliError(Exception):
    """A failure the CLI reports as one line (plus an optional fix) and an exit code."""

    def __init__(self, message: str, fix: str | None = None, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.exit_code = exit_code


_out: Console | None = None
_err: Console | None = None


def out_console() -> Console:
    """The rich console on stdout (recreated when stdout changes, as under test runners)."""
    global _out
    from rich.console import Console

    if _out is None or _out.file is not sys.stdout:
        # Piped output is not cut at 80 columns: ids and numbers must survive `| grep`.
        width = None if is_tty(sys.stdout) or os.environ.get("COLUMNS") else 160
        _out = Console(file=sys.stdout, soft_wrap=False, width=width)
    return _out


def err_console() -> Console:
    """The rich console on stderr."""
    global _err
    from rich.console import Console

    if _err is None or _err.file is not sys.stderr:
        _err = Console(file=sys.stderr, soft_wrap=True)
    return _err


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (UTF-8 kept readable), every byte checked."""
    write_stdout(json.dumps(data, ensure_ascii=False, indent=2, default=_json_default) + "\n")


def write_stdout(text: str) -> None:
    """Write ``text`` to stdout whole: bytes straight to the descriptor, a short write continued (the
    text layer over an unbuffered stdout, ``python -u`` or PYTHONUNBUFFERED, drops the rest without a
    word), also on a non-blocking stdout whose pipe is full (the write waits for the reader). A write
    the disk refuses is a CliError with the disk-error exit code."""
    try:
        try:
            fd = sys.stdout.fileno()
        except (OSError, ValueError, AttributeError):  # an in-memory stream (test runners)
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        sys.stdout.flush()
        _write_all(fd, text.encode(sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict"))
    except BrokenPipeError:
        raise  # the reader went away: the command stops quietly
    except OSError as exc:
        with contextlib.suppress(OSError, ValueError):  # drop the unwritten rest: no second failure at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = errno.errorcode.get(exc.errno or 0, "")
        raise CliError(f"cannot write to stdout: {exc.strerror or exc}{f' ({code})' if code else ''}",
                       "free space (or raise the file-size limit) and run the command again", EXIT_IO) from None


def _write_all(fd: int, data: bytes) -> None:
    """Every byte of ``data`` to ``fd``: a short write is continued, a full non-blocking pipe waited on."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:  # O_NONBLOCK and the pipe is full: wait until the reader drains it
            select.select([], [fd], [], 5.0)
            continue
        if written <= 0:  # pragma: no cover - a regular file reports an error instead
            raise OSError(errno.EIO, "the write made no progress")
        view = view[written:]


def _json_default(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", by_alias=True)
    if hasattr(value, "get_secret_value"):
        return "********"
    return str(value)


def to_data(value: Any) -> Any:
    """A gigapy model (or a list of them) as plain JSON data."""
    if isinstance(value, list):
        return [to_data(v) for v in value]
    return _json_default(value) if hasattr(value, "model_dump") else value


def is_tty(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@dataclass
class State:
    """The global options of one invocation, and the clients built from them (lazily)."""

    emulator: bool = False
    base_url: str | None = None
    auth_url: str | None = None
    scope: str | None = None
    model: str | None = None
    profile: str | None = None
    timeout: float | None = None
    max_retries: int | None = None
    debug: bool = False
    _emu: Emulator | None = field(default=None, repr=False)
    _sync: GigaChat | None = field(default=None, repr=False)

    def start_emulator(self) -> Emulator:
        """Start the in-process emulator (once) and return it."""
        if self._emu is None:
            from gigapy.emulator import Emulator

            self._emu = Emulator(limits=None, timing="realistic").start()
        return self._emu

    def client_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for GigaChat/AsyncGigaChat: options > --profile > env > [default]."""
        from ._profiles import load_profile

        kwargs: dict[str, Any] = {} if self.emulator else dict(load_profile(self.profile))
        if self.emulator:
            from gigapy.emulator import DEMO_CREDENTIALS

            emu = self.start_emulator()
            kwargs.update(credentials=DEMO_CREDENTIALS, base_url=emu.base_url, auth_url=emu.auth_url,
                          scope="GIGACHAT_API_PERS")
        for name in ("base_url", "auth_url", "scope", "model", "timeout", "max_retries"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return kwargs

    def client(self) -> GigaChat:
        """The sync client for this invocation (closed when the command ends)."""
        if self._sync is None:
            from gigapy import GigaChat

            self._sync = GigaChat(**self.client_kwargs())
        return self._sync

    def async_client(self, **overrides: Any) -> AsyncGigaChat:
        """A new async client (the caller closes it with ``await client.aclose()``)."""
        from gigapy import AsyncGigaChat

        return AsyncGigaChat(**self.client_kwargs(**overrides))

    def close(self) -> None:
        """Close the client and stop the emulator."""
        client, self._sync = self._sync, None
        if client is not None:
            client.close()
        emu, self._emu = self._emu, None
        if emu is not None:
            emu.stop()


def get_state(ctx: typer.Context) -> State:
    """The State of this invocation (created by the root callback)."""
    root = ctx.find_root()
    state = root.obj
    if not isinstance(state, State):
        state = root.obj = State()
    return state


def fail(message: str, fix: str | None = None, exit_code: int = EXIT_ERROR) -> NoReturn:
    """Stop the command with one readable error line."""
    raise CliError(message, fix, exit_code)


def read_text_arg(value: str | None, what: str) -> str:
    """A text argument: the value, ``@FILE`` for a file's content, ``-`` (or nothing, when
    stdin is piped) for stdin."""
    if value is not None and value.startswith("@") and len(value) > 1:
        path = value[1:]
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        except OSError as exc:
            fail(f"cannot read {path}: {exc.strerror or exc}")
    if value == "-" or (value is None and not is_tty(sys.stdin)):
        data = sys.stdin.read()
        if data.strip():
            return data
        if value == "-":
            fail(f"no {what} on stdin")
    if value is None or not value.strip():
        fail(f"no {what} given", "pass it as an argument, @FILE, or pipe it on stdin", EXIT_USAGE)
    return value
