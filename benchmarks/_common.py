"""Shared pieces of the client benchmarks: the emulator process, payloads, process probes."""

from __future__ import annotations

import json
import os
import platform
import re
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

from gigapy.emulator import EmulatorProcess as SharedEmulatorProcess
from gigapy.emulator import free_port as free_port  # the benchmarks import it from here

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"  # git-ignored: raw results, profiles

MODEL = "GigaChat"
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "What is the capital of France?"}]
BODY: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}


def stream_headers(tokens: int) -> dict[str, str]:
    """Emulator hooks: an answer of exactly ``tokens`` tokens, one token per stream chunk."""
    return {"X-Emulator-Answer-Tokens": str(tokens), "X-Emulator-Chunk-Tokens": "1"}


class EmulatorProcess(SharedEmulatorProcess):
    """One ``python -m gigapy.emulator --no-limits`` process on loopback for the whole run (the
    shared :class:`gigapy.emulator.EmulatorProcess`, run from the repository root)."""

    def __init__(self, *extra_args: str) -> None:
        super().__init__("--no-limits", *extra_args, cwd=ROOT)  # more options: ``--faults latency_ms:50``


def emulator_stats(url: str) -> dict[str, Any]:
    """``GET /__emulator__/stats`` (counters: oauth_requests, open_connections, ...)."""
    with urllib.request.urlopen(f"{url}/__emulator__/stats", timeout=10) as resp:
        return dict(json.loads(resp.read()))


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_sockets() -> int:
    """Sockets this process holds open (file descriptors pointing at ``socket:[...]``)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1).strip() if found else cpu
    ram = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        found = re.search(r"MemTotal:\s*(\d+) kB", meminfo.read_text())
        ram = f"{int(found.group(1)) / 1024 / 1024:.1f} GiB" if found else ram
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def versions() -> dict[str, str]:
    out = {}
    for name in ("gigapy", "gigachat", "httpx", "aiohttp", "pydantic", "pydantic-core"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def results_path() -> Path:
    """benchmarks/RESULTS.md, or the file ``GIGAPY_BENCH_RESULTS`` names (``python -m benchmarks all --quick``
    writes its sections to a copy, so a smoke run never replaces the measured figures)."""
    override = os.environ.get("GIGAPY_BENCH_RESULTS")
    return Path(override) if override else ROOT / "benchmarks" / "RESULTS.md"
