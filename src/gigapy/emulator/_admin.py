"""Admin routes under ``/__emulator__/`` (no auth, never faulted, never logged)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ._http import error_response, json_response
from ._pipeline import STATE_KEY
from ._state import State

PREFIX = "/__emulator__"


def _state(request: web.Request) -> State:
    return request.app[STATE_KEY]


async def get_faults(request: web.Request) -> web.Response:
    """``GET /__emulator__/faults``: current faults and queue."""
    return json_response(_state(request).faults.snapshot())


async def post_faults(request: web.Request) -> web.Response:
    """``POST /__emulator__/faults``: ``{"spec", "routes"}`` sets rates, ``{"enqueue", "routes"}`` queues."""
    faults = _state(request).faults
    try:
        body: Any = json.loads(await request.read() or b"{}")
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        routes = body.get("routes")
        if routes is not None and not (isinstance(routes, list) and all(isinstance(r, str) for r in routes)):
            raise ValueError("routes must be a list of strings")
        if "enqueue" in body:
            kinds = body["enqueue"]
            if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
                raise ValueError("enqueue must be a list of fault kinds")
            faults.enqueue(*kinds, routes=routes)
        else:
            faults.set(str(body.get("spec", "")), routes)
    except ValueError as exc:
        return error_response(400, str(exc))
    return json_response(faults.snapshot())


async def delete_faults(request: web.Request) -> web.Response:
    """``DELETE /__emulator__/faults``: remove every fault."""
    faults = _state(request).faults
    faults.clear()
    return json_response(faults.snapshot())


async def get_stats(request: web.Request) -> web.Response:
    """``GET /__emulator__/stats``."""
    return json_response(_state(request).snapshot())


async def reset(request: web.Request) -> web.Response:
    """``POST /__emulator__/reset``: zero the counters and clear the request log."""
    state = _state(request)
    state.reset_stats()
    return json_response(state.snapshot())


async def expire_tokens(request: web.Request) -> web.Response:
    """``POST /__emulator__/expire-tokens``: every issued token is expired from now on."""
    state = _state(request)
    state.tokens.expire_all()
    return json_response({"expired": len(state.tokens)})


async def get_requests(request: web.Request) -> web.Response:
    """``GET /__emulator__/requests``: the request log (bodies as UTF-8 text)."""
    items = [
        {
            "method": r.method,
            "path": r.path,
            "query": r.query,
            "headers": dict(r.headers),
            "body": r.body.decode("utf-8", "replace"),
            "time": r.time,
        }
        for r in _state(request).log
    ]
    return json_response({"requests": items})


def add_routes(app: web.Application) -> None:
    """Register the admin routes."""
    router = app.router
    router.add_get(f"{PREFIX}/faults", get_faults)
    router.add_post(f"{PREFIX}/faults", post_faults)
    router.add_delete(f"{PREFIX}/faults", delete_faults)
    router.add_get(f"{PREFIX}/stats", get_stats)
    router.add_post(f"{PREFIX}/reset", reset)
    router.add_post(f"{PREFIX}/expire-tokens", expire_tokens)
    router.add_get(f"{PREFIX}/requests", get_requests)
