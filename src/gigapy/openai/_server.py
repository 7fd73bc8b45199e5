"""``gigapy serve``: the OpenAI/Anthropic endpoints as an aiohttp server in front of GigaChat.

- **Keys.** Clients authenticate with the server's own keys (``Authorization: Bearer <key>``
  or Anthropic's ``x-api-key``), never with GigaChat's: the GigaChat credentials stay in this
  process and no header of GigaChat's is passed back. Without keys the server is open (it
  binds 127.0.0.1 unless told otherwise).
- **Limits.** At most ``max_concurrency`` requests in flight per key (per server without
  keys); one more gets a 429 with ``Retry-After`` (the official clients retry it).
- **Health.** ``GET /health`` (no key needed): ``{"status": "ok"|"draining", "in_flight": n}``.
- **Logs.** One structured access-log record per request on the ``gigapy.serve.access``
  logger: request id, key name (never the key), method, path, status, model, stream,
  duration; the request id is also the ``X-Request-ID`` of the reply and of the GigaChat call.
- **Shutdown.** :meth:`Server.drain` stops accepting, lets the requests and streams in
  flight finish (up to ``shutdown_timeout``), then closes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import _telemetry
from .._translate import TranslateOptions
from ._bridge import AsyncBridge, Exchange, Reply, StreamReply

if TYPE_CHECKING:
    from .. import AsyncGigaChat

access_log = logging.getLogger("gigapy.serve.access")
log = logging.getLogger("gigapy.serve")


@dataclass
class ServeConfig:
    """Settings of the server. ``keys`` maps each accepted API key to a name (used in logs)."""

    host: str = "127.0.0.1"
    port: int = 8090
    keys: Mapping[str, str] = field(default_factory=dict)
    max_concurrency: int | None = None
    shutdown_timeout: float = 30.0
    options: TranslateOptions = field(default_factory=TranslateOptions)

    def __repr__(self) -> str:  # the keys are secrets: show their names only
        return (
            f"ServeConfig(host={self.host!r}, port={self.port}, keys={sorted(self.keys.values())!r}, "
            f"max_concurrency={self.max_concurrency}, shutdown_timeout={self.shutdown_timeout})"
        )


def parse_keys(items: list[str]) -> dict[str, str]:
    """``name=key`` or bare ``key`` strings as ``{key: name}`` (bare keys are named key1, key2, ...)."""
    out: dict[str, str] = {}
    for i, item in enumerate(items, 1):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        name, sep, key = item.partition("=")
        if not sep:
            name, key = f"key{i}", item
        name, key = name.strip(), key.strip()
        if len(key) < 8:
            raise ValueError(f"API key {name!r} is shorter than 8 characters")
        if key in out:
            raise ValueError(f"API key {name!r} repeats the key of {out[key]!r}")
        out[key] = name
    return out


def _presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.headers.get("api-key")


class Server:
    """The aiohttp application and its run state (in-flight count, draining)."""

    def __init__(self, client: AsyncGigaChat, config: ServeConfig | None = None) -> None:
        self.client = client
        self.config = config or ServeConfig()
        self.bridge = AsyncBridge(client, self.config.options)
        self.in_flight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._limits: dict[str, asyncio.Semaphore] = {}
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # --- HTTP ----------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "draining" if self.draining else "ok", "in_flight": self.in_flight})

    def _who(self, request: web.Request) -> str | None:
        """The name of the key presented; None when keys are required and it is not one of them."""
        if not self.config.keys:
            return "-"
        presented = _presented_key(request)
        if not presented:
            return None
        for key, name in self.config.keys.items():
            if hmac.compare_digest(presented.encode(), key.encode()):
                return name
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        body = await request.read() if request.can_read_body else b""
        ex = self.bridge.begin(request.method, request.path, request.headers, body)
        rid = ex.request_id if isinstance(ex, Exchange) else ex.headers.get("x-request-id", "-")
        who = self._who(request)
        record: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "request_id": rid,
            "key": who or "?",
            "method": request.method,
            "path": request.path,
            "remote": request.remote,
        }
        if isinstance(ex, Exchange):
            record.update(model=ex.model, stream=ex.stream)
            span = _telemetry.serve_start(
                self.bridge.client, ex, request.method, request.path, request.headers, remote=True
            )
        else:
            span = None
        status = 500
        try:
            if who is None:
                reply = self._refusal(
                    ex,
                    401,
                    "invalid_api_key",
                    "authentication_error",
                    "a valid API key of this server is required (Authorization: Bearer ...)",
                )
            elif self.draining:
                reply = self._refusal(ex, 503, "shutting_down", "server_error", "the server is shutting down")
            elif isinstance(ex, Reply):
                reply = ex
            else:
                status, response = await self._limited(request, ex, who)
                return response
            status = reply.status
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        finally:
            _telemetry.serve_end(span, status)
            record.update(status=status, ms=round((time.perf_counter() - started) * 1000, 1))
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(json.dumps(record, ensure_ascii=False), extra={"access": record})

    def _refusal(
        self,
        ex: Exchange | Reply,
        status: int,
        code: str,
        kind: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        rid = ex.request_id if isinstance(ex, Exchange) else ex.headers.get("x-request-id", "")
        anthropic = isinstance(ex, Exchange) and ex.shape == "anthropic"
        if anthropic:
            kinds = {401: "authentication_error", 429: "rate_limit_error", 503: "overloaded_error"}
            body: dict[str, Any] = {
                "type": "error",
                "error": {"type": kinds.get(status, "api_error"), "message": message},
            }
        else:
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return Reply(
            status,
            {"content-type": "application/json", "x-request-id": rid, **(headers or {})},
            json.dumps(body).encode(),
        )

    async def _limited(self, request: web.Request, ex: Exchange, who: str) -> tuple[int, web.StreamResponse]:
        limit = self.config.max_concurrency
        gate = None
        if limit is not None:
            gate = self._limits.setdefault(who, asyncio.Semaphore(limit))
            if gate.locked():
                reply = self._refusal(
                    ex,
                    429,
                    "concurrency_limit",
                    "rate_limit_error",
                    f"at most {limit} requests in flight per key",
                    {"Retry-After": "1"},
                )
                return reply.status, web.Response(status=reply.status, body=reply.body, headers=reply.headers)
            await gate.acquire()
        self.in_flight += 1
        self._idle.clear()
        try:
            return await self._answer(request, ex)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
            if gate is not None:
                gate.release()

    async def _answer(self, request: web.Request, ex: Exchange) -> tuple[int, web.StreamResponse]:
        reply = await self.bridge.handle_exchange(ex)
        if isinstance(reply, Reply):
            return reply.status, web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        assert isinstance(reply, StreamReply)
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        try:
            await response.prepare(request)
            async for frame in reply.frames:
                await response.write(frame)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            await reply.frames.aclose()
            raise
        return reply.status, response

    # --- running ---------------------------------------------------------------------------

    async def start(self) -> int:
        """Listen (127.0.0.1 unless configured otherwise); returns the bound port."""
        self._runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=self.config.shutdown_timeout
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await self._site.start()
        server = getattr(self._site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self.config.port

    async def drain(self) -> bool:
        """Stop accepting, finish what is in flight (streams included), close. False if time ran out."""
        self.draining = True
        if self._site is not None:
            await self._site.stop()
        try:
            await asyncio.wait_for(self._idle.wait(), self.config.shutdown_timeout)
            finished = True
        except asyncio.TimeoutError:
            log.warning(
                "shutdown: %d request(s) still in flight after %.0f s; closing them",
                self.in_flight,
                self.config.shutdown_timeout,
            )
            finished = False
        if self._runner is not None:
            await self._runner.cleanup()
        return finished


async def serve(
    client_settings: Mapping[str, Any], config: ServeConfig, *, stop: asyncio.Event | None = None, on_ready: Any = None
) -> bool:
    """Run the server until SIGINT/SIGTERM (or ``stop`` is set), then drain. TLS toward GigaChat
    is always verified: ``verify_ssl_certs=False`` is refused."""
    import signal

    from .. import AsyncGigaChat

    settings = dict(client_settings)
    if settings.get("verify_ssl_certs") is False:
        raise ValueError(
            "gigapy serve always verifies GigaChat's TLS certificate; give the Russian CA with "
            "ca_bundle_file (or run `gigapy certs install`) instead of turning verification off"
        )
    settings["verify_ssl_certs"] = True  # wins over GIGACHAT_VERIFY_SSL_CERTS=false in the environment
    client = AsyncGigaChat(**settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            pass
    server = Server(client, config)
    if not config.keys and config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s without API keys: anyone who reaches the port uses your GigaChat account (give --api-key)",
            config.host,
        )
    try:
        port = await server.start()
        log.info("listening on http://%s:%d/v1", config.host, port)
        if on_ready is not None:
            on_ready(port)
        await stop.wait()
        log.info("shutting down: finishing %d request(s) in flight", server.in_flight)
        return await server.drain()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        await client.aclose()
