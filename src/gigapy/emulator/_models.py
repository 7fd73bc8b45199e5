"""The model catalogue: ``GET /models`` and ``GET /models/{model}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._http import ApiError

if TYPE_CHECKING:
    from ._pipeline import Ctx

_CHAT = (
    "GigaChat",
    "GigaChat-2",
    "GigaChat-2-Max",
    "GigaChat-2-Max-preview",
    "GigaChat-2-Pro",
    "GigaChat-2-Pro-preview",
    "GigaChat-2-preview",
    "GigaChat-3-Ultra",
    "GigaChat-3-Ultra-preview",
    "GigaChat-Max",
    "GigaChat-Max-preview",
    "GigaChat-Plus",
    "GigaChat-Pro",
    "GigaChat-Pro-preview",
    "GigaChat-preview",
)
_OTHERS = (
    # Listed live with type "filter" (recorded GET /models), though neither spec's enum has the type.
    ("GigaFilter", "filter"),
    ("GigaCheckClassification", "aicheck"),
    ("GigaCheckDetection", "aicheck"),
    ("Embeddings", "embedder"),
    ("Embeddings-2", "embedder"),
    ("EmbeddingsGigaR", "embedder"),
    ("GigaEmbeddings-3B-2025-09", "embedder"),
)
#: Model id → type, in the order the service lists them.
MODELS: dict[str, str] = {**dict.fromkeys(_CHAT, "chat"), **dict(_OTHERS)}
_VERSIONS = {
    "GigaChat-2-Max": "2.0.30.01",
    "GigaChat-3-Ultra": "32.3.18.5",
    "GigaChat-Plus": "3.1.25.3",
}
_DEFAULT_VERSION = "2.0.28.2"


def model_object(name: str) -> dict[str, Any]:
    """The ``Model`` JSON object."""
    return {"id": name, "object": "model", "owned_by": "salutedevices", "type": MODELS[name]}


def resolve(model: object, kind: str) -> str:
    """The catalogue name for a requested model of ``kind`` (404 ``No such model`` otherwise).

    A ``name:version`` request (as in ``GigaChat:latest``) resolves to ``name``.
    """
    if not isinstance(model, str):
        raise ApiError(404, "No such model")
    name = model.split(":", 1)[0]
    if MODELS.get(name) != kind:
        raise ApiError(404, "No such model")
    return name


def versioned(name: str) -> str:
    """``name:version``, as responses echo the model."""
    base = name.removesuffix("-preview")
    return f"{name}:{_VERSIONS.get(base, _DEFAULT_VERSION)}"


async def list_models(ctx: Ctx) -> dict[str, Any]:
    """``GET /models``."""
    return {"object": "list", "data": [model_object(name) for name in MODELS]}


async def get_model(ctx: Ctx) -> dict[str, Any]:
    """``GET /models/{model}``."""
    name = ctx.request.match_info["model"]
    if name not in MODELS:
        raise ApiError(404, "No such model")
    return model_object(name)
