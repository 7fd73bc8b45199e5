"""Shared in-memory state of one emulator: stats, request log, prompt cache, limits, usage.

Every store is capped so memory stays bounded however long the emulator runs.
"""

from __future__ import annotations

import json
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from ._config import Account, EmulatorConfig
from ._faults import FaultController

if TYPE_CHECKING:
    from ._assistants import AssistantStore
    from ._auth import TokenRecord, TokenStore
    from ._batches import BatchStore
    from ._files import FileStore
    from ._thread_store import ThreadStore

MAX_LOGGED_BODY = 64 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it (body truncated to 64 KiB)."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    time: float

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Stats:
    """Counters shown by ``Emulator.stats()`` and ``GET /__emulator__/stats``."""

    oauth_requests: int = 0
    token_requests: int = 0
    api_requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[int] = field(default_factory=Counter)
    inflight: int = 0

    def reset(self) -> None:
        """Zero every counter except the live ``inflight`` gauge."""
        self.oauth_requests = 0
        self.token_requests = 0
        self.api_requests.clear()
        self.responses.clear()


class SessionCache:
    """Prompt prefixes seen per (account, X-Session-ID): the source of ``precached_prompt_tokens``."""

    def __init__(self, ttl: float, capacity: int) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], tuple[float, list[tuple[int, int]]]] = OrderedDict()

    def cached_tokens(self, key: tuple[str, str], prefix: list[tuple[int, int]]) -> int:
        """Tokens of the longest stored prefix shared with ``prefix``; then store ``prefix``.

        ``prefix`` holds (message hash, cumulative tokens) pairs.
        """
        now = time.monotonic()
        cached = 0
        entry = self._items.pop(key, None)
        if entry is not None and entry[0] > now:
            for (old_hash, _), (new_hash, tokens) in zip(entry[1], prefix, strict=False):
                if old_hash != new_hash:
                    break
                cached = tokens
        self._items[key] = (now + self.ttl, prefix)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return cached

    def __len__(self) -> int:
        return len(self._items)


class Limits:
    """Concurrent requests per account and scope (a request holds its slot while it is generated)."""

    def __init__(self, limits: dict[str, int] | None) -> None:
        self.limits = limits
        self._active: dict[tuple[str, str], int] = {}
        #: The most slots one account+scope held at once since the last reset.
        self.peak = 0

    @property
    def held(self) -> int:
        """Slots held now, over every account and scope."""
        return sum(self._active.values())

    def acquire(self, client_id: str, scope: str) -> bool:
        """Take a slot; False when the scope's limit is reached."""
        if self.limits is None:
            return True
        key = (client_id, scope)
        count = self._active.get(key, 0)
        if count >= self.limits.get(scope, 10):
            return False
        self._active[key] = count + 1
        if count + 1 > self.peak:
            self.peak = count + 1
        return True

    def reset_peak(self) -> None:
        """Start measuring the peak again from what is held now."""
        self.peak = max(self._active.values(), default=0)

    def release(self, client_id: str, scope: str) -> None:
        """Give a slot back."""
        if self.limits is None:
            return
        key = (client_id, scope)
        count = self._active.get(key, 0) - 1
        if count > 0:
            self._active[key] = count
        else:
            self._active.pop(key, None)


class State:
    """Everything one emulator remembers. Survives ``Emulator.restart(keep_state=True)``."""

    def __init__(self, config: EmulatorConfig) -> None:
        from ._assistants import AssistantStore
        from ._auth import RateWindow, TokenStore
        from ._batches import BatchStore
        from ._files import FileStore
        from ._thread_store import ThreadStore

        config.check()
        self.config = config
        #: Generation time of every answer (resolved once; a bad profile fails here, at start).
        self.timing = config.generation()
        self.accounts = config.all_accounts()
        self.by_client_id = {a.client_id: a for a in self.accounts}
        self.by_user = {a.user: a for a in self.accounts if a.user is not None}
        #: mTLS-only: certificate key (``cn:...`` / ``sha256:...``) -> account, and the records made for them.
        self.cert_accounts = {entry.key: entry for entry in config.cert_accounts}
        self.cert_records: dict[str, TokenRecord] = {}
        self.faults = FaultController(config.faults, config.seed)
        self.stats = Stats()
        self.log: deque[RecordedRequest] = deque(maxlen=config.request_log_size)
        self.tokens: TokenStore = TokenStore(config.max_tokens_stored)
        self.oauth_rate = RateWindow()
        self.sessions = SessionCache(config.session_cache_ttl, config.max_sessions)
        self.limits = Limits(config.limits)
        self.files: FileStore = FileStore(config.max_files, config.max_file_store_bytes)
        self.batches: BatchStore = BatchStore(config.max_batches)
        self.assistants: AssistantStore = AssistantStore(config.max_assistants)
        self.threads: ThreadStore = ThreadStore(
            config.max_threads, config.max_thread_messages, config.max_thread_store_chars
        )
        self.spent: dict[str, Counter[str]] = {}
        self.connections: Callable[[], int] = lambda: 0

    def account(self, client_id: str) -> Account | None:
        """The account with this client id."""
        return self.by_client_id.get(client_id)

    def record(self, method: str, path: str, query: dict[str, str], headers: CIMultiDict[str], body: bytes) -> None:
        """Append a request to the bounded log."""
        self.log.append(RecordedRequest(method, path, query, headers, body[:MAX_LOGGED_BODY], time.time()))

    def reset_stats(self) -> None:
        """Zero the counters (the live gauges stay), forget the slot peak and clear the request log."""
        self.stats.reset()
        self.limits.reset_peak()
        self.log.clear()

    def spend(self, client_id: str, usage: str, tokens: int) -> None:
        """Charge tokens to an account's balance line."""
        self.spent.setdefault(client_id, Counter())[usage] += tokens

    def snapshot(self) -> dict[str, Any]:
        """The stats dict shown to tests and the admin route."""
        stats = self.stats
        return {
            "oauth_requests": stats.oauth_requests,
            "token_requests": stats.token_requests,
            "api_requests": dict(stats.api_requests),
            "responses": {str(k): v for k, v in stats.responses.items()},
            "open_connections": self.connections(),
            "inflight": stats.inflight,
            "slots_held": self.limits.held,
            "slots_peak": self.limits.peak,
            "faults_injected": self.faults.injected,
            "tokens": len(self.tokens),
            "sessions": len(self.sessions),
            "files": len(self.files),
            "batches": len(self.batches),
            "assistants": len(self.assistants),
            "threads": len(self.threads),
            "logged_requests": len(self.log),
        }
