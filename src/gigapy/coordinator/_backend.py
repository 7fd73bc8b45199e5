"""The primitives every coordinator backend provides, and the shared-state logic of the two
local ones (in-process memory, and a state file under ``fcntl`` lock).

A backend is a small set of atomic operations on shared state: leases (a bounded set of
holders per key, each with an expiry), an adaptive limit per key (AIMD), tokens (sealed blobs
with an expiry), named locks with a TTL, fleet membership, and sets for batch claims. The Redis
backend runs the same operations as Lua scripts. Times are the backend's own clock (seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

#: AIMD: on a 429 the shared limit is multiplied by BACKOFF (at most once per COOLDOWN seconds,
#: however many processes saw the 429); after COOLDOWN each healthy answer adds 1/limit, so the
#: limit grows by about one per limit's worth of answers, back up to the ceiling.
BACKOFF = 0.5
COOLDOWN = 1.0


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token as the store keeps it: sealed, with its wall-clock expiry and lifetime."""

    blob: bytes
    expires: float
    lifetime: float


class Backend(Protocol):
    """The atomic operations a coordinator backend provides (sync; thread-safe)."""

    kind: str

    def acquire(self, key: str, lease_id: str, ttl: float, ceiling: int, epoch: str = "") -> bool | None:
        """Add a lease to ``key`` when fewer than the adaptive limit are held (expired ones dropped).
        None, and no lease, when ``epoch`` is given and the store's is another (it lost its state:
        the leases in flight are missing from it until their processes put them back)."""
        ...

    def renew(self, leases: list[tuple[str, str]], ttl: float) -> None:
        """Push the expiry of these (key, lease id) pairs to now + ttl (re-adding a lost one)."""
        ...

    def release(self, key: str, lease_id: str, outcome: str | None, ceiling: int) -> None:
        """Drop a lease; ``outcome`` ``"ok"`` grows and ``"throttled"`` cuts the shared limit."""
        ...

    def handover(self, key: str, lease_id: str, outcome: str | None, ceiling: int, new_id: str, ttl: float) -> bool:
        """:meth:`release` then :meth:`acquire` of ``new_id`` in one atomic step (a local waiter
        takes the slot at once, if the limit still allows it)."""
        ...

    def limit(self, key: str, ceiling: int) -> float:
        """The adaptive limit of ``key`` now (the ceiling when none is recorded)."""
        ...

    def held(self, key: str) -> int:
        """Leases held on ``key`` now (expired ones not counted)."""
        ...

    def token_get(self, name: str) -> StoredToken | None:
        """The stored token, unless it has expired."""
        ...

    def token_put(self, name: str, token: StoredToken) -> None:
        """Store a token until its expiry."""
        ...

    def token_drop(self, name: str, blob: bytes) -> None:
        """Forget the stored token if it is still this blob (a token the server rejected)."""
        ...

    def lock(self, name: str, holder: str, ttl: float) -> bool:
        """Take a named lock for ttl seconds (True) unless another holder has it."""
        ...

    def unlock(self, name: str, holder: str) -> None:
        """Give a named lock back (only its holder can)."""
        ...

    def epoch(self, known: str, candidate: str) -> tuple[str, float, bool]:
        """The store's epoch: (id, age in seconds, whether it replaced a lost one). A store with
        none (new, flushed, restarted empty, restored from an older snapshot) takes ``candidate``
        as a new epoch; a caller that ``known`` another one marks it as a replacement."""
        ...

    def claim_item(self, job: str, item: str, holder: str, ttl: float, epoch: str = "", grace: float = 0.0) -> str:
        """Claim an item of a shared job: ``new`` (first claim ever), ``again`` (claimed before by
        a worker whose claim lapsed, or by this one), ``done`` or ``busy`` (another worker has it).
        With ``epoch``: ``lost`` when the store's epoch is another one (the store lost its state
        since the caller last looked), ``wait`` while the epoch is younger than ``grace`` seconds."""
        ...

    def finish_items(self, job: str, items: list[str], holder: str) -> None:
        """Mark items done and drop this holder's claims on them, in one step."""
        ...

    def item_states(self, job: str, items: list[str]) -> list[str]:
        """Where items of a shared job stand, in one call: ``done``, ``busy`` (a live claim holds
        it) or ``free`` (no live claim: never claimed, given back, or its holder's claim lapsed)."""
        ...

    def join(self, holder: str, ttl: float) -> int:
        """Announce this process for ttl seconds; the number of live members."""
        ...

    def set_add(self, name: str, items: list[str]) -> None:
        """Add items to a named set."""
        ...

    def set_has(self, name: str, items: list[str]) -> list[bool]:
        """Which of these items the set holds."""
        ...

    def set_members(self, name: str) -> list[str]:
        """Every item of a named set."""
        ...

    def set_size(self, name: str) -> int:
        """How many items the set holds."""
        ...

    def value_get(self, name: str) -> str | None:
        """A named value."""
        ...

    def value_set(self, name: str, value: str) -> None:
        """Set a named value."""
        ...

    def ping(self) -> dict[str, Any]:
        """Check the backend is reachable; facts for ``doctor`` (no secrets)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def new_state() -> dict[str, Any]:
    """An empty shared state (the file backend's JSON document)."""
    return {
        "leases": {},
        "limits": {},
        "tokens": {},
        "locks": {},
        "members": {},
        "sets": {},
        "values": {},
        "epoch": {},
    }


def _live(table: dict[str, float], now: float) -> dict[str, float]:
    return {k: v for k, v in table.items() if v > now}


def st_acquire(
    state: dict[str, Any], now: float, key: str, lease_id: str, ttl: float, ceiling: int, epoch: str = ""
) -> bool | None:
    """:meth:`Backend.acquire` on a state dict."""
    if epoch and state["epoch"].get("id") != epoch:
        return None
    leases = _live(state["leases"].get(key, {}), now)
    cap = max(1, math.floor(st_limit(state, key, ceiling)))
    ok = len(leases) < cap
    if ok:
        leases[lease_id] = now + ttl
    state["leases"][key] = leases
    return ok


def st_renew(state: dict[str, Any], now: float, leases: list[tuple[str, str]], ttl: float) -> None:
    """:meth:`Backend.renew` on a state dict."""
    for key, lease_id in leases:
        state["leases"].setdefault(key, {})[lease_id] = now + ttl


def st_release(state: dict[str, Any], now: float, key: str, lease_id: str, outcome: str | None, ceiling: int) -> None:
    """:meth:`Backend.release` on a state dict."""
    state["leases"].get(key, {}).pop(lease_id, None)
    if outcome is None:
        return
    entry = state["limits"].setdefault(key, {"limit": float(ceiling), "cut": 0.0})
    entry["limit"] = aimd(float(entry["limit"]), float(entry["cut"]), now, outcome, ceiling)
    if outcome == "throttled" and now - float(entry["cut"]) >= COOLDOWN:
        entry["cut"] = now


def aimd(limit: float, cut: float, now: float, outcome: str, ceiling: int) -> float:
    """The next adaptive limit after one answer (see BACKOFF and COOLDOWN)."""
    limit = min(limit, float(ceiling))
    if outcome == "throttled":
        return max(1.0, limit * BACKOFF) if now - cut >= COOLDOWN else limit
    if now - cut < COOLDOWN:
        return limit
    return min(float(ceiling), limit + 1.0 / max(limit, 1.0))


def st_limit(state: dict[str, Any], key: str, ceiling: int) -> float:
    """:meth:`Backend.limit` on a state dict."""
    entry = state["limits"].get(key)
    return float(ceiling) if entry is None else min(float(entry["limit"]), float(ceiling))


def st_held(state: dict[str, Any], now: float, key: str) -> int:
    """:meth:`Backend.held` on a state dict."""
    return len(_live(state["leases"].get(key, {}), now))


def st_lock(state: dict[str, Any], now: float, name: str, holder: str, ttl: float) -> bool:
    """:meth:`Backend.lock` on a state dict."""
    cur = state["locks"].get(name)
    if cur is not None and cur[1] > now and cur[0] != holder:
        return False
    state["locks"][name] = [holder, now + ttl]
    return True


def st_unlock(state: dict[str, Any], name: str, holder: str) -> None:
    """:meth:`Backend.unlock` on a state dict."""
    cur = state["locks"].get(name)
    if cur is not None and cur[0] == holder:
        del state["locks"][name]


def st_epoch(state: dict[str, Any], now: float, known: str, candidate: str) -> tuple[str, float, bool]:
    """:meth:`Backend.epoch` on a state dict."""
    cur = state["epoch"]
    if isinstance(cur.get("id"), str) and isinstance(cur.get("birth"), (int, float)):
        if known and known != cur["id"] and not cur.get("recreated"):
            cur["recreated"] = True
        return cur["id"], now - float(cur["birth"]), bool(cur.get("recreated"))
    state["epoch"] = {"id": candidate, "birth": now, "recreated": bool(known)}
    return candidate, 0.0, bool(known)


def st_claim_item(
    state: dict[str, Any], now: float, job: str, item: str, holder: str, ttl: float, epoch: str = "", grace: float = 0.0
) -> str:
    """:meth:`Backend.claim_item` on a state dict."""
    if epoch:
        cur = state["epoch"]
        if cur.get("id") != epoch:
            return "lost"
        if now - float(cur.get("birth", 0.0)) < grace:
            return "wait"
    if item in state["sets"].get(f"done:{job}", {}):
        return "done"
    if not st_lock(state, now, f"claim:{job}:{item}", holder, ttl):
        return "busy"
    claimed = state["sets"].setdefault(f"claimed:{job}", {})
    fresh = item not in claimed
    claimed[item] = 1
    return "new" if fresh else "again"


def st_finish_items(state: dict[str, Any], job: str, items: list[str], holder: str) -> None:
    """:meth:`Backend.finish_items` on a state dict."""
    done = state["sets"].setdefault(f"done:{job}", {})
    for item in items:
        done[item] = 1
        st_unlock(state, f"claim:{job}:{item}", holder)


def st_item_states(state: dict[str, Any], now: float, job: str, items: list[str]) -> list[str]:
    """:meth:`Backend.item_states` on a state dict."""
    done = state["sets"].get(f"done:{job}", {})
    locks = state["locks"]
    states = []
    for item in items:
        cur = locks.get(f"claim:{job}:{item}")
        states.append("done" if item in done else "busy" if cur is not None and cur[1] > now else "free")
    return states


def st_join(state: dict[str, Any], now: float, holder: str, ttl: float) -> int:
    """:meth:`Backend.join` on a state dict."""
    members = _live(state["members"], now)
    members[holder] = now + ttl
    state["members"] = members
    return len(members)
