"""The emulator in a child process (``python -m gigapy.emulator``), and a deadline poll.

One helper for the tests, the benchmarks and the reliability runs that need the emulator in a
process of its own (to measure it, kill it or restart it)::

    from gigapy.emulator import EmulatorProcess

    with EmulatorProcess("--no-limits") as emu:  # a free 127.0.0.1 port, ready when entered
        print(emu.base_url, emu.pid)
    print(emu.output)  # everything it printed

For an emulator in this process use :class:`gigapy.emulator.Emulator` instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

from typing_extensions import Self

HOST = "127.0.0.1"

T = TypeVar("T")

_LISTENING = re.compile(r"listening on (https?://[\w.\[\]:-]+)")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds
    pass (TimeoutError): a deadline poll instead of a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not true within {timeout:g} s: {what or predicate}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class EmulatorProcess:
    """``python -m gigapy.emulator --host 127.0.0.1 --port PORT *args`` in a child process.

    ``port``: a free one by default (``0``: the one the emulator picks; the same one again
    after :meth:`restart`). ``env``: the
    child's environment (default: this one without ``GIGACHAT_*``/``GIGAPY_*``); ``cwd`` its
    working directory. Its output is read all the time (the child never blocks on a full pipe):
    :attr:`output` holds it, and ``log_path`` gets a copy. :meth:`start` returns once the
    emulator says it listens.
    """

    def __init__(
        self,
        *args: str,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.args = list(args)
        self.port = free_port() if port is None else port
        self.env = (
            dict(env)
            if env is not None
            else {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
        )
        self.cwd = cwd
        self.log_path = Path(log_path) if log_path is not None else None
        self.proc: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        """The exact command line."""
        return [sys.executable, "-m", "gigapy.emulator", "--host", HOST, "--port", str(self.port), *self.args]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL (``.../api/v1``)."""
        return f"{self.url}/api/v1"

    @property
    def auth_url(self) -> str:
        """The OAuth URL (``.../api/v2/oauth``)."""
        return f"{self.url}/api/v2/oauth"

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def output(self) -> str:
        """Everything the emulator printed so far (stdout and stderr)."""
        return "".join(self._lines)

    def _read(self, stream: IO[bytes]) -> None:
        log = open(self.log_path, "a", encoding="utf-8") if self.log_path else None  # noqa: SIM115 - closed below
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace")
                self._lines.append(line)
                if log is not None:
                    log.write(line)
                    log.flush()
        finally:
            stream.close()
            if log is not None:
                log.close()

    def start(self, timeout: float = 30.0) -> Self:
        """Start the process and wait (a deadline poll) until it listens; RuntimeError if it
        exits or stays silent for ``timeout`` seconds."""
        self._lines = []
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the runner, not the child
        )
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()
        proc = self.proc

        def ready() -> bool:
            found = _LISTENING.search(self.output)
            if found:
                self.port = int(found.group(1).rsplit(":", 1)[1])
                return True
            if proc.poll() is not None:
                raise RuntimeError(f"the emulator exited with {proc.returncode}:\n{self.output}")
            return False

        try:
            wait_until(ready, timeout, what="the emulator listens")
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"the emulator did not start within {timeout:g} s:\n{self.output}") from None
        return self

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._join()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL, then reap."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self._join()

    def restart(self, timeout: float = 30.0) -> Self:
        """SIGKILL the process and start a new one on the same port."""
        self.kill()
        return self.start(timeout)

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else "stopped"
        return f"EmulatorProcess({self.url}, {state})"
