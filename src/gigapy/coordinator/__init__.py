"""Share one account between many processes: tokens, concurrency and batch claims.

A fleet of bots, workers or pipeline tasks on one GigaChat account should fetch one token per
token lifetime, never exceed the account's concurrency, back off together on 429 and grow back
together. :func:`connect` builds the coordinator that does this from a URL:

- ``memory://`` (the default): this process only, today's behaviour;
- ``file:///path/to/dir``: several processes on one host, no server (``fcntl`` + a state file);
- ``redis://host:6379/0`` or ``rediss://user:password@host:6380/0``: many hosts, through Redis
  (the ``redis`` extra: ``pip install 'gigapy[redis]'``). ``rediss://`` verifies the server's
  certificate and host name; ``?ssl_ca_certs=/path/ca.pem`` gives a private CA.

``?lease_ttl=15`` sets how long a dead process's leases outlive it (seconds). See the fleet guide
(docs/fleet.md) for the security model of tokens kept in a shared store.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ConfigurationError, CoordinatorError, LeaseTimeout
from ._coordinator import Coordinator, Lease, Pool, PoolMember

__all__ = [
    "Coordinator",
    "CoordinatorError",
    "Lease",
    "LeaseTimeout",
    "Pool",
    "PoolMember",
    "connect",
    "model_class",
    "shared",
]

SCHEMES = ("memory", "file", "redis", "rediss", "unix")


def connect(url: str | None = None, *, lease_ttl: float | None = None, field: str = "coordinator") -> Coordinator:
    """A new coordinator for ``url`` (see the module doc); bad URLs raise naming ``field``."""
    from ._redis import redacted

    text = (url or "memory://").strip()
    parts = urlsplit(text if "://" in text else text + "://")
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigurationError(
            field,
            f"unknown coordinator {redacted(text)!r}: expected one of "
            "memory://, file:///path, redis://host:port/db, rediss://...",
        )
    query = parse_qs(parts.query)
    ttl = lease_ttl
    if ttl is None and "lease_ttl" in query:
        try:
            ttl = float(query["lease_ttl"][0])
        except ValueError:
            raise ConfigurationError(field, f"lease_ttl must be seconds, got {query['lease_ttl'][0]!r}") from None
    if ttl is not None and not (0 < ttl <= 3600):
        raise ConfigurationError(field, f"lease_ttl must be in (0, 3600] seconds, got {ttl!r}")
    options: dict[str, Any] = {} if ttl is None else {"lease_ttl": ttl}
    if scheme == "memory":
        from ._local import MemoryBackend

        return Coordinator(MemoryBackend(), url="memory://", **options)
    if scheme == "file":
        from ._local import FileBackend

        path = unquote(parts.netloc + parts.path)
        if not path:
            raise ConfigurationError(field, "file:// needs a directory, e.g. file:///var/tmp/gigapy-fleet")
        return Coordinator(FileBackend(Path(path)), url=f"file://{path}", transient=(OSError,), **options)
    try:
        import redis
    except ImportError:
        raise ConfigurationError(field, "a redis:// coordinator needs redis-py: pip install 'gigapy[redis]'") from None
    from ._redis import RedisBackend

    backend = RedisBackend(_drop_query(_drop_query(text, "lease_ttl"), "limit"))  # limit= is the client's
    return Coordinator(backend, url=backend.url, transient=(redis.RedisError, OSError), **options)


def _drop_query(url: str, name: str) -> str:
    parts = urlsplit(url)
    kept = "&".join(p for p in parts.query.split("&") if p and not p.startswith(name + "="))
    return parts._replace(query=kept).geturl()


_SHARED: dict[str, Coordinator] = {}
_SHARED_LOCK = threading.Lock()


def shared(url: str | None, *, field: str = "coordinator") -> Coordinator:
    """The process-wide coordinator for ``url`` (built once; every client with that URL shares it)."""
    key = (url or "memory://").strip()
    found = _SHARED.get(key)
    if found is None:
        with _SHARED_LOCK:
            found = _SHARED.get(key)
            if found is None:
                found = _SHARED[key] = connect(key, field=field)
    return found


def model_class(model: str | None) -> str:
    """The lease class of a model: ``embeddings`` for embedders, ``chat`` for everything else."""
    name = (model or "").lower()
    return "embeddings" if "embedding" in name else "chat"
