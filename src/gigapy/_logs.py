"""Logging: the standard ``gigapy`` logger; ``GIGAPY_LOG=debug|info|warning`` turns on output.

gigapy never logs secrets: not the authorization key, passwords, access tokens, request
bodies or the Authorization header. Debug lines carry method, URL, status, request id
and retry count.
"""

from __future__ import annotations

import logging
import os

_done = False


def setup_logging() -> None:
    """Honour ``GIGAPY_LOG`` once per process (a handler on stderr for the gigapy logger)."""
    global _done
    if _done:
        return
    _done = True
    level = os.environ.get("GIGAPY_LOG", "").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        return
    logger = logging.getLogger("gigapy")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
