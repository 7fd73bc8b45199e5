"""Client faces: the base client, the token cache, streams, conversations, and the async and sync
clients."""

from .._transports.httpx_cli import defer_httpx_cli

defer_httpx_cli()
