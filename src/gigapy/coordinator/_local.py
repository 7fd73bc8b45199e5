"""The two local backends: in-process memory (the default) and a state file under ``fcntl`` lock.

Both run the state logic of :mod:`._backend` on a plain dict. The memory backend guards it with a
thread lock; the file backend reads, changes and atomically rewrites a JSON state file while it
holds an exclusive ``flock`` on a lock file next to it, so processes on one host share it with no
server. The state file is created with mode 0600: tokens in it are sealed (see :mod:`._seal`), and
only the owner can read it at all.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from . import _backend as B
from ._backend import StoredToken

T = TypeVar("T")


class _StateBackend:
    """Shared code: every operation is one call of a function on the state under a lock."""

    kind = "memory"

    def _run(self, fn: Callable[[dict[str, Any], float], T]) -> T:  # pragma: no cover - overridden
        raise NotImplementedError

    def acquire(self, key: str, lease_id: str, ttl: float, ceiling: int, epoch: str = "") -> bool | None:
        """See :meth:`Backend.acquire`."""
        return self._run(lambda s, now: B.st_acquire(s, now, key, lease_id, ttl, ceiling, epoch))

    def renew(self, leases: list[tuple[str, str]], ttl: float) -> None:
        """See :meth:`Backend.renew`."""
        if leases:
            self._run(lambda s, now: B.st_renew(s, now, leases, ttl))

    def release(self, key: str, lease_id: str, outcome: str | None, ceiling: int) -> None:
        """See :meth:`Backend.release`."""
        self._run(lambda s, now: B.st_release(s, now, key, lease_id, outcome, ceiling))

    def handover(self, key: str, lease_id: str, outcome: str | None, ceiling: int, new_id: str, ttl: float) -> bool:
        """See :meth:`Backend.handover`."""

        def both(s: dict[str, Any], now: float) -> bool:
            B.st_release(s, now, key, lease_id, outcome, ceiling)
            return bool(B.st_acquire(s, now, key, new_id, ttl, ceiling))

        return self._run(both)

    def limit(self, key: str, ceiling: int) -> float:
        """See :meth:`Backend.limit`."""
        return self._run(lambda s, now: B.st_limit(s, key, ceiling))

    def held(self, key: str) -> int:
        """See :meth:`Backend.held`."""
        return self._run(lambda s, now: B.st_held(s, now, key))

    def token_get(self, name: str) -> StoredToken | None:
        """See :meth:`Backend.token_get`."""

        def get(s: dict[str, Any], now: float) -> StoredToken | None:
            raw = s["tokens"].get(name)
            if raw is None or raw[1] <= now:
                return None
            return StoredToken(base64.b64decode(raw[0]), float(raw[1]), float(raw[2]))

        return self._run(get)

    def token_put(self, name: str, token: StoredToken) -> None:
        """See :meth:`Backend.token_put`."""
        entry = [base64.b64encode(token.blob).decode(), token.expires, token.lifetime]
        self._run(lambda s, now: s["tokens"].__setitem__(name, entry))

    def token_drop(self, name: str, blob: bytes) -> None:
        """See :meth:`Backend.token_drop`."""
        text = base64.b64encode(blob).decode()

        def drop(s: dict[str, Any], now: float) -> None:
            raw = s["tokens"].get(name)
            if raw is not None and raw[0] == text:
                del s["tokens"][name]

        self._run(drop)

    def lock(self, name: str, holder: str, ttl: float) -> bool:
        """See :meth:`Backend.lock`."""
        return self._run(lambda s, now: B.st_lock(s, now, name, holder, ttl))

    def unlock(self, name: str, holder: str) -> None:
        """See :meth:`Backend.unlock`."""
        self._run(lambda s, now: B.st_unlock(s, name, holder))

    def epoch(self, known: str, candidate: str) -> tuple[str, float, bool]:
        """See :meth:`Backend.epoch`."""
        return self._run(lambda s, now: B.st_epoch(s, now, known, candidate))

    def claim_item(self, job: str, item: str, holder: str, ttl: float, epoch: str = "", grace: float = 0.0) -> str:
        """See :meth:`Backend.claim_item`."""
        return self._run(lambda s, now: B.st_claim_item(s, now, job, item, holder, ttl, epoch, grace))

    def finish_items(self, job: str, items: list[str], holder: str) -> None:
        """See :meth:`Backend.finish_items`."""
        self._run(lambda s, now: B.st_finish_items(s, job, items, holder))

    def item_states(self, job: str, items: list[str]) -> list[str]:
        """See :meth:`Backend.item_states`."""
        return self._run(lambda s, now: B.st_item_states(s, now, job, items))

    def join(self, holder: str, ttl: float) -> int:
        """See :meth:`Backend.join`."""
        return self._run(lambda s, now: B.st_join(s, now, holder, ttl))

    def set_add(self, name: str, items: list[str]) -> None:
        """See :meth:`Backend.set_add`."""

        def add(s: dict[str, Any], now: float) -> None:
            target = s["sets"].setdefault(name, {})
            for item in items:
                target[item] = 1

        self._run(add)

    def set_has(self, name: str, items: list[str]) -> list[bool]:
        """See :meth:`Backend.set_has`."""

        def has(s: dict[str, Any], now: float) -> list[bool]:
            target = s["sets"].get(name, {})
            return [item in target for item in items]

        return self._run(has)

    def set_members(self, name: str) -> list[str]:
        """See :meth:`Backend.set_members`."""
        return self._run(lambda s, now: list(s["sets"].get(name, {})))

    def set_size(self, name: str) -> int:
        """See :meth:`Backend.set_size`."""
        return self._run(lambda s, now: len(s["sets"].get(name, {})))

    def value_get(self, name: str) -> str | None:
        """See :meth:`Backend.value_get`."""

        def get(s: dict[str, Any], now: float) -> str | None:
            value = s["values"].get(name)
            return value if isinstance(value, str) else None

        return self._run(get)

    def value_set(self, name: str, value: str) -> None:
        """See :meth:`Backend.value_set`."""
        self._run(lambda s, now: s["values"].__setitem__(name, value))

    def close(self) -> None:
        """Nothing to release."""


class MemoryBackend(_StateBackend):
    """State in this process only: today's behaviour, shared by every client in the process."""

    kind = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = B.new_state()

    def _run(self, fn: Callable[[dict[str, Any], float], T]) -> T:
        with self._lock:
            return fn(self._state, time.time())

    def ping(self) -> dict[str, Any]:
        """Always reachable."""
        return {"backend": "memory", "scope": "this process"}


class FileBackend(_StateBackend):
    """State in ``<directory>/state.json``, changed under an exclusive ``flock`` of ``state.lock``."""

    kind = "file"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.directory / "state.json"
        self._lock_path = self.directory / "state.lock"
        self._thread_lock = threading.Lock()  # flock is per open file: threads of one process queue here

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        with self._thread_lock:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing drops the flock (a killed process drops it too)

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return B.new_state()
        try:
            data = json.loads(raw)
        except ValueError:
            return B.new_state()  # a damaged state file: leases expire anyway, tokens are refetched
        state = B.new_state()
        if isinstance(data, dict):
            state.update({k: v for k, v in data.items() if k in state and isinstance(v, dict)})
        return state

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_name(f"state.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, separators=(",", ":"))
        os.replace(tmp, self.path)

    def _run(self, fn: Callable[[dict[str, Any], float], T]) -> T:
        with self._locked():
            state = self._load()
            before = json.dumps(state, sort_keys=True)
            result = fn(state, time.time())
            if json.dumps(state, sort_keys=True) != before:
                self._save(state)
            return result

    def ping(self) -> dict[str, Any]:
        """The state file is readable and writable."""
        with self._locked():
            self._save(self._load())
        mode = self.path.stat().st_mode & 0o777
        return {"backend": "file", "path": str(self.path), "mode": oct(mode)}
