"""Access tokens."""

from __future__ import annotations

import time

from pydantic import PrivateAttr, SecretStr

from ._base import APIResponse


class AccessToken(APIResponse):
    """An access token and its expiry (Unix time in milliseconds, as the server said). The
    token is a secret."""

    access_token: SecretStr
    expires_at: int
    #: Seconds it may be used from receipt (the token cache measures expiry with it).
    _lifetime: float | None = PrivateAttr(default=None)

    @property
    def expires_in(self) -> float:
        """Seconds until expiry (negative when expired)."""
        return self.expires_at / 1000 - time.time()
