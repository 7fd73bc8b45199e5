"""The coordinator: one token per account for the fleet, concurrency leases with a TTL and a
heartbeat, a shared adaptive limit, account pools and batch claims, over any backend.

Leases: a request holds one lease of its (account, model class) key while it runs. A lease
expires ``lease_ttl`` seconds after its last renewal; one heartbeat thread per coordinator renews
every lease this process holds every ``lease_ttl / 3`` seconds, so a process that dies (even by
SIGKILL) frees its leases at most ``lease_ttl`` seconds later. A lease given back with the outcome
``"throttled"`` (the server said 429) halves the limit for the whole fleet; healthy answers grow it
back to the ceiling (see :mod:`._backend`).

When a shared backend cannot be reached, the coordinator falls back to local limits (the ceiling
divided by the number of processes last seen in the fleet, less this process's leases still
running from before) and a local token cache, probes the
backend every second and returns to it when it answers again. Nothing in flight is lost: a
request that holds a lease keeps running whichever backend its lease is in. No batch claim is
granted while the shared backend is down.

A shared store may also lose its state without an error ever reaching a process: flushed,
restarted empty between two calls, restored from an older snapshot, failed over to a replica
that missed the last writes. The store keeps an *epoch* (an id, and for Redis the server's run
id) that every claim checks atomically and the heartbeat checks every ``EPOCH_TICK`` seconds: a
new epoch means the state was lost. Each process then puts its leases and claims back, calls
the listeners given to :meth:`Coordinator.on_state_lost` (a batch worker republishes the ids it
finished), and no claim is granted until the new epoch is ``RECOVERY_GRACE`` seconds old.
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
#: How often the heartbeat checks that the shared store still holds its state (its epoch).
EPOCH_TICK = 0.5
#: No claim is granted until the store's epoch is this old (seconds): after the store lost its
#: state every live worker notices (within a probe interval or an epoch tick), takes its claims
#: back and republishes what it finished before anyone can claim those items again. A new store
#: cannot tell a first start from a wiped one, so the first claims on it wait this long too.
RECOVERY_GRACE = 2.5


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

    def release_soon(self, outcome: str | None = None) -> None:
        """:meth:`release` without waiting for the backend (off the caller's thread when the
        backend is shared): for an event loop's sync callbacks and for finalizers."""
        if self._released:
            return
        if not self._coordinator.shared:
            self.release(outcome)
            return
        self._released = True
        chosen = self.outcome if outcome is None else outcome
        self._coordinator._submit(self._coordinator._release, self, chosen)

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
        self.losses = 0  # how many times the shared store was seen to have lost its state (a new epoch)
        #: True once the store's current epoch replaced a lost one (a worker then checks the fleet's
        #: files before it runs an item: the store's done marks may be incomplete).
        self.recovered = False
        self._epoch: str | None = None
        self._claims_open_at = 0.0  # monotonic time from which the store grants claims again
        self._share_until = 0.0  # until then (just back on the store) leases keep to this process's share
        self._loss_listeners: list[Callable[[], None]] = []

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
            self._check_epoch(self._primary)
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

    def _fatal(self, exc: BaseException) -> CoordinatorError | None:
        """The backend's clear error for a failure waiting cannot cure (bad credentials, TLS)."""
        explain = getattr(self._primary, "explain", None)
        found = explain(exc) if explain is not None else None
        return found if isinstance(found, CoordinatorError) else None

    def _lost(self, exc: BaseException) -> None:
        fatal = self._fatal(exc)
        if fatal is not None:  # not an outage: say what is wrong instead of running on local limits
            _scrub(exc)
            raise fatal from None
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
        return await asyncio.get_running_loop().run_in_executor(self._pool(), fn, *args)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(32, thread_name_prefix="gigapy-coordinator")
        return self._executor

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the coordinator's threads, not waiting (right here once closed)."""
        try:
            self._pool().submit(fn, *args)
        except RuntimeError:  # the executor is shut down (closing, or the interpreter exiting)
            with contextlib.suppress(Exception):
                fn(*args)

    # --- leases -----------------------------------------------------------------------------

    def try_acquire(self, key: str, ceiling: int, member: PoolMember | None = None) -> Lease | None:
        """A lease of ``key`` if one is free now (at most ``ceiling``, or the fleet's adaptive limit)."""
        self._ensure_heartbeat()
        backend = self._backend()
        cap = self._ceiling(backend, ceiling)
        if backend is self._local and self.shared:
            with self._lock:  # leases taken in the store before it went away still run: they count
                cap -= sum(1 for held in self._held.values() if held.key == key and held._backend is not backend)
            if cap < 1:
                return None
        elif self._share_until and time.monotonic() < self._share_until:
            share = max(1, ceiling // max(1, self._fleet))
            with self._lock:
                mine = sum(1 for held in self._held.values() if held.key == key)
            if mine >= share:
                return None
        lease = Lease(self, backend, key, ceiling, member)
        self.backend_calls += 1
        try:
            known = (self._epoch or "") if backend is self._primary and self.shared else ""
            ok = backend.acquire(key, lease.id, self.lease_ttl, cap, known)
            if ok and backend is self._primary and self.shared:
                self._note_limit(backend, key, ceiling)
        except self._transient as exc:
            if backend is self._local:
                raise
            self._lost(exc)
            return self.try_acquire(key, ceiling, member)
        if ok is None:  # the store lost its state: put this process's leases back before taking more
            self._check_epoch(backend)
            return None
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
        try:
            self._beat()
        except BaseException:  # a store that refuses us (credentials, TLS): the next call tries again
            with self._lock:
                self._thread = None
            raise
        thread.start()

    def _started(self) -> bool:
        return self._thread is not None

    def _heartbeat(self) -> None:
        period = self.lease_ttl / 3
        tick = min(period, EPOCH_TICK)
        next_beat = time.monotonic() + period
        while not self._stop.wait(tick):
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + period
                    self._beat()
                elif self._down_since is not None:
                    self._backend()  # probes the store (at most once a second) and recovers
                elif self._epoch is not None:
                    self._check_epoch(self._primary)
            except Exception:  # keep beating whatever happens; the next beat tries again
                log.debug("coordinator heartbeat failed", exc_info=True)

    def on_state_lost(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` (from the heartbeat thread, or the caller's) whenever the shared
        store is found to have lost its state, after this process's leases and claims are back.
        Returns a function that removes the listener."""
        with self._lock:
            self._loss_listeners.append(listener)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._loss_listeners.remove(listener)

        return remove

    def _check_epoch(self, backend: Backend) -> None:
        """Learn the store's epoch; a new one (the store lost its state) starts the recovery."""
        if not self.shared or backend is self._local:
            return
        known = self._epoch or ""
        try:
            ident, age, recreated = backend.epoch(known, uuid.uuid4().hex)
        except self._transient as exc:
            self._lost(exc)
            return
        with self._lock:
            changed = bool(known) and ident != self._epoch
            self._epoch = ident
            self._claims_open_at = time.monotonic() + max(0.0, self.recovery_grace - age)
            if recreated:
                self.recovered = True
            if changed:
                self.losses += 1
            listeners = list(self._loss_listeners) if changed else []
        if not changed:
            return
        log.warning("coordinator %s lost its state (flushed or restarted): leases and claims are put back", self.url)
        self._retake()
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.warning("a coordinator state-loss listener failed", exc_info=True)

    def _retake(self) -> None:
        """Back on the shared store (which may have lost its state): put this process's leases and
        claims in it again at once, before anything else is asked of it."""
        with self._lock:
            # leases taken locally while the store was away are in flight too: they move to it
            moved = [lease for lease in self._held.values() if lease._backend is self._local and self.shared]
            pairs = [
                (lease.key, lease.id) for lease in self._held.values() if lease._backend in (self._primary, self._local)
            ]
            claims = list(self._claims)
            # for a moment keep to this process's share: the others may still run on local limits,
            # their leases not in the store yet (they notice within a probe interval or a tick)
            self._share_until = time.monotonic() + PROBE_INTERVAL + EPOCH_TICK
        try:
            self._primary.renew(pairs if self.shared else [], self.lease_ttl)
            self._unrenew(pairs)
            for lease in moved:
                lease._backend = self._primary
            for name in claims:
                self._primary.lock(name, self.holder, self.lease_ttl)
        except self._transient as exc:
            self._lost(exc)

    def _unrenew(self, pairs: list[tuple[str, str]]) -> None:
        """A lease given back while the renewal was on its way was put back by it: drop it again."""
        with self._lock:
            gone = [(key, ident) for key, ident in pairs if ident not in self._held]
        for key, ident in gone:
            self._primary.release(key, ident, None, 1)

    @property
    def recovery_grace(self) -> float:
        """Seconds after the store answers again (or is found to have lost its state) within
        which every live process has put its claims back and republished what it finished."""
        return RECOVERY_GRACE

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
                    self._unrenew(pairs)
            for name in claims:
                owner_ok = backend.lock(name, self.holder, self.lease_ttl)
                if not owner_ok:
                    log.warning("batch claim %s was taken over by another worker", name)
            members = max(1, backend.join(self.holder, self.lease_ttl))
            # just after a loss the members set is refilling: do not shrink the fleet meanwhile
            recovering = time.monotonic() < self._share_until + self.lease_ttl
            self._fleet = max(self._fleet, members) if recovering else members
        except self._transient as exc:
            self._lost(exc)
            return
        self._check_epoch(backend)

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
        if not self.shared:
            got = self._primary.claim_item(job, item, self.holder, self.lease_ttl)
        else:
            got = self._claim_shared(job, item)
        if got in ("new", "again"):
            with self._lock:
                self._claims[f"claim:{job}:{item}"] = job
        return got

    def _claim_shared(self, job: str, item: str) -> str:
        """A claim on the shared store, checked against the epoch this process knows: none is
        granted while the store is down, nor while it is recovering from a loss of its state."""
        backend = self._backend()
        if backend is self._local:
            return "busy"
        if self._epoch is None:
            self._check_epoch(backend)
            if self._epoch is None:
                return "busy"
        try:
            got = backend.claim_item(job, item, self.holder, self.lease_ttl, self._epoch, self.recovery_grace)
        except self._transient as exc:
            self._lost(exc)
            return "busy"
        if got in ("lost", "wait"):
            self._check_epoch(backend)
            return "busy"
        return got

    def claim_wait(self) -> float:
        """Seconds until the shared store grants claims again (0 when it does now, as far as this
        process knows): a new store, or one recovering from a loss of its state, waits a grace.
        The first call asks the store (blocking); later ones answer from what this process saw."""
        if self.shared and self._epoch is None:
            self._ensure_heartbeat()
            self._check_epoch(self._backend())
        return max(0.0, self._claims_open_at - time.monotonic())

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

    def item_states(self, job: str, items: Sequence[str]) -> list[str]:
        """Where items of a shared job stand: ``done``, ``busy`` (another live claim) or ``free``."""
        return self._call(lambda b: b.item_states(job, list(items)))

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
        """Reach the backend and report facts about it (for ``gigapy doctor``); raises
        :class:`CoordinatorError` saying what is wrong (unreachable, credentials, TLS)."""
        try:
            return self._check()
        except self._transient as exc:
            fatal = self._fatal(exc)
            _scrub(exc)
            if fatal is not None:
                raise fatal from None
            raise CoordinatorError(f"coordinator {self.url} unreachable: {type(exc).__name__}: {exc}") from None

    def _check(self) -> dict[str, Any]:
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


def _scrub(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and what it chains: the store client's frames hold the
    password in their locals, and a :class:`CoordinatorError` raised here chains ``exc``."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return
        seen.__traceback__ = None
        seen = seen.__cause__ or seen.__context__


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
