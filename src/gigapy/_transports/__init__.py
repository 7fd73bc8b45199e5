"""Transports: the httpx (sync) and aiohttp (async) drivers, TLS and the CA certificate helper.
Each fast path that relies on a library's internals lives in its own ``fastpath_*`` module."""

from .httpx_cli import defer_httpx_cli

defer_httpx_cli()
