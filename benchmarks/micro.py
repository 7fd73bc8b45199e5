"""gigapy's own CPU per call, without network or server: ``python -m benchmarks.micro``.

The end-to-end runs (``python -m benchmarks``) share two cores with the emulator and are
noisy; this isolates the client's sans-IO layers so small optimisations can be measured:

- ``completion``: ``GigaChat.completion`` / ``AsyncGigaChat.completion`` with a canned transport
  (request building, token cache, the flow, response parsing), µs per call;
- ``stream``: ``ChatStreamState`` + ``Stream`` over canned SSE bytes fed in 64 KiB network
  chunks (SSE decoding, typed chunks, accumulation), µs per chunk.

Median of ``--repeat`` timings (each of ``--number`` calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import MESSAGES, MODEL

BODY = json.dumps({
    "choices": [{"message": {"role": "assistant", "content": "The capital of France is Paris."}, "index": 0,
                 "finish_reason": "stop"}],
    "created": 1732480000, "model": "GigaChat:2.0.28.2", "object": "chat.completion",
    "usage": {"prompt_tokens": 18, "completion_tokens": 8, "total_tokens": 26, "precached_prompt_tokens": 0},
}).encode()
RESPONSE_HEADERS = {"content-type": "application/json; charset=utf-8",
                    "x-request-id": "7b0c1f6e-0000-4000-8000-000000000000",
                    "x-session-id": "d1f7c5a2-0000-4000-8000-000000000000",
                    "x-client-id": "c3a9e0b4-0000-4000-8000-000000000000"}


def sse_bytes(chunks: int) -> bytes:
    parts = [b'data: {"choices":[{"delta":{"content":"\xd0\x9f\xd1\x80\xd0\xb8","role":"assistant"},"index":0}],'
             b'"created":1732480000,"model":"GigaChat:2.0.28.2","object":"chat.completion"}\n\n']
    word = b'data: {"choices":[{"delta":{"content":" word"},"index":0}],"created":1732480000,' \
           b'"model":"GigaChat:2.0.28.2","object":"chat.completion"}\n\n'
    parts += [word] * (chunks - 2)
    parts.append(b'data: {"choices":[{"delta":{"content":""},"index":0,"finish_reason":"stop"}],"created":1732480000,'
                 b'"model":"GigaChat:2.0.28.2","object":"chat.completion","usage":{"prompt_tokens":18,'
                 b'"completion_tokens":50000,"total_tokens":50018}}\n\n')
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def timed(fn: Callable[[], Any], number: int, repeat: int) -> tuple[float, float, float]:
    """(median, min, max) seconds per call over ``repeat`` timings of ``number`` calls."""
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        runs.append((time.process_time() - t0) / number)
    return statistics.median(runs), min(runs), max(runs)


def _store_token(client: Any) -> None:
    from gigapy.types.auth import AccessToken

    token = AccessToken.model_validate({"access_token": "micro-token", "expires_at": int((time.time() + 3600) * 1000)})
    client._core.tokens.entry.store(token)


def bench_completion_sync(number: int, repeat: int) -> tuple[float, float, float]:
    import httpx

    from gigapy import GigaChat
    from gigapy._core.flow import Response

    headers = httpx.Headers(RESPONSE_HEADERS)

    class Canned:
        def send(self, req: Any) -> Response:
            return Response(200, headers, BODY, req.method, req.url)

    client = GigaChat(credentials="bWljcm86bWljcm8=", base_url="http://127.0.0.1:9/api/v1",
                      auth_url="http://127.0.0.1:9/api/v2/oauth", model=MODEL)
    _store_token(client)
    client._transport = Canned()  # type: ignore[assignment]
    return timed(lambda: client.completion(MESSAGES), number, repeat)


def bench_completion_async(number: int, repeat: int) -> tuple[float, float, float]:
    from multidict import CIMultiDict, CIMultiDictProxy

    from gigapy import AsyncGigaChat
    from gigapy._core.flow import Response

    headers = CIMultiDictProxy(CIMultiDict(RESPONSE_HEADERS))

    class Canned:
        async def send(self, req: Any) -> Response:
            return Response(200, headers, BODY, req.method, req.url)

    client = AsyncGigaChat(credentials="bWljcm86bWljcm8=", base_url="http://127.0.0.1:9/api/v1",
                           auth_url="http://127.0.0.1:9/api/v2/oauth", model=MODEL)
    _store_token(client)
    client._transport = Canned()  # type: ignore[assignment]

    async def batch() -> None:
        for _ in range(number):
            await client.completion(MESSAGES)

    def one_batch() -> None:
        asyncio.run(batch())

    loop_cost = timed(lambda: asyncio.run(asyncio.sleep(0)), 1, repeat)[0]
    med, lo, hi = timed(one_batch, 1, repeat)
    return (med - loop_cost) / number, (lo - loop_cost) / number, (hi - loop_cost) / number


def bench_stream(chunks: int, repeat: int) -> tuple[float, float, float]:
    from gigapy._clients.streams import Stream
    from gigapy._core.stream_state import ChatStreamState
    from gigapy.types._base import ResponseMeta

    data = sse_bytes(chunks)
    pieces = [data[i:i + 65536] for i in range(0, len(data), 65536)]

    def consume() -> None:
        stream = Stream(ChatStreamState(ResponseMeta()), iter(pieces), lambda: None)
        n = 0
        for _ in stream:
            n += 1
        assert n == chunks, n
        stream.get_final_completion()

    med, lo, hi = timed(consume, 1, repeat)
    return med / chunks, lo / chunks, hi / chunks


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=3000, help="calls per timing")
    parser.add_argument("--chunks", type=int, default=50000, help="chunks per stream")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows = [
        ("GigaChat.completion (canned transport)", "µs/call", bench_completion_sync(args.number, args.repeat)),
        ("AsyncGigaChat.completion (canned transport)", "µs/call", bench_completion_async(args.number, args.repeat)),
        ("Stream of typed chunks (canned SSE bytes)", "µs/chunk", bench_stream(args.chunks, args.repeat)),
    ]
    for name, unit, (med, lo, hi) in rows:
        print(f"{name:48} {med * 1e6:7.2f} {unit}  ({lo * 1e6:.2f}–{hi * 1e6:.2f})")


if __name__ == "__main__":
    main()
