"""The Redis backend: the coordinator's state in Redis, for processes on many hosts (redis-py).

Every operation that reads and then writes is one Lua script, so it is atomic on the server,
and every expiry is measured on the server's clock (``TIME``), so hosts whose clocks differ
still agree. ``redis://`` and ``rediss://`` (TLS) URLs work, with a password or ACL user in the
URL (``rediss://user:password@host:6380/0``); ``?prefix=name`` separates fleets sharing a server.

Keys (under the prefix, ``gigapy`` by default): ``lease:<key>`` sorted set of lease id by expiry
(ms); ``wake:<key>`` list of wake marks (a slot given back wakes one waiting process's blocking
pop); ``limit:<key>`` hash of the adaptive limit and the time of its last cut; ``token:<name>``
hash of the sealed token; ``lock:<name>`` string; ``members`` sorted set; ``set:<name>``,
``value:<name>``; ``epoch`` hash (id, the server's run id, birth): a store that lost its state
(flushed, restarted empty or from an older snapshot) is noticed by its new epoch.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..errors import CoordinatorError
from ._backend import BACKOFF, COOLDOWN, StoredToken

_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

_LIMIT = """
local function current_limit(key, ceiling)
  local raw = redis.call('HGET', key, 'limit')
  local lim = ceiling
  if raw then lim = tonumber(raw) end
  if lim > ceiling then lim = ceiling end
  return lim
end
"""

# KEYS: lease zset, limit hash, epoch hash. ARGV: lease id, ttl ms, ceiling, the caller's epoch ('' for
# no check). Returns 1, 0 (full), or -1 (the store's epoch is another one).
ACQUIRE = (
    _NOW
    + _LIMIT
    + """
if ARGV[4] and ARGV[4] ~= '' and redis.call('HGET', KEYS[3], 'id') ~= ARGV[4] then return -1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lim = current_limit(KEYS[2], tonumber(ARGV[3]))
local cap = math.max(1, math.floor(lim))
if redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 4)
return 1
"""
)

# KEYS: lease zsets (one per lease). ARGV: ttl ms, then one lease id per key.
RENEW = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl * 4)
end
return #KEYS
"""
)

# KEYS: lease zset, limit hash. ARGV: lease id, outcome ('' / ok / throttled), ceiling, backoff, cooldown ms.
_RELEASE = (
    _NOW
    + _LIMIT
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
local outcome = ARGV[2]
if outcome == '' then return 0 end
local ceiling = tonumber(ARGV[3])
local lim = current_limit(KEYS[2], ceiling)
local cut = tonumber(redis.call('HGET', KEYS[2], 'cut') or '0')
local cooldown = tonumber(ARGV[5])
if outcome == 'throttled' then
  if now - cut >= cooldown then
    lim = math.max(1, lim * tonumber(ARGV[4]))
    redis.call('HSET', KEYS[2], 'cut', now)
  end
elseif now - cut >= cooldown then
  lim = math.min(ceiling, lim + 1 / math.max(lim, 1))
end
redis.call('HSET', KEYS[2], 'limit', tostring(lim))
redis.call('PEXPIRE', KEYS[2], 3600000)
return 1
"""
)

# A freed slot wakes one process waiting in ``wait_free`` (a list of at most 64 wake marks).
_WAKE = (
    "redis.call('LPUSH', KEYS[3], '1')\nredis.call('LTRIM', KEYS[3], 0, 63)\nredis.call('PEXPIRE', KEYS[3], 60000)\n"
)
# KEYS: lease zset, limit hash, wake list. ARGV: as above.
RELEASE = _RELEASE.replace("redis.call('ZREM', KEYS[1], ARGV[1])\n", "redis.call('ZREM', KEYS[1], ARGV[1])\n" + _WAKE)

# KEYS: lease zset, limit hash. ARGV: as RELEASE, then the new lease id and its ttl ms.
HANDOVER = (
    _RELEASE.replace("if outcome == '' then return 0 end", "if outcome ~= '' then").replace(
        "redis.call('PEXPIRE', KEYS[2], 3600000)\nreturn 1", "redis.call('PEXPIRE', KEYS[2], 3600000)\nend"
    )
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cap2 = math.max(1, math.floor(current_limit(KEYS[2], tonumber(ARGV[3]))))
if redis.call('ZCARD', KEYS[1]) >= cap2 then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[7]), ARGV[6])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]) * 4)
return 1
"""
)

# KEYS: lease zset. Returns live leases.
HELD = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)

# KEYS: lock. ARGV: holder, ttl ms.
LOCK = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
"""

# KEYS: lock. ARGV: holder.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: token hash. ARGV: blob.
FORGET_BLOB = """
if redis.call('HGET', KEYS[1], 'blob') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: token hash. ARGV: blob, lifetime s, remaining ms. Returns the server's expiry (ms).
TOKEN_PUT = (
    _NOW
    + """
local expires = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'blob', ARGV[1], 'expires', expires, 'lifetime', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], expires)
return expires
"""
)

# KEYS: token hash. Returns {blob, remaining ms, lifetime} or false.
TOKEN_GET = (
    _NOW
    + """
local v = redis.call('HMGET', KEYS[1], 'blob', 'expires', 'lifetime')
if not v[1] then return false end
local left = tonumber(v[2]) - now
if left <= 0 then return false end
return {v[1], tostring(left), v[3]}
"""
)

# The server's run id: it changes whenever the server restarts (even from a snapshot on disk).
_RUN = "local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') or ''\n"

# KEYS: epoch hash. ARGV: the caller's known epoch ('' for none), a candidate id.
# Returns {id, age ms, recreated '0'/'1'}.
EPOCH = (
    _NOW
    + _RUN
    + """
local cur = redis.call('HMGET', KEYS[1], 'id', 'run', 'birth', 'recreated')
if cur[1] and cur[2] == run then
  local recreated = cur[4] or '0'
  if ARGV[1] ~= '' and ARGV[1] ~= cur[1] and recreated ~= '1' then
    recreated = '1'
    redis.call('HSET', KEYS[1], 'recreated', '1')
  end
  return {cur[1], tostring(now - tonumber(cur[3])), recreated}
end
local recreated = '0'
if cur[1] or ARGV[1] ~= '' then recreated = '1' end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'run', run, 'birth', now, 'recreated', recreated)
return {ARGV[2], '0', recreated}
"""
)

# KEYS: done set, claim lock, claimed set, epoch hash. ARGV: item, holder, ttl ms, epoch ('' for
# no check), grace ms.
CLAIM_ITEM = (
    _NOW
    + _RUN
    + """
if ARGV[4] ~= '' then
  local cur = redis.call('HMGET', KEYS[4], 'id', 'run', 'birth')
  if cur[1] ~= ARGV[4] or cur[2] ~= run then return 'lost' end
  if now - tonumber(cur[3]) < tonumber(ARGV[5]) then return 'wait' end
end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 'done' end
local cur = redis.call('GET', KEYS[2])
if cur and cur ~= ARGV[2] then return 'busy' end
redis.call('SET', KEYS[2], ARGV[2], 'PX', tonumber(ARGV[3]))
if redis.call('SADD', KEYS[3], ARGV[1]) == 1 then return 'new' end
return 'again'
"""
)

# KEYS: done set, then one claim lock per item. ARGV: holder, then the items.
FINISH_ITEMS = """
for i = 2, #KEYS do
  redis.call('SADD', KEYS[1], ARGV[i])
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return #KEYS - 1
"""

# KEYS: members zset. ARGV: holder, ttl ms.
JOIN = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 4)
return redis.call('ZCARD', KEYS[1])
"""
)


def _ssl_verify(exc: BaseException) -> bool:
    import ssl

    seen: BaseException | None = exc
    for _ in range(5):  # the SSL error may be wrapped in redis-py's ConnectionError
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def redacted(url: str) -> str:
    """The URL without its password (for repr, logs and ``doctor``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


class RedisBackend:
    """Coordinator state in a Redis server (see the module docstring for the keys)."""

    kind = "redis"

    def __init__(self, url: str, *, socket_timeout: float = 2.0) -> None:
        import redis

        query = parse_qs(urlsplit(url).query)
        self.prefix = (query.pop("prefix", ["gigapy"])[0] or "gigapy") + ":"
        parts = urlsplit(url)
        rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
        clean = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        self.url = redacted(url)
        tls: dict[str, Any] = {}
        if parts.scheme.lower() == "rediss" and "ssl_check_hostname" not in query:
            tls["ssl_check_hostname"] = True  # verified like any HTTPS server (older redis-py did not)
        self._client = redis.Redis.from_url(
            clean,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=10,
            retry_on_timeout=False,
            **tls,
        )
        del clean, url, parts
        c = self._client
        self._acquire = c.register_script(ACQUIRE)
        self._renew = c.register_script(RENEW)
        self._release = c.register_script(RELEASE)
        self._held = c.register_script(HELD)
        self._handover = c.register_script(HANDOVER)
        self._lock = c.register_script(LOCK)
        self._unlock = c.register_script(UNLOCK)
        self._token_drop = c.register_script(FORGET_BLOB)
        self._token_put = c.register_script(TOKEN_PUT)
        self._token_get = c.register_script(TOKEN_GET)
        self._join = c.register_script(JOIN)
        self._claim_item = c.register_script(CLAIM_ITEM)
        self._epoch = c.register_script(EPOCH)
        self._finish_items = c.register_script(FINISH_ITEMS)

    def __repr__(self) -> str:
        return f"RedisBackend({self.url!r})"

    def explain(self, exc: BaseException) -> CoordinatorError | None:
        """A clear error for a failure that waiting will not cure (credentials, TLS), else None."""
        import redis

        text = str(exc)
        upper = text.upper()
        if isinstance(exc, redis.AuthenticationError) or upper.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
            if "REQUIRED" in upper or upper.startswith("NOAUTH"):
                return CoordinatorError(
                    f"coordinator {self.url}: the Redis server requires a password: "
                    "put it in the URL (rediss://:PASSWORD@host:port/0, or rediss://USER:PASSWORD@...)"
                )
            return CoordinatorError(
                f"coordinator {self.url}: the Redis server refused the credentials in the URL "
                "(wrong password or ACL user)"
            )
        if "CERTIFICATE_VERIFY_FAILED" in upper or "CERTIFICATE VERIFY FAILED" in upper or _ssl_verify(exc):
            reason = "the server's certificate is not signed by a trusted CA, or not for this host"
            return CoordinatorError(
                f"coordinator {self.url}: TLS certificate verification failed ({reason}); give the server's "
                "CA with ?ssl_ca_certs=/path/to/ca.pem in the URL"
            )
        if "WRONG VERSION NUMBER" in upper or "RECORD_LAYER_FAILURE" in upper:
            return CoordinatorError(
                f"coordinator {self.url}: the server does not speak TLS: use redis://, not rediss://"
            )
        return None

    def _k(self, kind: str, name: str = "") -> str:
        return f"{self.prefix}{kind}:{name}" if name else f"{self.prefix}{kind}"

    def acquire(self, key: str, lease_id: str, ttl: float, ceiling: int, epoch: str = "") -> bool | None:
        """See :meth:`Backend.acquire`."""
        got = self._acquire(
            keys=[self._k("lease", key), self._k("limit", key), self._k("epoch")],
            args=[lease_id, int(ttl * 1000), ceiling, epoch],
        )
        return None if int(got) < 0 else bool(got)

    def renew(self, leases: list[tuple[str, str]], ttl: float) -> None:
        """See :meth:`Backend.renew`."""
        if leases:
            self._renew(keys=[self._k("lease", k) for k, _ in leases], args=[int(ttl * 1000)] + [i for _, i in leases])

    def release(self, key: str, lease_id: str, outcome: str | None, ceiling: int) -> None:
        """See :meth:`Backend.release`."""
        self._release(
            keys=[self._k("lease", key), self._k("limit", key), self._k("wake", key)],
            args=[lease_id, outcome or "", ceiling, BACKOFF, int(COOLDOWN * 1000)],
        )

    def wait_free(self, key: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a slot of ``key`` given back by any process (True: one
        was; a lease may still be taken by someone else first). One blocking pop, no polling."""
        return self._client.blpop([self._k("wake", key)], timeout=timeout) is not None

    def wake(self, key: str) -> None:
        """Put a wake mark back (a process woke but no longer needed the slot)."""
        self._client.lpush(self._k("wake", key), "1")

    def handover(self, key: str, lease_id: str, outcome: str | None, ceiling: int, new_id: str, ttl: float) -> bool:
        """See :meth:`Backend.handover`."""
        got = self._handover(
            keys=[self._k("lease", key), self._k("limit", key)],
            args=[lease_id, outcome or "", ceiling, BACKOFF, int(COOLDOWN * 1000), new_id, int(ttl * 1000)],
        )
        return bool(got)

    def limit(self, key: str, ceiling: int) -> float:
        """See :meth:`Backend.limit`."""
        raw = self._client.hget(self._k("limit", key), "limit")
        return float(ceiling) if raw is None else min(float(raw), float(ceiling))

    def held(self, key: str) -> int:
        """See :meth:`Backend.held`."""
        return int(self._held(keys=[self._k("lease", key)]))

    def token_get(self, name: str) -> StoredToken | None:
        """See :meth:`Backend.token_get` (expiry as seconds from now, on the local clock)."""
        import time

        got = self._token_get(keys=[self._k("token", name)])
        if not got:
            return None
        blob, left_ms, lifetime = got
        return StoredToken(bytes(blob), time.time() + float(left_ms) / 1000, float(lifetime))

    def token_put(self, name: str, token: StoredToken) -> None:
        """See :meth:`Backend.token_put`."""
        import time

        left = max(1, int((token.expires - time.time()) * 1000))
        self._token_put(keys=[self._k("token", name)], args=[token.blob, token.lifetime, left])

    def token_drop(self, name: str, blob: bytes) -> None:
        """See :meth:`Backend.token_drop`."""
        self._token_drop(keys=[self._k("token", name)], args=[blob])

    def lock(self, name: str, holder: str, ttl: float) -> bool:
        """See :meth:`Backend.lock`."""
        return bool(self._lock(keys=[self._k("lock", name)], args=[holder, int(ttl * 1000)]))

    def unlock(self, name: str, holder: str) -> None:
        """See :meth:`Backend.unlock`."""
        self._unlock(keys=[self._k("lock", name)], args=[holder])

    def epoch(self, known: str, candidate: str) -> tuple[str, float, bool]:
        """See :meth:`Backend.epoch` (a restarted server is a new epoch even when it kept its data)."""
        got = self._epoch(keys=[self._k("epoch")], args=[known, candidate])
        ident, age_ms, recreated = (x.decode() if isinstance(x, bytes) else str(x) for x in got)
        return ident, float(age_ms) / 1000, recreated == "1"

    def claim_item(self, job: str, item: str, holder: str, ttl: float, epoch: str = "", grace: float = 0.0) -> str:
        """See :meth:`Backend.claim_item`."""
        got = self._claim_item(
            keys=[
                self._k("set", f"done:{job}"),
                self._k("lock", f"claim:{job}:{item}"),
                self._k("set", f"claimed:{job}"),
                self._k("epoch"),
            ],
            args=[item, holder, int(ttl * 1000), epoch, int(grace * 1000)],
        )
        return got.decode() if isinstance(got, bytes) else str(got)

    def finish_items(self, job: str, items: list[str], holder: str) -> None:
        """See :meth:`Backend.finish_items`."""
        if items:
            self._finish_items(
                keys=[self._k("set", f"done:{job}"), *(self._k("lock", f"claim:{job}:{item}") for item in items)],
                args=[holder, *items],
            )

    def item_states(self, job: str, items: list[str]) -> list[str]:
        """See :meth:`Backend.item_states` (one round trip: the done set and the claims' keys;
        a lapsed claim's key has expired)."""
        if not items:
            return []
        pipe = self._client.pipeline(transaction=False)
        pipe.smismember(self._k("set", f"done:{job}"), items)
        pipe.mget([self._k("lock", f"claim:{job}:{item}") for item in items])
        done, holders = pipe.execute()
        return ["done" if d else "busy" if h is not None else "free" for d, h in zip(done, holders, strict=True)]

    def join(self, holder: str, ttl: float) -> int:
        """See :meth:`Backend.join`."""
        return int(self._join(keys=[self._k("members")], args=[holder, int(ttl * 1000)]))

    def set_add(self, name: str, items: list[str]) -> None:
        """See :meth:`Backend.set_add`."""
        if items:
            self._client.sadd(self._k("set", name), *items)

    def set_has(self, name: str, items: list[str]) -> list[bool]:
        """See :meth:`Backend.set_has`."""
        if not items:
            return []
        return [bool(x) for x in self._client.smismember(self._k("set", name), items)]

    def set_members(self, name: str) -> list[str]:
        """See :meth:`Backend.set_members`."""
        found = self._client.smembers(self._k("set", name))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in found)

    def set_size(self, name: str) -> int:
        """See :meth:`Backend.set_size`."""
        return int(self._client.scard(self._k("set", name)))

    def value_get(self, name: str) -> str | None:
        """See :meth:`Backend.value_get`."""
        raw = self._client.get(self._k("value", name))
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def value_set(self, name: str, value: str) -> None:
        """See :meth:`Backend.value_set`."""
        self._client.set(self._k("value", name), value)

    def ping(self) -> dict[str, Any]:
        """PING, the server's version and whether it persists (no secrets)."""
        self._client.ping()
        info = self._client.info("server")
        return {
            "backend": "redis",
            "url": self.url,
            "redis_version": info.get("redis_version"),
            "tls": self.url.startswith("rediss://"),
        }

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
