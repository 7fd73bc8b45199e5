"""A FastAPI endpoint that streams GigaChat's answer to the browser as server-sent events.

Shows: one ``AsyncGigaChat`` for the whole app (created in the lifespan, so every request shares
one token and one connection pool), ``await client.completion_stream(...)`` opening the stream
*before* the response starts (so an error such as 402 or 429 becomes a proper HTTP status, not a
broken 200), ``text_stream`` relayed as SSE ``data:`` events, a ``StreamError`` mid-way sent as an
``event: error``, and the upstream connection closed when the browser goes away.

Needs ``pip install fastapi uvicorn``. Run it against the emulator (no account needed)::

    eval "$(gigapy emulator --env --port 0 &)"        # sets GIGACHAT_* for this shell
    python examples/fastapi_stream.py --port 8000 &
    curl -N -X POST localhost:8000/chat -H 'content-type: application/json' -d '{"message": "Расскажи про Байкал"}'
    kill %1 "$GIGAPY_EMULATOR_PID"

Or ``uvicorn fastapi_stream:app`` from this folder.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from gigapy import APIStatusError, AsyncGigaChat, AsyncStream, GigaChatError, StreamError


class ChatRequest(BaseModel):
    """The browser's question."""

    message: str = Field(min_length=1, max_length=10_000)
    system: str | None = None
    temperature: float | None = Field(default=None, gt=0, le=2)
    session_id: str | None = Field(default=None, description="the same id for every turn reuses the prompt cache")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One client for the app's lifetime (settings from GIGACHAT_*)."""
    async with AsyncGigaChat() as client:
        app.state.giga = client
        yield


app = FastAPI(title="gigapy streaming example", lifespan=lifespan)


def sse(data: object, event: str | None = None) -> str:
    """One server-sent event."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def relay(stream: AsyncStream, request: Request) -> AsyncIterator[str]:
    """The stream's text as SSE events; an error after the start becomes an ``error`` event."""
    async with stream:  # leaving it (the browser went away, or the end) closes the upstream connection
        try:
            async for text in stream.text_stream:
                yield sse({"text": text})
                if await request.is_disconnected():
                    return
            final = await stream.get_final_completion()
            yield sse({"finish_reason": final.finish_reason, "usage": final.usage.model_dump()}, event="done")
        except StreamError as exc:
            yield sse({"message": str(exc), "request_id": exc.request_id}, event="error")


@app.post("/chat", response_model=None)
async def chat(body: ChatRequest, request: Request) -> Response:
    """Stream the answer to ``body.message`` as ``text/event-stream``."""
    client: AsyncGigaChat = request.app.state.giga
    messages = [{"role": "system", "content": body.system}] if body.system else []
    messages.append({"role": "user", "content": body.message})
    options = {"temperature": body.temperature} if body.temperature is not None else {}
    try:  # the request is sent here: errors before the first event are still a normal HTTP answer
        stream = await client.completion_stream(messages, session_id=body.session_id, **options)
    except APIStatusError as exc:
        return JSONResponse(
            {"error": exc.server_message or str(exc), "request_id": exc.request_id},
            status_code=exc.status_code if exc.status_code in (402, 429) else 502,
        )
    except GigaChatError as exc:
        return JSONResponse({"error": str(exc)}, status_code=502)
    return StreamingResponse(
        relay(stream, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Request-ID": stream.request_id or ""},
    )


def main() -> None:
    """Serve the app with uvicorn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
