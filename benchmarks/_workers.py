"""One measurement in a fresh process: ``python -m benchmarks._workers '<json spec>'``.

The spec names a scenario, a contender (gigapy, sdk = the official ``gigachat`` SDK, raw =
httpx / aiohttp doing only JSON encode/decode) and the emulator URL. The worker warms up
(token, connections, lazy model builds), measures, and prints one JSON line on stdout.
Every loop is bounded by a count and by ``max_seconds``. With ``"profile": path`` the
measured section runs under cProfile and the stats are dumped to ``path``.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import json
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks._common import BODY, MESSAGES, MODEL, emulator_stats, open_sockets, rss_bytes, stream_headers

CREDENTIALS = ""  # filled in main() from the spec (the emulator's demo key)
SCOPE = "GIGACHAT_API_PERS"


class Meter:
    """Wall and CPU time of the measured section (optionally profiled)."""

    def __init__(self, profile: str | None) -> None:
        self.profile = profile
        self.profiler: cProfile.Profile | None = None
        self.wall = self.cpu = 0.0

    @contextmanager
    def measure(self) -> Iterator[Meter]:
        if self.profile:
            self.profiler = cProfile.Profile()
            self.profiler.enable()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            yield self
        finally:
            self.wall = time.perf_counter() - wall0
            self.cpu = time.process_time() - cpu0
            if self.profiler is not None:
                self.profiler.disable()
                self.profiler.dump_stats(self.profile)


# --- contenders: clients --------------------------------------------------------------------


def gigapy_sync(url: str, **kw: Any) -> Any:
    from gigapy import GigaChat

    return GigaChat(credentials=CREDENTIALS, scope=SCOPE, base_url=f"{url}/api/v1", auth_url=f"{url}/api/v2/oauth",
                    model=MODEL, **kw)


def gigapy_async(url: str, **kw: Any) -> Any:
    from gigapy import AsyncGigaChat

    return AsyncGigaChat(credentials=CREDENTIALS, scope=SCOPE, base_url=f"{url}/api/v1",
                         auth_url=f"{url}/api/v2/oauth", model=MODEL, **kw)


def sdk_client(url: str, **kw: Any) -> Any:
    from gigachat import GigaChat

    if "access_token" not in kw:
        kw["credentials"] = CREDENTIALS
    return GigaChat(base_url=f"{url}/api/v1", auth_url=f"{url}/api/v2/oauth", scope=SCOPE, model=MODEL,
                    verify_ssl_certs=False, **kw)


def sdk_headers(headers: dict[str, str]) -> None:
    """The official SDK sends extra headers through a context variable."""
    from gigachat.context import custom_headers_cvar

    custom_headers_cvar.set(headers)


def raw_token(url: str) -> str:
    import httpx

    resp = httpx.post(f"{url}/api/v2/oauth", data={"scope": SCOPE},
                      headers={"Authorization": f"Basic {CREDENTIALS}", "RqUID": str(uuid.uuid4())})
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def raw_headers(token: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json",
            **(extra or {})}


def count_sse(lines: list[bytes]) -> tuple[int, bool]:
    """Raw SSE handling: ``data:`` lines through json.loads; returns (chunks, saw [DONE])."""
    n = 0
    for line in lines:
        if line.startswith(b"data:"):
            data = line[5:].strip()
            if data == b"[DONE]":
                return n, True
            json.loads(data)
            n += 1
    return n, False


class RawSSE:
    """Bytes in, complete lines out (raw contender): split on newlines, keep the tail."""

    __slots__ = ("chunks", "done", "tail")

    def __init__(self) -> None:
        self.tail = b""
        self.chunks = 0
        self.done = False

    def feed(self, data: bytes) -> None:
        buf = self.tail + data if self.tail else data
        lines = buf.split(b"\n")
        self.tail = lines.pop()
        n, done = count_sse(lines)
        self.chunks += n
        self.done = self.done or done


# --- async load driver ----------------------------------------------------------------------


async def run_load(call: Callable[[], Awaitable[Any]], total: int, concurrency: int, max_seconds: float) -> int:
    """``total`` calls by ``concurrency`` workers, stopping early at ``max_seconds``; returns calls done."""
    started = done = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal started, done
        while started < total and time.perf_counter() < deadline:
            started += 1
            await call()
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def async_caller(contender: str, url: str, concurrency: int, stack: list[Callable[[], Awaitable[None]]]
                       ) -> Callable[[], Awaitable[Any]]:
    """A zero-argument coroutine function doing one small completion; closers go to ``stack``."""
    if contender == "gigapy":
        client = gigapy_async(url, max_connections=concurrency)
        stack.append(client.aclose)

        async def call() -> Any:
            return await client.completion(MESSAGES)

        return call
    if contender == "sdk":
        sdk = sdk_client(url, max_connections=concurrency)
        stack.append(sdk.aclose)
        payload = dict(BODY)

        async def sdk_call() -> Any:
            return await sdk.achat(payload)

        return sdk_call
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    stack.append(session.close)
    headers = raw_headers(await asyncio.to_thread(raw_token, url))
    endpoint = f"{url}/api/v1/chat/completions"

    async def raw_call() -> Any:
        async with session.post(endpoint, data=json.dumps(BODY).encode(), headers=headers) as resp:
            data = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
            return json.loads(data)

    return raw_call


# --- scenarios ------------------------------------------------------------------------------


async def s_async(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Scenario 1: async throughput of small completions at a given concurrency."""
    p = spec["params"]
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        call = await async_caller(spec["contender"], spec["url"], p["concurrency"], closers)
        await run_load(call, p["warmup"], p["concurrency"], p["max_seconds"])
        with meter.measure():
            done = await run_load(call, p["requests"], p["concurrency"], p["max_seconds"])
    finally:
        for close in closers:
            await close()
    return {"value": done / meter.wall, "done": done, "wall_s": meter.wall, "cpu_us": meter.cpu / done * 1e6}


def s_sync(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Scenario 2: sequential sync completions; the metric is client CPU time per request."""
    p, url, contender = spec["params"], spec["url"], spec["contender"]
    close: Callable[[], None]
    if contender == "gigapy":
        client = gigapy_sync(url)
        close = client.close

        def call() -> Any:
            return client.completion(MESSAGES)
    elif contender == "sdk":
        sdk = sdk_client(url)
        close = sdk.close
        payload = dict(BODY)

        def call() -> Any:
            return sdk.chat(payload)
    else:
        import httpx

        http = httpx.Client()
        close = http.close
        headers = raw_headers(raw_token(url))
        endpoint = f"{url}/api/v1/chat/completions"

        def call() -> Any:
            resp = http.post(endpoint, content=json.dumps(BODY).encode(), headers=headers)
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}")
            return json.loads(resp.content)
    try:
        deadline = time.perf_counter() + p["max_seconds"]
        for _ in range(p["warmup"]):
            call()
        done = 0
        with meter.measure():
            while done < p["requests"] and time.perf_counter() < deadline:
                call()
                done += 1
    finally:
        close()
    return {"value": meter.cpu / done * 1e6, "done": done, "wall_us": meter.wall / done * 1e6}


def s_stream(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Scenario 3a: one (sync) stream of N one-token chunks consumed as typed chunks."""
    p, url, contender = spec["params"], spec["url"], spec["contender"]
    tokens, warm = p["tokens"], p["warmup_tokens"]
    if contender == "gigapy":
        client = gigapy_sync(url)

        def consume(n: int) -> int:
            count = 0
            with client.completion_stream(MESSAGES, extra_headers=stream_headers(n)) as stream:
                for _chunk in stream:
                    count += 1
            return count

        close: Callable[[], None] = client.close
    elif contender == "sdk":
        sdk = sdk_client(url)
        payload = dict(BODY)

        def consume(n: int) -> int:
            sdk_headers(stream_headers(n))
            count = 0
            for _chunk in sdk.stream(payload):
                count += 1
            return count

        close = sdk.close
    else:
        import httpx

        http = httpx.Client()
        headers = raw_headers(raw_token(url), {"Accept": "text/event-stream"})
        endpoint = f"{url}/api/v1/chat/completions"
        body = {**BODY, "stream": True}

        def consume(n: int) -> int:
            sse = RawSSE()
            with http.stream("POST", endpoint, content=json.dumps(body).encode(),
                             headers={**headers, **stream_headers(n)}) as resp:
                for data in resp.iter_bytes():
                    sse.feed(data)
                    if sse.done:
                        break
            return sse.chunks

        close = http.close
    try:
        consume(warm)
        with meter.measure():
            count = consume(tokens)
    finally:
        close()
    return {"value": count / meter.wall, "chunks": count, "wall_s": meter.wall, "cpu_us_per_chunk":
            meter.cpu / count * 1e6}


async def s_streams(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Scenario 3b: many concurrent async streams; the metric is total chunks per second."""
    p, url, contender = spec["params"], spec["url"], spec["contender"]
    streams, tokens = p["streams"], p["tokens"]
    closers: list[Callable[[], Awaitable[None]]] = []
    consume: Callable[[dict[str, str]], Awaitable[int]]
    if contender == "gigapy":
        client = gigapy_async(url, max_connections=streams)
        closers.append(client.aclose)

        async def consume(headers: dict[str, str]) -> int:
            count = 0
            async with client.completion_stream(MESSAGES, extra_headers=headers) as stream:
                async for _chunk in stream:
                    count += 1
            return count
    elif contender == "sdk":
        sdk = sdk_client(url, max_connections=streams)
        closers.append(sdk.aclose)
        payload = dict(BODY)

        async def consume(headers: dict[str, str]) -> int:
            sdk_headers(headers)  # tasks run in copies of the context: set per task
            count = 0
            async for _chunk in sdk.astream(payload):
                count += 1
            return count
    else:
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=streams))
        closers.append(session.close)
        base = raw_headers(await asyncio.to_thread(raw_token, url), {"Accept": "text/event-stream"})
        endpoint = f"{url}/api/v1/chat/completions"
        body = {**BODY, "stream": True}

        async def consume(headers: dict[str, str]) -> int:
            sse = RawSSE()
            async with session.post(endpoint, data=json.dumps(body).encode(), headers={**base, **headers}) as resp:
                async for data in resp.content.iter_any():
                    sse.feed(data)
                    if sse.done:
                        break
            return sse.chunks

    async def bounded(headers: dict[str, str]) -> int:
        return await asyncio.wait_for(consume(headers), p["max_seconds"])

    try:
        await asyncio.gather(*(bounded(stream_headers(20)) for _ in range(min(streams, 16))))  # warm-up
        with meter.measure():
            counts = await asyncio.gather(*(bounded(stream_headers(tokens)) for _ in range(streams)))
    finally:
        for close in closers:
            await close()
    total = sum(counts)
    return {"value": total / meter.wall, "chunks": total, "wall_s": meter.wall,
            "cpu_us_per_chunk": meter.cpu / total * 1e6}


async def s_memory(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Scenario 5a: RSS growth over many completions on one (async) client."""
    p = spec["params"]
    closers: list[Callable[[], Awaitable[None]]] = []
    samples = []
    try:
        call = await async_caller(spec["contender"], spec["url"], p["concurrency"], closers)
        await run_load(call, p["warmup"], p["concurrency"], p["max_seconds"])
        gc.collect()
        before = rss_bytes()
        done = 0
        deadline = time.perf_counter() + p["max_seconds"]
        with meter.measure():
            while done < p["requests"] and time.perf_counter() < deadline:
                step = min(p["requests"] - done, p["requests"] // 5 or 1)
                done += await run_load(call, step, p["concurrency"], deadline - time.perf_counter())
                samples.append((done, round((rss_bytes() - before) / 1e6, 2)))
        gc.collect()
        after = rss_bytes()
    finally:
        for close in closers:
            await close()
    return {"value": (after - before) / 1e6, "done": done, "rss_before_mb": before / 1e6, "rss_after_mb": after / 1e6,
            "samples": samples, "req_per_s": done / meter.wall}


async def s_clients(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Scenario 5b: N async clients created, used once and closed; sockets and RSS after."""
    p, url, contender = spec["params"], spec["url"], spec["contender"]
    token = await asyncio.to_thread(raw_token, url) if contender != "gigapy" else ""

    async def one() -> None:
        if contender == "gigapy":
            async with gigapy_async(url) as client:
                await client.completion(MESSAGES)
        elif contender == "sdk":
            # A static token: with credentials every new SDK client would fetch its own token and
            # hit the OAuth endpoint's 10 requests/second limit (gigapy shares one process-wide cache).
            sdk = sdk_client(url, access_token=token)
            try:
                await sdk.achat(dict(BODY))
            finally:
                await sdk.aclose()
        else:
            import aiohttp

            async with aiohttp.ClientSession() as session, session.post(
                    f"{url}/api/v1/chat/completions", data=json.dumps(BODY).encode(),
                    headers=raw_headers(token)) as resp:
                json.loads(await resp.read())

    for _ in range(3):
        await one()  # warm-up: imports, lazy model builds, the token
    await asyncio.sleep(0.2)
    gc.collect()
    sockets0, rss0 = open_sockets(), rss_bytes()
    server0 = emulator_stats(url)["open_connections"]
    done = 0
    deadline = time.perf_counter() + p["max_seconds"]
    with meter.measure():
        while done < p["clients"] and time.perf_counter() < deadline:
            await one()
            done += 1
    await asyncio.sleep(0.2)  # let closed transports finish
    gc.collect()
    sockets1, rss1 = open_sockets(), rss_bytes()
    server1 = emulator_stats(url)["open_connections"]
    return {"value": (rss1 - rss0) / 1e6, "done": done, "sockets_before": sockets0, "sockets_after": sockets1,
            "sockets_leaked": sockets1 - sockets0, "server_connections_delta": server1 - server0,
            "ms_per_client": meter.wall / max(done, 1) * 1e3}


def s_clients_sync(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Scenario 5b (sync): N sync clients created, used once and closed."""
    p, url, contender = spec["params"], spec["url"], spec["contender"]
    token = raw_token(url) if contender != "gigapy" else ""

    def one() -> None:
        if contender == "gigapy":
            with gigapy_sync(url) as client:
                client.completion(MESSAGES)
        elif contender == "sdk":
            with sdk_client(url, access_token=token) as sdk:
                sdk.chat(dict(BODY))
        else:
            import httpx

            with httpx.Client() as http:
                resp = http.post(f"{url}/api/v1/chat/completions", content=json.dumps(BODY).encode(),
                                 headers=raw_headers(token))
                json.loads(resp.content)

    for _ in range(3):
        one()
    gc.collect()
    sockets0, rss0 = open_sockets(), rss_bytes()
    done = 0
    deadline = time.perf_counter() + p["max_seconds"]
    with meter.measure():
        while done < p["clients"] and time.perf_counter() < deadline:
            one()
            done += 1
    gc.collect()
    sockets1, rss1 = open_sockets(), rss_bytes()
    return {"value": (rss1 - rss0) / 1e6, "done": done, "sockets_before": sockets0, "sockets_after": sockets1,
            "sockets_leaked": sockets1 - sockets0, "ms_per_client": meter.wall / max(done, 1) * 1e3}


async def s_stampede(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Scenario 6: N concurrent first calls on a fresh client (empty token cache).

    Wait = time a call spends getting its bearer token (entering the client's token step to
    leaving it). One token round trip = the wait of the first caller, which fetches the token
    (cold: its connection, the OAuth request, parsing); the OAuth request alone (send to
    response) is reported too.
    """
    p, url, contender = spec["params"], spec["url"], spec["contender"]
    calls = p["calls"]
    spans: list[tuple[float, float]] = []
    trips: list[float] = []
    if contender == "gigapy":
        client = gigapy_async(url)
        inner_token, transport = client._token, client._transport
        inner_send = transport.send

        async def timed_token(stale: str | None) -> str:
            t0 = time.perf_counter()
            try:
                return await inner_token(stale)
            finally:
                spans.append((t0, time.perf_counter()))

        async def timed_send(req: Any) -> Any:
            if "/oauth" not in req.url:
                return await inner_send(req)
            t0 = time.perf_counter()
            try:
                return await inner_send(req)
            finally:
                trips.append(time.perf_counter() - t0)

        client._token = timed_token
        transport.send = timed_send

        async def call() -> Any:
            return await client.completion(MESSAGES)

        close: Callable[[], Awaitable[None]] = client.aclose
    else:
        import gigachat.api.auth as sdk_auth

        sdk = sdk_client(url)
        inner_update, inner_auth = sdk._aupdate_token, sdk_auth.auth_async

        async def timed_update() -> None:
            t0 = time.perf_counter()
            try:
                await inner_update()
            finally:
                spans.append((t0, time.perf_counter()))

        async def timed_auth(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await inner_auth(*args, **kwargs)
            finally:
                trips.append(time.perf_counter() - t0)

        sdk._aupdate_token = timed_update
        sdk_auth.auth_async = timed_auth
        payload = dict(BODY)

        async def call() -> Any:
            return await sdk.achat(payload)

        close = sdk.aclose
    before = emulator_stats(url)["oauth_requests"]
    try:
        with meter.measure():
            results = await asyncio.wait_for(asyncio.gather(*(call() for _ in range(calls)), return_exceptions=True),
                                             p["max_seconds"])
    finally:
        await close()
    oauth = emulator_stats(url)["oauth_requests"] - before
    errors = [r for r in results if isinstance(r, BaseException)]
    return stampede_result(spans, trips, oauth, calls, errors, meter)


def stampede_result(spans: list[tuple[float, float]], trips: list[float], oauth: int, calls: int,
                    errors: list[BaseException], meter: Meter) -> dict[str, Any]:
    spans.sort()
    waits = sorted(end - start for start, end in spans)
    leader = spans[0][1] - spans[0][0]  # the first caller fetches the token: one round trip
    ends = sorted(end for _, end in spans)
    return {"value": waits[-1] * 1e3, "oauth_requests": oauth, "round_trip_ms": leader * 1e3,
            "wait_over_round_trip": waits[-1] / leader, "p50_wait_ms": waits[len(waits) // 2] * 1e3,
            "oauth_send_ms": max(trips) * 1e3 if trips else float("nan"),
            "resume_spread_ms": (ends[-1] - ends[1]) * 1e3 if len(ends) > 1 else 0.0,
            "calls": calls, "timed_waits": len(waits), "errors": len(errors),
            "first_error": repr(errors[0])[:300] if errors else None, "wall_s": meter.wall}


def s_stampede_sync(spec: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """Scenario 6 (sync, gigapy only): N threads make their first call at the same moment.

    The threads meet at a barrier right before the token step, so all N ask the empty cache
    together (otherwise the GIL spreads their request building over longer than one fetch).
    """
    p, url = spec["params"], spec["url"]
    calls = p["calls"]
    spans: list[tuple[float, float]] = []
    trips: list[float] = []
    client = gigapy_sync(url, max_connections=calls)
    inner_token, transport = client._token, client._transport
    inner_send = transport.send
    barrier = threading.Barrier(calls)

    def timed_token(stale: str | None) -> str:
        if stale is None and not spans:
            try:
                barrier.wait(p["max_seconds"])
            except threading.BrokenBarrierError:
                pass
        t0 = time.perf_counter()
        try:
            return str(inner_token(stale))
        finally:
            spans.append((t0, time.perf_counter()))

    def timed_send(req: Any) -> Any:
        if "/oauth" not in req.url:
            return inner_send(req)
        t0 = time.perf_counter()
        try:
            return inner_send(req)
        finally:
            trips.append(time.perf_counter() - t0)

    client._token = timed_token
    transport.send = timed_send
    gate = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        gate.wait()
        try:
            client.completion(MESSAGES)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(calls)]
    for t in threads:
        t.start()
    before = emulator_stats(url)["oauth_requests"]
    deadline = time.monotonic() + p["max_seconds"]
    with meter.measure():
        gate.set()
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0.1))
    client.close()
    oauth = emulator_stats(url)["oauth_requests"] - before
    return stampede_result(spans, trips, oauth, calls, errors, meter)


SCENARIOS: dict[str, Callable[[dict[str, Any], Meter], Any]] = {
    "async": s_async,
    "sync": s_sync,
    "stream": s_stream,
    "streams": s_streams,
    "memory": s_memory,
    "clients": s_clients,
    "clients_sync": s_clients_sync,
    "stampede": s_stampede,
    "stampede_sync": s_stampede_sync,
}


def main() -> None:
    global CREDENTIALS
    spec = json.loads(sys.argv[1])
    CREDENTIALS = spec["credentials"]
    meter = Meter(spec.get("profile"))
    result = SCENARIOS[spec["kind"]](spec, meter)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    result["rss_end_mb"] = rss_bytes() / 1e6
    print(json.dumps(result))


if __name__ == "__main__":
    main()
