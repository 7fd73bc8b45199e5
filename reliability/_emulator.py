"""The soak's emulator: ONE ``python -m gigapy.emulator`` subprocess on a fixed loopback port.

It can be SIGKILLed and started again on the same port (``restart``): issued tokens, files
and counters are forgotten, exactly as after a crash of the real service.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

#: The brief's fault mix: 10% 5xx, 5% 429 with Retry-After: 1, 2% dropped connections, 2% mid-stream drops.
FAULTS = "500:0.04,502:0.02,503:0.02,504:0.02,429:0.05,retry_after:1,drop:0.02,stream_drop:0.02"
HOST = "127.0.0.1"

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up the counters of several emulator lives (a restart zeroes them)."""
    total: dict[str, Any] = {"oauth_requests": 0, "api_requests": Counter(), "responses": Counter(),
                             "faults_injected": 0}
    for part in parts:
        total["oauth_requests"] += int(part.get("oauth_requests", 0))
        total["faults_injected"] += int(part.get("faults_injected", 0))
        total["api_requests"].update({k: int(v) for k, v in (part.get("api_requests") or {}).items()})
        total["responses"].update({str(k): int(v) for k, v in (part.get("responses") or {}).items()})
    total["api_requests"] = dict(total["api_requests"])
    total["responses"] = dict(sorted(total["responses"].items()))
    return total


class EmulatorProcess:
    """``python -m gigapy.emulator --port P --no-limits --token-ttl T --faults SPEC --seed S``."""

    def __init__(self, *, faults: str = FAULTS, token_ttl: float = 20.0, seed: int = 0,
                 port: int | None = None, log_path: Path | None = None) -> None:
        self.faults = faults
        self.token_ttl = token_ttl
        self.seed = seed
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.lives: list[dict[str, Any]] = []  # final stats of each killed life
        self.restarts: list[dict[str, float]] = []

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v1"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/api/v2/oauth"

    def command(self) -> list[str]:
        """The exact command line (also printed in RELIABILITY.md)."""
        ttl = f"{self.token_ttl:g}"
        return [sys.executable, "-m", "gigapy.emulator", "--port", str(self.port), "--no-limits",
                "--token-ttl", ttl, "--faults", self.faults, "--seed", str(self.seed)]

    def start(self, timeout: float = 20.0) -> float:
        """Start the process and wait until it answers; returns the seconds it took."""
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,  # noqa: S603
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            if not isinstance(log, int):
                log.close()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self.proc.returncode} (port {self.port} busy?); "
                                   f"log: {self.log_path}")
            try:
                self.stats(timeout=1.0)
            except OSError:
                time.sleep(0.02)
                continue
            return time.monotonic() - started
        self.kill()
        raise RuntimeError(f"the emulator did not answer within {timeout} s; log: {self.log_path}")

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """``GET /__emulator__/stats`` (admin route: never faulted)."""
        with _NO_PROXY.open(f"{self.url}/__emulator__/stats", timeout=timeout) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, then reap."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def restart(self) -> dict[str, float]:
        """Save the counters, SIGKILL the process, start a new one on the same port."""
        with contextlib.suppress(OSError, ValueError):
            self.lives.append(self.stats())
        killed_at = time.monotonic()
        self.kill()
        boot = self.start()
        info = {"killed_at": killed_at, "downtime": time.monotonic() - killed_at, "boot": boot}
        self.restarts.append(info)
        return info

    def all_stats(self) -> dict[str, Any]:
        """Counters over every life of the emulator, the current one included."""
        parts = list(self.lives)
        if self.alive():
            with contextlib.suppress(OSError, ValueError):
                parts.append(self.stats())
        return merge_stats(parts)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 5 s)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
