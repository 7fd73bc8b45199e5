"""OpenAI embeddings (``POST /v1/embeddings``) and models (``GET /v1/models``) <-> GigaChat.

Embeddings: ``input`` is a string or a list of strings (token-id inputs are refused:
GigaChat takes text). ``encoding_format: "base64"`` (what the ``openai`` client asks for
by default) packs each vector as little-endian float32, as OpenAI does. ``dimensions`` is
refused: GigaChat's embedders have a fixed size and are not trained to be shortened.
GigaChat's per-item usage is summed into OpenAI's ``usage``.

Models: GigaChat's list as OpenAI's (``created`` is 0: GigaChat does not say; its ``type``
is kept as an extra field).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._common import bad_value, finite, items, mapping, string, unsupported
from ._options import DEFAULT_OPTIONS, TranslateOptions

EMBEDDING_PARAMETERS: dict[str, tuple[str, str]] = {
    "input": ("mapped", "a string or a list of strings; token ids refused"),
    "model": ("mapped", "GigaChat embedder (aliases from the options)"),
    "encoding_format": ("mapped", "float, or base64 of little-endian float32"),
    "dimensions": ("refused", "GigaChat's embedders have a fixed size"),
    "user": ("no effect", "GigaChat has no per-user embedding setting"),
}


@dataclass(frozen=True)
class EmbeddingsCall:
    """The GigaChat ``/embeddings`` body and how to render its answer."""

    body: dict[str, Any]
    encoding_format: str
    count: int


def embeddings_request(body: Mapping[str, Any], options: TranslateOptions = DEFAULT_OPTIONS) -> EmbeddingsCall:
    """An OpenAI embeddings request as a GigaChat ``/embeddings`` body."""
    body = mapping(body, "body")
    finite(body, "")
    unknown = [k for k in body if k not in EMBEDDING_PARAMETERS]
    if unknown:
        raise unsupported(unknown[0], "unknown parameter")
    if body.get("dimensions") is not None:
        raise unsupported("dimensions", "GigaChat's embedders have a fixed size and are not trained to be shortened")
    model = options.model(string(body.get("model"), "model", empty=False))
    raw = body.get("input")
    texts: list[str]
    if isinstance(raw, str):
        texts = [raw]
    else:
        texts = []
        for i, item in enumerate(items(raw, "input")):
            if not isinstance(item, str):
                raise unsupported(f"input[{i}]", "token-id input (GigaChat embeds text; send strings)")
            texts.append(item)
    if not texts:
        raise bad_value("input", "must hold at least one string")
    for i, text in enumerate(texts):
        if not text:
            raise bad_value(f"input[{i}]" if not isinstance(raw, str) else "input", "must not be empty")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise bad_value("encoding_format", f"expected float or base64, got {fmt!r}")
    return EmbeddingsCall({"model": model, "input": texts}, fmt, len(texts))


def pack_base64(vector: list[float]) -> str:
    """A vector as OpenAI's base64 encoding: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embeddings_response(call: EmbeddingsCall, body: Mapping[str, Any]) -> dict[str, Any]:
    """GigaChat's ``/embeddings`` answer as OpenAI's ``list`` of embeddings."""
    data: list[dict[str, Any]] = []
    tokens = 0
    for position, item in enumerate(body.get("data") or ()):
        item = mapping(item, f"data[{position}]")
        vector = [float(x) for x in item.get("embedding") or ()]
        index: int = item["index"] if isinstance(item.get("index"), int) else position
        usage = item.get("usage")
        if isinstance(usage, Mapping) and isinstance(usage.get("prompt_tokens"), int):
            tokens += usage["prompt_tokens"]
        data.append(
            {
                "object": "embedding",
                "index": index,
                "embedding": pack_base64(vector) if call.encoding_format == "base64" else vector,
            }
        )
    data.sort(key=lambda d: int(d["index"]))
    return {
        "object": "list",
        "data": data,
        "model": str(body.get("model") or call.body["model"]),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def model_object(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One GigaChat model as an OpenAI ``model`` object."""
    out: dict[str, Any] = {
        "id": str(raw.get("id") or ""),
        "object": "model",
        "created": 0,
        "owned_by": str(raw.get("owned_by") or "salutedevices"),
    }
    if raw.get("type") is not None:
        out["type"] = raw["type"]
    return out


def models_response(body: Mapping[str, Any]) -> dict[str, Any]:
    """GigaChat's ``/models`` answer as OpenAI's model list."""
    return {
        "object": "list",
        "data": [model_object(m) for m in body.get("data") or () if isinstance(m, Mapping) and m.get("id")],
    }
