"""The coordinator: one token per account for the fleet, concurrency leases with a TTL and a
heartbeat, a shared adaptive limit, account pools and batch claims, over any backend.

Leases: a request holds one lease of its (account, model class) key while it runs. A lease
expires ``lease_ttl`` seconds after its last renewal; one heartbeat thread per coordinator renews
every lease this process holds every ``lease_ttl / 3`` seconds, so a process that dies (even by
SIGKILL) frees its leases at most ``lease_ttl`` seconds later. A lease given back with the outcome
``"throttled"`` (the server said 429) halves the limit for the whole fleet; healthy answers grow it
back to the ceiling (see :mod:`._backend`).

When a shared backend cannot be reached, the coordinator falls back to local limits (the ceiling
divided by the number of processes last seen in the fleet) and a local token cache, probes the
backend every second and returns to it when it answers again. Nothing in flight is lost: a
request that holds a lease keeps running whichever backend its lease is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import SecretStr

from ..errors import CoordinatorError, LeaseTimeout
from ..types.auth import AccessToken
from . import _seal
from ._backend import Backend, StoredToken
from ._local import MemoryBackend

log = logging.getLogger("gigapy.coordinator")
T = TypeVar("T")

#: Seconds before expiry when the fleet's token is refreshed (at most half its lifetime).
REFRESH_AHEAD = 60.0
#: How long a token fetch may hold the fleet's refresh lock before another process may try.
FETCH_LOCK_TTL = 30.0
#: Waiting for a lease polls the backend at most this often (seconds, with jitter).
POLL_MIN = 0.005
POLL_MAX = 0.02
PROBE_INTERVAL = 1.0
#: A lease given back with a healthy outcome while a waiter of this process queues for its key
#: passes to that waiter without a backend call (its entry in the store, renewed by the heartbeat,
#: simply changes hands) as long as the fleet's limit, read at most this many seconds ago, is at its
#: ceiling; a cut limit, a 429 or a stale reading takes the backend's hand-over instead.
LIMIT_FRESH = 0.5
#: A backend that can block until a slot is given back (Redis: a blocking pop on a wake list) is
#: waited on for at most this long per try, instead of being polled.
WAKE_WAIT = 0.5


@dataclass(frozen=True)
class PoolMember:
    """One account (or client certificate) of a pool.

    ``settings`` are client settings for it (``credentials``, ``scope``, ``cert_file``, ...; never
    shown in a repr). ``limit`` is its concurrency ceiling; ``weight`` its share among the primary
    members; an ``overflow`` member is used only when every primary member is full.
    """

    name: str
    weight: float = 1.0
    limit: int = 10
    overflow: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise CoordinatorError("pool member name must not be empty")
        if not (isinstance(self.weight, (int, float)) and self.weight > 0 and math.isfinite(self.weight)):
            raise CoordinatorError(f"pool member {self.name!r}: weight must be a positive number, got {self.weight!r}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise CoordinatorError(f"pool member {self.name!r}: limit must be a positive integer, got {self.limit!r}")


@dataclass(frozen=True)
class Pool:
    """Several accounts or certificates used as one: weighted, with overflow members."""

    members: tuple[PoolMember, ...]

    def __init__(self, members: Sequence[PoolMember]) -> None:
        members = tuple(members)
        if not members:
            raise CoordinatorError("a pool needs at least one member")
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise CoordinatorError(f"pool member names must be unique, got {names}")
        object.__setattr__(self, "members", members)

    def order(self, rng: random.Random) -> list[PoolMember]:
        """Members in the order to try: primaries in a weighted random order, then overflow ones."""
        primary = [m for m in self.members if not m.overflow]
        spill = [m for m in self.members if m.overflow]
        primary.sort(key=lambda m: rng.random() ** (1.0 / m.weight), reverse=True)
        spill.sort(key=lambda m: -m.weight)
        return primary + spill


class Lease:
    """One held concurrency slot. Give it back with :meth:`release` (or use it as a context
    manager); set :attr:`outcome` to ``"throttled"`` after a 429 so the fleet backs off."""

    __slots__ = ("_backend", "_coordinator", "_released", "ceiling", "id", "key", "member", "outcome")

    def __init__(
        self,
        coordinator: Coordinator,
        backend: Backend,
        key: str,
        ceiling: int,
        member: PoolMember | None = None,
        lease_id: str | None = None,
    ) -> None:
        self._coordinator = coordinator
        self._backend = backend
        self.key = key
        self.ceiling = ceiling
        self.id = lease_id or f"{coordinator.holder}:{uuid.uuid4().hex[:12]}"
        self.member = member
        self.outcome: str | None = "ok"
        self._released = False

    def __repr__(self) -> str:
        return f"Lease(key={self.key!r}, member={None if self.member is None else self.member.name!r})"

    def release(self, outcome: str | None = None) -> None:
        """Give the slot back (once); ``outcome`` overrides :attr:`outcome` (``ok``, ``throttled``, None)."""
        if self._released:
            return
        self._released = True
        self._coordinator._release(self, self.outcome if outcome is None else outcome)

    async def arelease(self, outcome: str | None = None) -> None:
        """Async :meth:`release` (the backend call runs off the event loop)."""
        if self._released:
            return
        self._released = True
        chosen = self.outcome if outcome is None else outcome
        if self._coordinator._pass_on(self, chosen):
            return  # a waiter of this process has it now: no backend call, no thread hop
        await self._coordinator._off_loop(self._coordinator._release, self, chosen)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.arelease()


class Coordinator:
    """Shares tokens, concurrency and claims between the processes of a fleet (see the module doc).

    Build one with :func:`gigapy.coordinator.connect`; every method has an async twin prefixed
    with ``a``. Thread-safe; one per process is enough (clients with the same URL share it).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        lease_ttl: float = 15.0,
        url: str = "memory://",
        transient: tuple[type[BaseException], ...] = (),
    ) -> None:
        if not (lease_ttl > 0 and math.isfinite(lease_ttl)):
            raise CoordinatorError(f"lease_ttl must be a positive number of seconds, got {lease_ttl!r}")
        self.url = url
        self.lease_ttl = float(lease_ttl)
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._primary = backend
        self._local = backend if isinstance(backend, MemoryBackend) else MemoryBackend()
        self._transient = transient
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._fleet = 1
        self._lock = threading.Lock()
        self._held: dict[str, Lease] = {}
        #: Local waiters per key: a lease given back with others waiting here goes to the first of
        #: them in the same backend call (no wait for the next poll); only the first one polls.
        self._waiters: dict[str, deque[Future[Lease]]] = {}
        self._claims: dict[str, str] = {}  # claim lock name -> job, renewed by the heartbeat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._rng = random.Random()
        #: The fleet's limit per lease key as last read (limit, monotonic time of the reading).
        self._limits_seen: dict[str, tuple[float, float]] = {}
        self._wakers: dict[str, Future[bool]] = {}  # per key: this process's one blocking wait for a slot
        self.passed_on = 0  # leases handed to a local waiter without a backend call
        self.backend_calls = 0  # lease operations that reached the backend (acquire, release, hand-over)
        self.fallbacks = 0  # how many times the shared backend was lost (a counter for tests and doctor)

    def __repr__(self) -> str:
        return f"Coordinator({self.url!r}, backend={self._primary.kind!r})"

    @property
    def kind(self) -> str:
        """The backend: ``memory``, ``file`` or ``redis``."""
        return self._primary.kind

    @property
    def shared(self) -> bool:
        """True when the state is shared with other processes (file or Redis)."""
        return not isinstance(self._primary, MemoryBackend)

    @property
    def degraded(self) -> bool:
        """True while the shared backend is unreachable and local limits apply."""
        return self._down_since is not None

    # --- backend choice and fallback --------------------------------------------------------

    def _backend(self) -> Backend:
        if self._down_since is None:
            return self._primary
        now = time.monotonic()
        if now >= self._next_probe:
            self._next_probe = now + PROBE_INTERVAL
            try:
                self._primary.ping()
            except self._transient:
                return self._local
            log.warning("coordinator %s is reachable again after %.1f s", self.url, now - self._down_since)
            self._down_since = None
            self._retake()
            return self._primary
        return self._local

    def healthy(self) -> bool:
        """True when the shared backend answers (probes it at most once a second while it is down)."""
        return self._backend() is self._primary

    def _call(self, op: Callable[[Backend], T]) -> T:
        """Run one operation on the shared backend, or locally while it is down."""
        backend = self._backend()
        if backend is self._local:
            return op(backend)
        try:
            return op(backend)
        except self._transient as exc:
            self._lost(exc)
            return op(self._local)

    def _lost(self, exc: BaseException) -> None:
        with self._lock:
            if self._down_since is None:
                self._down_since = time.monotonic()
                self._next_probe = self._down_since + PROBE_INTERVAL
                self.fallbacks += 1
                log.warning(
                    "coordinator %s unreachable (%s); local limits until it answers", self.url, type(exc).__name__
                )

    def _ceiling(self, backend: Backend, ceiling: int) -> int:
        if backend is self._local and self.shared:
            return max(1, ceiling // max(1, self._fleet))
        return ceiling

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        if not self.shared:
            return fn(*args)
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(32, thread_name_prefix="gigapy-coordinator")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- leases -----------------------------------------------------------------------------

    def try_acquire(self, key: str, ceiling: int, member: PoolMember | None = None) -> Lease | None:
        """A lease of ``key`` if one is free now (at most ``ceiling``, or the fleet's adaptive limit)."""
        self._ensure_heartbeat()
        backend = self._backend()
        lease = Lease(self, backend, key, ceiling, member)
        self.backend_calls += 1
        try:
            ok = backend.acquire(key, lease.id, self.lease_ttl, self._ceiling(backend, ceiling))
            if ok and backend is self._primary and self.shared:
                self._note_limit(backend, key, ceiling)
        except self._transient as exc:
            if backend is self._local:
                raise
            self._lost(exc)
            return self.try_acquire(key, ceiling, member)
        if not ok:
            return None
        with self._lock:
            self._held[lease.id] = lease
        return lease

    def acquire(self, key: str, ceiling: int, *, timeout: float | None = None) -> Lease:
        """Wait for a lease of ``key`` (``LeaseTimeout`` after ``timeout`` seconds)."""
        lease = self.try_acquire(key, ceiling)
        if lease is not None:
            return lease
        deadline = None if timeout is None else time.monotonic() + timeout
        waiter = self._enqueue(key)
        delay = POLL_MIN
        try:
            while True:
                if self._first(key, waiter):
                    lease = self.try_acquire(key, ceiling)
                    if lease is not None and self._settle(waiter, lease):
                        return _taken(waiter)
                try:
                    waiter.result(timeout=delay * self._rng.uniform(0.5, 1.5))
                    return _taken(waiter)
                except FutureTimeout:
                    pass
                if deadline is not None and time.monotonic() >= deadline:
                    raise LeaseTimeout(f"no free lease of {key} within {timeout} s")
                delay = min(delay * 1.5, POLL_MAX)
        finally:
            self._give_up(key, waiter)

    async def aacquire(self, key: str, ceiling: int, *, timeout: float | None = None) -> Lease:
        """Async :meth:`acquire`."""
        lease = await self._off_loop(self.try_acquire, key, ceiling)
        if lease is not None:
            return lease
        deadline = None if timeout is None else time.monotonic() + timeout
        waiter = self._enqueue(key)
        handed = asyncio.wrap_future(waiter)
        delay = POLL_MIN
        try:
            while True:
                if self._first(key, waiter):
                    lease = await self._off_loop(self.try_acquire, key, ceiling)
                    if lease is not None and self._settle(waiter, lease):
                        return _taken(waiter)
                    woken = self._waker(key)
                    if woken is not None:  # block on the store's wake list until a slot is given back
                        both: set[asyncio.Future[Any]] = {handed, asyncio.wrap_future(woken)}
                        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED, timeout=WAKE_WAIT + 1.0)
                        if waiter.done() and not waiter.cancelled():
                            return _taken(waiter)
                        if deadline is not None and time.monotonic() >= deadline:
                            raise LeaseTimeout(f"no free lease of {key} within {timeout} s")
                        continue
                await asyncio.wait({handed}, timeout=delay * self._rng.uniform(0.5, 1.5))
                if waiter.done() and not waiter.cancelled():
                    return _taken(waiter)
                if deadline is not None and time.monotonic() >= deadline:
                    raise LeaseTimeout(f"no free lease of {key} within {timeout} s")
                delay = min(delay * 1.5, POLL_MAX)
        finally:
            self._give_up(key, waiter)

    def _waker(self, key: str) -> Future[bool] | None:
        """This process's blocking wait for a freed slot of ``key`` (one at a time per key), or None
        when the backend cannot block (then waiters poll)."""
        wait_free = getattr(self._primary, "wait_free", None)
        if wait_free is None or self._down_since is not None:
            return None
        with self._lock:
            current = self._wakers.get(key)
            if current is not None and not current.done():
                return current
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(32, thread_name_prefix="gigapy-coordinator")

        def block() -> bool:
            try:
                woke = bool(wait_free(key, WAKE_WAIT))
            except self._transient as exc:
                self._lost(exc)
                return False
            if woke and not self._waiters.get(key):
                with _quiet(self._transient):  # nobody here needs it any more: let another process have it
                    self._primary.wake(key)  # type: ignore[attr-defined]
            return woke

        future = self._executor.submit(block)
        with self._lock:
            self._wakers[key] = future
        return future

    def _enqueue(self, key: str) -> Future[Lease]:
        waiter: Future[Lease] = Future()
        with self._lock:
            self._waiters.setdefault(key, deque()).append(waiter)
        return waiter

    def _first(self, key: str, waiter: Future[Lease]) -> bool:
        queue = self._waiters.get(key)
        return bool(queue) and queue[0] is waiter  # type: ignore[index]

    def _claim_waiter(self, waiter: Future[Lease]) -> bool:
        """Whether the caller may complete ``waiter`` (exactly one party ever may)."""
        with self._lock:
            if waiter.running() or waiter.done():
                return False
            return waiter.set_running_or_notify_cancel()

    def _settle(self, waiter: Future[Lease], lease: Lease) -> bool:
        """A polled lease is ours unless a handed-over one arrived meanwhile (then give one back)."""
        if self._claim_waiter(waiter):
            waiter.set_result(lease)
            return True
        lease.release(None)
        return False

    def _give_up(self, key: str, waiter: Future[Lease]) -> None:
        """Leave the queue. A lease handed over that the caller did not take (a timeout, a
        cancelled task) is given back as soon as it arrives."""
        with self._lock:
            queue = self._waiters.get(key)
            if queue is not None:
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
                if not queue:
                    del self._waiters[key]
            if not waiter.running() and not waiter.done():
                waiter.cancel()
                return
        taken = getattr(waiter, "_gigapy_taken", False)
        if not taken:
            waiter.add_done_callback(lambda f: None if f.cancelled() else f.result().release(None))

    def acquire_member(self, pool: Pool, model_class: str = "chat", *, timeout: float | None = None) -> Lease:
        """Wait for a lease on some member of ``pool`` (``lease.member`` says which)."""
        return self._wait(lambda: self._try_pool(pool, model_class), timeout, "pool")

    async def aacquire_member(self, pool: Pool, model_class: str = "chat", *, timeout: float | None = None) -> Lease:
        """Async :meth:`acquire_member`."""
        return await self._await(lambda: self._try_pool(pool, model_class), timeout, "pool")

    def _try_pool(self, pool: Pool, model_class: str) -> Lease | None:
        for member in pool.order(self._rng):
            lease = self.try_acquire(f"{member.name}:{model_class}", member.limit, member)
            if lease is not None:
                return lease
        return None

    def _wait(self, attempt: Callable[[], Lease | None], timeout: float | None, what: str) -> Lease:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_MIN
        while True:
            lease = attempt()
            if lease is not None:
                return lease
            if deadline is not None and time.monotonic() >= deadline:
                raise LeaseTimeout(f"no free lease of {what} within {timeout} s")
            time.sleep(delay * self._rng.uniform(0.5, 1.5))
            delay = min(delay * 1.5, POLL_MAX)

    async def _await(self, attempt: Callable[[], Lease | None], timeout: float | None, what: str) -> Lease:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_MIN
        while True:
            lease = await self._off_loop(attempt)
            if lease is not None:
                return lease
            if deadline is not None and time.monotonic() >= deadline:
                raise LeaseTimeout(f"no free lease of {what} within {timeout} s")
            await asyncio.sleep(delay * self._rng.uniform(0.5, 1.5))
            delay = min(delay * 1.5, POLL_MAX)

    def _pass_on(self, lease: Lease, outcome: str | None) -> bool:
        """Hand ``lease`` to the first waiter of this process without a backend call, when that is
        safe (see ``LIMIT_FRESH``). True when a waiter took it."""
        if outcome != "ok" or lease._backend is not self._primary or not self.shared or self._down_since is not None:
            return False
        seen = self._limits_seen.get(lease.key)
        if seen is None or seen[0] < lease.ceiling or time.monotonic() - seen[1] > LIMIT_FRESH:
            return False
        if self._over_share(lease):
            return False
        while True:
            with self._lock:
                queue = self._waiters.get(lease.key)
                if not queue:
                    return False
                waiter = queue.popleft()
            if self._claim_waiter(waiter):
                break
        new = Lease(self, lease._backend, lease.key, lease.ceiling, lease.member, lease.id)
        with self._lock:
            self._held[new.id] = new  # the same entry in the store, a new holder in this process
        self.passed_on += 1
        waiter.set_result(new)
        return True

    def _over_share(self, lease: Lease) -> bool:
        """Whether this process holds more than twice its share of ``lease``'s key (the ceiling over
        the processes last seen in the fleet, rounded up): then a lease it gives back goes to the
        store, waking another process, rather than to a waiter of its own, so no process is starved
        (within twice the share a hand-off stays local: on a busy machine the process that is already
        running takes the slot far sooner than one that must first be scheduled)."""
        fleet = self._fleet
        if fleet <= 1:
            return False
        with self._lock:
            mine = sum(1 for held in self._held.values() if held.key == lease.key)
        return mine > 2 * -(-lease.ceiling // fleet)

    def _note_limit(self, backend: Backend, key: str, ceiling: int) -> None:
        """Read the fleet's limit of ``key`` (at most once per ``LIMIT_FRESH``)."""
        seen = self._limits_seen.get(key)
        now = time.monotonic()
        if seen is not None and now - seen[1] <= LIMIT_FRESH / 2:
            return
        self._limits_seen[key] = (backend.limit(key, ceiling), now)

    def _release(self, lease: Lease, outcome: str | None) -> None:
        if self._pass_on(lease, outcome):
            return
        over = self.shared and self._over_share(lease)
        with self._lock:
            self._held.pop(lease.id, None)
            queue = self._waiters.get(lease.key)
            waiter = queue.popleft() if queue and outcome != "throttled" and not over else None
        backend = lease._backend
        if waiter is not None:
            self._hand_over(lease, outcome, waiter)
            return
        self.backend_calls += 1
        try:
            backend.release(lease.key, lease.id, outcome, self._ceiling(backend, lease.ceiling))
        except self._transient as exc:
            self._lost(exc)  # the lease expires on its own; the limit's feedback goes to the local state
            self._local.release(lease.key, lease.id, outcome, self._ceiling(self._local, lease.ceiling))

    def _hand_over(self, lease: Lease, outcome: str | None, waiter: Future[Lease]) -> bool:
        """Give ``lease`` back and take a new one for ``waiter`` in one backend call. True when the
        waiter got it; else the slot is simply free (the limit was cut meanwhile, or it gave up)."""
        backend = lease._backend
        new = Lease(self, backend, lease.key, lease.ceiling)
        self.backend_calls += 1
        try:
            ok = backend.handover(
                lease.key, lease.id, outcome, self._ceiling(backend, lease.ceiling), new.id, self.lease_ttl
            )
            if backend is self._primary and self.shared:
                self._note_limit(backend, lease.key, lease.ceiling)
        except self._transient as exc:
            self._lost(exc)
            with self._lock:  # the waiter polls again (locally now)
                self._waiters.setdefault(lease.key, deque()).appendleft(waiter)
            return False
        if not ok:
            with self._lock:
                self._waiters.setdefault(lease.key, deque()).appendleft(waiter)
            return False
        with self._lock:
            self._held[new.id] = new
        if self._claim_waiter(waiter):
            waiter.set_result(new)
        else:
            new.release(outcome=None)  # the waiter gave up, or polled a lease of its own meanwhile
        return True

    def limit(self, key: str, ceiling: int) -> float:
        """The adaptive limit of ``key`` for the fleet now."""
        return self._call(lambda b: b.limit(key, self._ceiling(b, ceiling)))

    def held(self, key: str) -> int:
        """Leases of ``key`` held now by the whole fleet."""
        return self._call(lambda b: b.held(key))

    # --- heartbeat --------------------------------------------------------------------------

    def _ensure_heartbeat(self) -> None:
        if self._started() or not self.shared:
            return
        thread = threading.Thread(target=self._heartbeat, name="gigapy-coordinator-heartbeat", daemon=True)
        with self._lock:
            current, self._thread = self._thread, self._thread or thread
        if current is not None:  # another thread started it meanwhile
            return
        self._beat()
        thread.start()

    def _started(self) -> bool:
        return self._thread is not None

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_ttl / 3):
            try:
                self._beat()
            except Exception:  # keep beating whatever happens; the next beat tries again
                log.debug("coordinator heartbeat failed", exc_info=True)

    def _retake(self) -> None:
        """Back on the shared store (which may have lost its state): put this process's leases and
        claims in it again at once, before anything else is asked of it."""
        with self._lock:
            pairs = [(lease.key, lease.id) for lease in self._held.values() if lease._backend is self._primary]
            claims = list(self._claims)
        try:
            self._primary.renew(pairs, self.lease_ttl)
            for name in claims:
                self._primary.lock(name, self.holder, self.lease_ttl)
        except self._transient as exc:
            self._lost(exc)

    @property
    def recovery_grace(self) -> float:
        """Seconds after the store answers again within which every live process has put its
        claims back (it notices within a probe interval plus a heartbeat)."""
        return PROBE_INTERVAL + self.lease_ttl / 3 + 1.0

    def _beat(self) -> None:
        with self._lock:
            by_backend: dict[int, tuple[Backend, list[tuple[str, str]]]] = {}
            for lease in self._held.values():
                by_backend.setdefault(id(lease._backend), (lease._backend, []))[1].append((lease.key, lease.id))
            claims = list(self._claims)
        backend = self._backend()
        if backend is self._local:
            return
        try:
            for owner, pairs in by_backend.values():
                if owner is self._primary:
                    owner.renew(pairs, self.lease_ttl)
            for name in claims:
                owner_ok = backend.lock(name, self.holder, self.lease_ttl)
                if not owner_ok:
                    log.warning("batch claim %s was taken over by another worker", name)
            self._fleet = max(1, backend.join(self.holder, self.lease_ttl))
        except self._transient as exc:
            self._lost(exc)

    # --- tokens -----------------------------------------------------------------------------

    def token(self, identity: str, secret: bytes, fetch: Callable[[], AccessToken]) -> AccessToken:
        """The fleet's token for ``identity``: fetched by one process per token lifetime, sealed
        with a key derived from ``secret`` (the account's own secret)."""
        if not self.shared:
            return fetch()
        name, key = self._token_names(identity, secret)
        deadline = time.monotonic() + FETCH_LOCK_TTL
        while True:
            found, lead = self._call(lambda b: self._token_step(b, name, key))
            if found is not None and not lead:
                return found
            if lead:
                return self._lead(name, key, fetch)
            if time.monotonic() >= deadline:  # the leader is stuck: fetch our own rather than wait forever
                return fetch()
            time.sleep(0.02)

    async def atoken(self, identity: str, secret: bytes, fetch: Callable[[], Awaitable[AccessToken]]) -> AccessToken:
        """Async :meth:`token`."""
        if not self.shared:
            return await fetch()
        name, key = self._token_names(identity, secret)
        deadline = time.monotonic() + FETCH_LOCK_TTL
        while True:
            step: tuple[AccessToken | None, bool] = await self._off_loop(
                self._call, lambda b: self._token_step(b, name, key)
            )
            found, lead = step
            if found is not None and not lead:
                return found
            if lead:
                try:
                    token = await fetch()
                except BaseException:
                    await self._off_loop(self._call, lambda b: b.unlock("token:" + name, self.holder))
                    raise
                await self._off_loop(self._publish, name, key, token)
                return token
            if time.monotonic() >= deadline:
                return await fetch()
            await asyncio.sleep(0.02)

    def invalidate_token(self, identity: str, secret: bytes, stale: SecretStr) -> None:
        """Forget the fleet's token if it is ``stale`` (the server rejected it with a 401)."""
        if not self.shared:
            return
        name, key = self._token_names(identity, secret)

        def drop(b: Backend) -> None:
            stored = b.token_get(name)
            if stored is not None:
                got = self._open(key, stored)
                if got is not None and got.access_token.get_secret_value() == stale.get_secret_value():
                    b.token_drop(name, stored.blob)

        self._call(drop)

    async def ainvalidate_token(self, identity: str, secret: bytes, stale: SecretStr) -> None:
        """Async :meth:`invalidate_token`."""
        await self._off_loop(self.invalidate_token, identity, secret, stale)

    def _token_names(self, identity: str, secret: bytes) -> tuple[str, bytes]:
        return identity, _seal.derive_key(secret, identity)

    def _token_step(self, b: Backend, name: str, key: bytes) -> tuple[AccessToken | None, bool]:
        """(token to use, whether this process should fetch a new one now)."""
        stored = b.token_get(name)
        token = None if stored is None else self._open(key, stored)
        if token is not None:
            assert stored is not None
            left = stored.expires - time.time()
            if left > min(REFRESH_AHEAD, stored.lifetime / 2):
                return token, False
        lead = b.lock("token:" + name, self.holder, FETCH_LOCK_TTL)
        return token, lead

    def _lead(self, name: str, key: bytes, fetch: Callable[[], AccessToken]) -> AccessToken:
        try:
            token = fetch()
        except BaseException:
            self._call(lambda b: b.unlock("token:" + name, self.holder))
            raise
        self._publish(name, key, token)
        return token

    def _publish(self, name: str, key: bytes, token: AccessToken) -> None:
        life = token._lifetime if token._lifetime is not None else max(1.0, token.expires_in)
        plain = json.dumps({"t": token.access_token.get_secret_value(), "e": token.expires_at}).encode()
        stored = StoredToken(_seal.seal(key, plain), time.time() + life, life)
        del plain

        def put(b: Backend) -> None:
            b.token_put(name, stored)
            b.unlock("token:" + name, self.holder)

        self._call(put)

    @staticmethod
    def _open(key: bytes, stored: StoredToken) -> AccessToken | None:
        plain = _seal.unseal(key, stored.blob)
        if plain is None:
            return None
        try:
            data = json.loads(plain)
            token = AccessToken.model_validate({"access_token": data["t"], "expires_at": int(data["e"])})
        except (ValueError, KeyError, TypeError):
            return None
        finally:
            del plain
        token._lifetime = max(0.001, stored.expires - time.time())
        return token

    # --- batch claims -----------------------------------------------------------------------

    def claim(self, job: str, item: str) -> bool:
        """Claim one item of a shared job for this process (False: done, or another worker has it).

        The claim is renewed by the heartbeat and lapses ``lease_ttl`` seconds after this process
        dies, so another worker can take the item over.
        """
        return self.claim_item(job, item) in ("new", "again")

    def claim_item(self, job: str, item: str) -> str:
        """:meth:`claim`, saying which: ``new`` (never claimed before), ``again`` (claimed before:
        its worker died or gave it back), ``done`` or ``busy`` (another worker has it now)."""
        self._ensure_heartbeat()
        got = self._call(lambda b: b.claim_item(job, item, self.holder, self.lease_ttl))
        if got in ("new", "again"):
            with self._lock:
                self._claims[f"claim:{job}:{item}"] = job
        return got

    def finish(self, job: str, items: Sequence[str]) -> None:
        """Mark items of a shared job done and drop this process's claims on them."""
        self._call(lambda b: b.finish_items(job, list(items), self.holder))
        with self._lock:
            for item in items:
                self._claims.pop(f"claim:{job}:{item}", None)

    def unclaim(self, job: str, item: str) -> None:
        """Give a claim back without finishing the item (another worker may take it)."""
        name = f"claim:{job}:{item}"
        with self._lock:
            self._claims.pop(name, None)
        self._call(lambda b: b.unlock(name, self.holder))

    def done(self, job: str, items: Sequence[str]) -> list[bool]:
        """Which of these items some worker has finished."""
        return self._call(lambda b: b.set_has(f"done:{job}", list(items)))

    def add_to(self, name: str, items: Sequence[str]) -> None:
        """Add items to a named set shared by the fleet."""
        self._call(lambda b: b.set_add(name, list(items)))

    def members(self, name: str) -> list[str]:
        """The items of a named set shared by the fleet."""
        return self._call(lambda b: b.set_members(name))

    def contains(self, name: str, items: Sequence[str]) -> list[bool]:
        """Which of these items a named set holds."""
        return self._call(lambda b: b.set_has(name, list(items)))

    def value(self, name: str) -> str | None:
        """A named value shared by the fleet."""
        return self._call(lambda b: b.value_get(name))

    def set_value(self, name: str, value: str) -> None:
        """Set a named value shared by the fleet."""
        self._call(lambda b: b.value_set(name, value))

    # --- checks and lifecycle ---------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Reach the backend and report facts about it (for ``gigapy doctor``); raises when unreachable."""
        facts = dict(self._primary.ping())
        if self.shared:
            probe = f"doctor:{self.holder}"
            lease = Lease(self, self._primary, probe, 1)
            if not self._primary.acquire(probe, lease.id, 5.0, 1):
                raise CoordinatorError("the coordinator refused a lease on an unused key")
            self._primary.release(probe, lease.id, None, 1)
            facts["leases"] = "ok"
        facts["lease_ttl"] = self.lease_ttl
        return facts

    def close(self) -> None:
        """Stop the heartbeat, give back every lease and claim still held, close connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            leases = list(self._held.values())
            claims = list(self._claims)
            self._held.clear()
            self._claims.clear()
        for lease in leases:
            with _quiet(self._transient):
                lease._backend.release(lease.key, lease.id, None, lease.ceiling)
        for name in claims:
            with _quiet(self._transient):
                self._primary.unlock(name, self.holder)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._primary.close()

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _taken(waiter: Future[Lease]) -> Lease:
    """The waiter's lease, marked as taken by its caller (so giving up does not release it)."""
    waiter._gigapy_taken = True  # type: ignore[attr-defined]
    return waiter.result()


class _quiet:
    """Suppress the backend's transient errors (best-effort cleanup)."""

    def __init__(self, errors: tuple[type[BaseException], ...]) -> None:
        self.errors = errors

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        return kind is not None and issubclass(kind, self.errors)
