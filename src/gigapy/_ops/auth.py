"""Tokens: ``POST /oauth`` (or ``/token``) on demand, into the shared cache."""

from __future__ import annotations

from .._core.flow import (
    Flow,
)
from ..errors import ConfigurationError
from ..types.auth import AccessToken
from .base import ClientCore


def create_token(core: ClientCore) -> Flow[AccessToken]:
    """Fetch a new token now and put it in the shared cache."""
    if core.tokens.entry is None:
        if core.settings.auth_mode == "mtls":
            raise ConfigurationError(
                "credentials",
                "create_token() needs credentials= or user=/password=; this "
                "client authenticates with its client certificate (mTLS-only) "
                "and uses no token",
            )
        raise ConfigurationError("credentials", "create_token() needs credentials= or user=/password=")
    token = yield from core.fetch_token()
    core.tokens.entry.store(token)
    return token
