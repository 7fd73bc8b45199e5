"""The path every request takes: log, stats, ids, faults, bearer check, limits, handler, error shape.

One wrapper per route instead of aiohttp middlewares keeps the hot path short.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from ._auth import GatewayError, TokenRecord, authenticate, certificate_record
from ._faults import PRE_KINDS, status_fault_response
from ._http import ApiError, OAuthError, error_response, json_response, new_uuid4
from ._state import State
from ._timing import generate_for, is_whole_answer

log = logging.getLogger("gigapy.emulator")

STATE_KEY: web.AppKey[State] = web.AppKey("gigapy_emulator_state", State)

API, OAUTH, TOKEN = "api", "oauth", "token"


class Ctx:
    """One request as handlers see it: the parsed ids, the body, the token and the state."""

    __slots__ = ("body", "client_id", "id_headers", "request", "session_id", "state", "token")

    def __init__(self, request: web.Request, state: State, body: bytes) -> None:
        self.request = request
        self.state = state
        self.body = body
        headers = request.headers
        request_id = headers.get("X-Request-ID") or new_uuid4()
        #: The caller's X-Session-ID / X-Client-ID, or None when absent (then generated for the echo).
        self.session_id = headers.get("X-Session-ID") or None
        self.client_id = headers.get("X-Client-ID") or None
        self.id_headers = {
            "X-Request-ID": request_id,
            "X-Session-ID": self.session_id or new_uuid4(),
            "X-Client-ID": self.client_id or new_uuid4(),
        }
        self.token: TokenRecord | None = None

    @property
    def auth(self) -> TokenRecord:
        """The caller's token record (API routes only)."""
        assert self.token is not None
        return self.token

    def header(self, name: str) -> str | None:
        """A request header."""
        return self.request.headers.get(name)


Handler = Callable[[Ctx], Awaitable[Any]]


def endpoint(handler: Handler, name: str, kind: str = API) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a handler with the request pipeline; ``name`` is the route name used in stats."""

    async def serve(request: web.Request) -> web.StreamResponse:
        return await _serve(request, request.app[STATE_KEY], handler, name, kind)

    serve.__name__ = f"serve_{name}"
    return serve


def _count(state: State, name: str, kind: str) -> None:
    stats = state.stats
    if kind == API:
        stats.api_requests[name] += 1
    elif kind == OAUTH:
        stats.oauth_requests += 1
    else:
        stats.token_requests += 1


async def _read_body(request: web.Request) -> bytes | None:
    """The whole body, or None when it is over the size limit."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None


async def _serve(request: web.Request, state: State, handler: Handler, name: str, kind: str) -> web.StreamResponse:
    _count(state, name, kind)
    stats = state.stats
    stats.inflight += 1
    try:
        body = await _read_body(request)
        state.record(request.method, request.path, dict(request.query), CIMultiDict(request.headers), body or b"")
        ctx = Ctx(request, state, body or b"")
        response = await _respond(ctx, handler, kind, body is None)
    finally:
        stats.inflight -= 1
    stats.responses[response.status] += 1
    return response


async def _respond(ctx: Ctx, handler: Handler, kind: str, too_large: bool) -> web.StreamResponse:
    state = ctx.state
    echo = ctx.id_headers if kind == API else {}
    try:
        delay = 0.0
        if state.faults.active:
            delay = state.faults.latency(ctx.request.path, kind != API)
            injected = await _inject_fault(ctx, kind != API, echo, delay)
            if injected is not None:
                return injected
        if too_large:
            raise ApiError(413, "Payload too large")
        if kind != API:
            await generate_for(delay)
            result = await handler(ctx)
        else:
            result = await _authorized(ctx, handler, delay)
    except ApiError as exc:
        return error_response(exc.status, exc.message, {**echo, **exc.headers})
    except GatewayError as exc:
        return web.Response(text=exc.html, status=exc.status, content_type="text/html")
    except OAuthError as exc:
        body = {"code": exc.code, "message": exc.message}
        return json_response(body, exc.status, {"Content-Type": "application/json", **exc.headers})
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("emulator bug while serving %s %s", ctx.request.method, ctx.request.path)
        return error_response(500, "Internal Server Error", echo)
    if isinstance(result, web.StreamResponse):
        return result
    return json_response(result, headers=echo)


async def _authorized(ctx: Ctx, handler: Handler, latency: float) -> Any:
    """Bearer check (client certificate in mTLS-only mode), then the handler inside the caller's
    concurrency slot.

    The slot is held for the whole answer, ``latency_ms`` and generation time included, so a
    scope's limit binds as on the service.
    """
    state = ctx.state
    if state.config.mtls_only:  # the client certificate names the account; a bearer token is not needed
        token = ctx.token = certificate_record(state, ctx.request)
    else:
        token = ctx.token = authenticate(state, ctx.request.headers.get("Authorization"))
    client_id, scope = token.account.client_id, token.scope
    if not state.limits.acquire(client_id, scope):
        raise ApiError(429, "Too many requests", {"Retry-After": str(state.faults.retry_after)})
    try:
        if latency and is_whole_answer(handler):
            return await _within(handler(ctx), latency)
        await generate_for(latency)
        return await handler(ctx)
    finally:
        state.limits.release(client_id, scope)


async def _within(answer: Awaitable[Any], latency: float) -> Any:
    """A whole answer (never streamed) computed inside its generation time, ready when ``latency``
    has passed since the slot was taken: the slot is held ``latency_ms`` (or the computing, if
    longer), as the service holds it for its generation time. Waiting and then computing held it
    for both, and answers finishing together computed one after another on this one thread (ten
    1,024-dim embeddings: +20 ms per round of the quota)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + latency
    try:
        result = await answer
    except (asyncio.CancelledError, ConnectionError):
        raise  # the client left: the slot is freed now, as while waiting
    except BaseException:
        await generate_for(deadline - loop.time())  # an error answer keeps its latency too
        raise
    await generate_for(deadline - loop.time())
    return result


async def _inject_fault(ctx: Ctx, auth_route: bool, echo: dict[str, str], delay: float) -> web.StreamResponse | None:
    """A pre-response fault, if one is due (after ``delay``, the ``latency_ms`` it would have taken)."""
    faults, path = ctx.state.faults, ctx.request.path
    kind = faults.take(path, PRE_KINDS, auth_route)
    if kind is None:
        return None
    await generate_for(delay)
    if kind in ("drop", "stall"):
        if kind == "stall":
            await asyncio.sleep(ctx.state.config.stall_seconds)
        close_connection(ctx.request)
        return web.Response(status=499)
    return status_fault_response(kind, faults.retry_after, echo, faults.retry_after_ms)


def close_connection(request: web.Request) -> None:
    """Close the client connection now, without a (complete) response."""
    transport = request.transport
    if transport is not None:
        transport.close()
