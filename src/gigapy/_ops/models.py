"""Models: ``GET /models`` and ``GET /models/{name}``."""

from __future__ import annotations

from urllib.parse import quote

from .._core import params as P
from .._core.flow import (
    Flow,
    parse_model,
)
from ..types.models import Model, Models
from .base import ClientCore, RequestOptions


def all_models(core: ClientCore, options: RequestOptions) -> Flow[Models]:
    """``GET /models``."""
    return core.call(core.request("GET", "/models", options, idempotent=True), lambda r: parse_model(Models, r))


def get_model(core: ClientCore, name: str, options: RequestOptions) -> Flow[Model]:
    """``GET /models/{name}``."""
    P.text(name, "model")
    req = core.request("GET", "/models/" + quote(name, safe=""), options, idempotent=True)
    return core.call(req, lambda r: parse_model(Model, r))
