"""``gigapy serve``: an OpenAI- and Anthropic-compatible server in front of GigaChat (or the emulator).

Imports aiohttp and the server only when the command runs, so ``gigapy --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import EXIT_USAGE, get_state


class _JsonLines(logging.Formatter):
    """Access records as one JSON object a line; other records as text."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(getattr(record, "access", None), dict):
            return record.getMessage()  # already one JSON object
        return f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"


def _keys(api_key: list[str], keys_file: Path | None) -> dict[str, str]:
    from gigapy.openai._server import parse_keys

    items = list(api_key)
    env = os.environ.get("GIGAPY_SERVE_API_KEYS")
    if env:
        items.extend(part for part in env.split(",") if part.strip())
    if keys_file is not None:
        items.extend(keys_file.read_text(encoding="utf-8").splitlines())
    try:
        return parse_keys(items)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _aliases(model_alias: list[str]) -> dict[str, str]:
    out = {}
    for item in model_alias:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            typer.echo(f"error: --model-alias takes NAME=GIGACHAT_MODEL, got {item!r}", err=True)
            raise typer.Exit(EXIT_USAGE)
        out[name.strip()] = target.strip()
    return out


def serve_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8090,
    emulator: Annotated[bool, typer.Option(
        "--emulator", help="Serve in front of an in-process GigaChat emulator (no credentials needed).")] = False,
    api_key: Annotated[list[str], typer.Option(
        "--api-key", help="An API key clients must present (NAME=KEY or KEY; repeatable) "
        "\\[env: GIGAPY_SERVE_API_KEYS, comma-separated].", show_default=False)] = [],  # noqa: B006
    api_keys_file: Annotated[Path | None, typer.Option(
        help="A file of API keys, one NAME=KEY a line.", show_default=False, exists=True, dir_okay=False)] = None,
    max_concurrency: Annotated[int | None, typer.Option(
        min=1, help="Requests in flight per API key (more get 429).", show_default=False)] = None,
    model_alias: Annotated[list[str], typer.Option(
        "--model-alias", help="NAME=GIGACHAT_MODEL for tools that hard-code a model name (repeatable).",
        show_default=False)] = [],  # noqa: B006
    shutdown_timeout: Annotated[float, typer.Option(
        help="Seconds to let requests and streams in flight finish on SIGTERM/SIGINT.")] = 30.0,
    api: Annotated[str | None, typer.Option(
        help="Force GigaChat v1 or v2 for every chat request (default: chosen per request).",
        show_default=False)] = None,
) -> None:
    """Serve the OpenAI API (chat, embeddings, models, responses) and Anthropic's /v1/messages."""
    import asyncio

    from gigapy._translate import TranslateOptions
    from gigapy.openai._server import ServeConfig, serve

    state = get_state(ctx)
    if emulator:
        state.emulator = True
    if api not in (None, "v1", "v2"):
        typer.echo(f"error: --api takes v1 or v2, got {api!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    config = ServeConfig(host=host, port=port, keys=_keys(api_key, api_keys_file), max_concurrency=max_concurrency,
                         shutdown_timeout=shutdown_timeout,
                         options=TranslateOptions(models=_aliases(model_alias), api=api))  # type: ignore[arg-type]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    for name in ("gigapy.serve", "gigapy.openai"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    settings: dict[str, Any] = state.client_kwargs()

    def ready(bound: int) -> None:
        where = f"http://{host}:{bound}/v1"
        keys = f", {len(config.keys)} API key(s)" if config.keys else ", no API keys (open)"
        target = "the emulator" if state.emulator else settings.get("base_url") or "GigaChat"
        sys.stderr.write(f"gigapy serve: listening on {where} in front of {target}{keys}\n")
        sys.stderr.flush()

    finished = asyncio.run(serve(settings, config, on_ready=ready))
    if not finished:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Add the ``serve`` command."""
    root.command("serve", rich_help_panel="Setup")(serve_cmd)
