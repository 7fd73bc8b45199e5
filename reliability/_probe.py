"""What the client process holds: sockets (from /proc/self/fd), RSS and Python heap blocks."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field


def socket_inodes() -> frozenset[str]:
    """Inodes of the sockets this process has open (``socket:[N]`` links in /proc/self/fd)."""
    found = set()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return frozenset()
    for name in names:
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed since listdir
            continue
        if target.startswith("socket:"):
            found.add(target)
    return frozenset(found)


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class Snapshot:
    """One measurement of the client process."""

    sockets: frozenset[str] = field(default_factory=frozenset)
    rss: int = 0
    blocks: int = 0

    @property
    def socket_count(self) -> int:
        return len(self.sockets)


def snapshot() -> Snapshot:
    """Sockets, RSS and ``sys.getallocatedblocks()`` now."""
    return Snapshot(socket_inodes(), rss_bytes(), sys.getallocatedblocks())


def mib(n: float) -> str:
    return f"{n / 1048576:.1f} MiB"
