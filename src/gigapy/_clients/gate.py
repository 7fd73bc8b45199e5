"""The client's own concurrency gate: generation requests in flight per account, at the limit the
service allows, so ``asyncio.gather`` over a client (and ``embed_many``, and the bulk runner) keeps
the quota full without meeting 429s.

The service's limit is concurrency per account and scope (1 stream for PERS, 10 for B2B and CORP,
more on request). A gate starts at that documented limit and, until the service has refused a
request, grows by one slot per answer while requests wait (as TCP's slow start does), so an
account with a raised limit finds it within a few round trips. A 429 that arrives while other
requests of this gate are in flight shows the limit: the gate shrinks to the number in flight, and
the refused request waits at the head of the queue for the next slot that frees and is sent again
(the caller never sees that 429; a 429 with nothing else in flight goes to the client's normal
retry with ``Retry-After``). Once the limit is known the gate probes one slot above it now and then
(one in ``PROBE_EVERY`` answers per slot while requests wait), so a limit raised later, or freed
by another user of the account, is found again.

A freed slot goes to the next waiting request in the same step (no polling). Streams are not
gated: they are opened by the caller, who holds them as long as it likes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the sync client never imports asyncio
    import asyncio

#: The service's documented concurrency per scope (api-contract: 1 for individuals, 10 for companies).
SCOPE_LIMITS = {"GIGACHAT_API_PERS": 1, "GIGACHAT_API_B2B": 10, "GIGACHAT_API_CORP": 10}
#: Local re-sends of one request refused with 429 while others were in flight.
LOCAL_RETRIES = 16
#: Once the limit is known: one probe above it per this many answers per slot (while requests wait).
PROBE_EVERY = 10
_GATED = ("/chat/completions", "/embeddings")


def gated(request: Any) -> str | None:
    """The gate class of a request (``chat`` / ``embeddings``), None when it is not gated."""
    if request.method != "POST" or request.stream:
        return None
    url: str = request.url
    if url.endswith(_GATED):
        return "embeddings" if url.endswith("/embeddings") else "chat"
    return None


class Gate:
    """Generation requests in flight for one account and request class (see the module doc)."""

    __slots__ = ("_cond", "_count", "_waiters", "active", "known", "limit", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.active = 0
        #: True once a 429 has shown the account's limit (then growth is a rare probe).
        self.known = False
        #: 429s this gate absorbed (sent again locally, never seen by the caller).
        self.refused = 0
        self._count = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._cond: threading.Condition | None = None  # the sync client's threads (made on first use)

    def __repr__(self) -> str:
        return f"Gate(limit={self.limit}, active={self.active}, known={self.known})"

    async def _acquire(self, front: bool) -> float:
        """Take a slot; the seconds waited for it (0.0 when one was free)."""
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return 0.0
        import asyncio

        began = time.monotonic()

        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if front:
            self._waiters.appendleft(fut)
        else:
            self._waiters.append(fut)
        try:
            await fut
            return time.monotonic() - began
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # granted just before the cancellation
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise

    def _release(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        if not waiters:
            return
        import asyncio

        try:
            here: Any = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        while waiters and self.active < self.limit:
            fut = waiters.popleft()
            if fut.done():
                continue
            self.active += 1
            loop = fut.get_loop()
            if loop is here:
                fut.set_result(None)
            else:  # a waiter of another event loop (the client is shared across threads' loops)
                try:
                    loop.call_soon_threadsafe(self._grant, fut)
                except RuntimeError:  # that loop is closed: its waiter is gone
                    self.active -= 1

    def _grant(self, fut: asyncio.Future[None]) -> None:
        """Hand a slot to ``fut`` on its own loop; a waiter cancelled meanwhile gives it back."""
        if fut.done():
            self._release()
        else:
            fut.set_result(None)

    def _answered(self) -> None:
        if not self._waiters:
            return  # no demand beyond the limit: nothing to learn
        if not self.known:
            self.limit += 1
        else:
            self._count += 1
            if self._count >= PROBE_EVERY * self.limit:
                self._count = 0
                self.limit += 1

    def _throttled(self) -> None:
        self.refused += 1
        self.known = True
        self._count = 0
        self.limit = max(1, self.active - 1)  # what the service holds for us now, this one aside

    async def send_async(self, send: Callable[[Any], Awaitable[Any]], request: Any) -> Any:
        """Send ``request`` within the gate; a 429 met while others are in flight is sent again locally."""
        front = False
        waited = request.queued or 0.0  # a retry of the call adds to its earlier waits
        for _ in range(LOCAL_RETRIES + 1):
            waited += await self._acquire(front)
            request.queued = waited
            try:
                result = await send(request)
            except BaseException:
                self._release()
                raise
            if getattr(result, "status", None) == 429 and self.active > 1:
                self._throttled()
                self._release()
                front = True  # first in line for the next slot that frees
                continue
            if getattr(result, "status", 0) < 400:
                self._answered()
            self._release()
            return result
        return result

    # --- the sync client: threads wait on a condition (one gate serves one kind of client) ---

    def send_sync(self, send: Callable[[Any], Any], request: Any) -> Any:
        """:meth:`send_async` for the sync client's threads."""
        cond = self._cond
        if cond is None:
            cond = self._cond = threading.Condition()
        front = 0  # threads refused with 429 wait until one of the others finishes
        result: Any = None
        waited = request.queued or 0.0  # a retry of the call adds to its earlier waits
        for _ in range(LOCAL_RETRIES + 1):
            with cond:
                if front:
                    began = time.monotonic()
                    cond.wait_for(_freed(self, self.active - 1), timeout=60)  # once one of the others is done
                    waited += time.monotonic() - began
                elif self.active >= self.limit:
                    began = time.monotonic()
                    cond.wait_for(lambda: self.active < self.limit, timeout=None)
                    waited += time.monotonic() - began
                self.active += 1
            request.queued = waited
            try:
                result = send(request)
            except BaseException:
                with cond:
                    self.active -= 1
                    cond.notify_all()
                raise
            with cond:
                if getattr(result, "status", None) == 429 and self.active > 1:
                    self._throttled()
                    self.active -= 1
                    cond.notify_all()
                    front = 1
                    continue
                if getattr(result, "status", 0) < 400:
                    self._answered_sync()
                self.active -= 1
                cond.notify_all()
            return result
        return result

    def _answered_sync(self) -> None:
        # threads beyond the limit are not counted; growth is offered whenever the gate is full
        if self.active < self.limit:
            return
        if not self.known:
            self.limit += 1
        else:
            self._count += 1
            if self._count >= PROBE_EVERY * self.limit:
                self._count = 0
                self.limit += 1


def _freed(gate: Gate, target: int) -> Callable[[], bool]:
    return lambda: gate.active <= target or gate.active < gate.limit


def gate_for(gates: dict[str, Gate], scope: str, kind: str) -> Gate:
    """The client's gate for one request class (made on first use)."""
    gate = gates.get(kind)
    if gate is None:
        gate = gates[kind] = Gate(SCOPE_LIMITS.get(scope, 1))
    return gate
