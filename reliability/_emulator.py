"""The soak's emulator: ONE ``python -m gigapy.emulator`` subprocess on a fixed loopback port.

It can be SIGKILLed and started again on the same port (``restart``): issued tokens, files
and counters are forgotten, exactly as after a crash of the real service.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from gigapy.emulator import EmulatorProcess as SharedEmulatorProcess
from gigapy.emulator import wait_until

#: The brief's fault mix: 10% 5xx, 5% 429 with Retry-After: 1, 2% dropped connections, 2% mid-stream drops.
FAULTS = "500:0.04,502:0.02,503:0.02,504:0.02,429:0.05,retry_after:1,drop:0.02,stream_drop:0.02"
HOST = "127.0.0.1"

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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


class EmulatorProcess(SharedEmulatorProcess):
    """``python -m gigapy.emulator --no-limits --token-ttl T --faults SPEC --seed S`` (the shared
    :class:`gigapy.emulator.EmulatorProcess`), its counters kept over restarts."""

    def __init__(self, *, faults: str = FAULTS, token_ttl: float = 20.0, seed: int = 0,
                 port: int | None = None, log_path: Path | None = None) -> None:
        self.faults = faults
        self.token_ttl = token_ttl
        self.seed = seed
        super().__init__("--no-limits", "--token-ttl", f"{token_ttl:g}", "--faults", faults, "--seed", str(seed),
                         port=port, log_path=log_path)
        self.lives: list[dict[str, Any]] = []  # final stats of each killed life
        self.restarts: list[dict[str, float]] = []

    def start(self, timeout: float = 20.0) -> float:  # type: ignore[override]
        """Start the process and wait until it answers; returns the seconds it took."""
        started = time.monotonic()
        super().start(timeout)
        wait_until(self._answers, timeout, what="the emulator answers /__emulator__/stats")
        return time.monotonic() - started

    def _answers(self) -> bool:
        try:
            self.stats(timeout=1.0)
        except OSError:
            return False
        return True

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """``GET /__emulator__/stats`` (admin route: never faulted)."""
        with _NO_PROXY.open(f"{self.url}/__emulator__/stats", timeout=timeout) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def restart(self) -> dict[str, float]:  # type: ignore[override]
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
