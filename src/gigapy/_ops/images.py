"""Images and attachments: generate and download an image in one call; upload files once.

``generate_image`` asks the model to draw (``function_call: "auto"``), reads the
``<img src="FILE_ID">`` tag and downloads the JPEG under the same X-Client-ID (the service
binds generated files to it). ``attach`` uploads local images and documents after
checking type and size limits, and remembers each file's content hash, so the same
content is uploaded only once per account and process (a remembered file is looked up
first, and uploaded again if the service no longer has it).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._core.flow import (
    Blocking,
    FilePart,
    Flow,
)
from .._core.tokens import identity
from ..errors import ImageGenerationError, InvalidArgumentError, NotFoundError
from . import chat as chat_ops
from . import files as files_ops
from .base import ClientCore, RequestOptions
from .files import Seekable, forget_upload, prepare_upload, recall_upload, remember_upload


def generate_image_flow(
    core: ClientCore, prompt: str, path: str | Path | None, style: str | None, params: Mapping[str, Any]
) -> Flow[bytes | Path]:
    """Draw ``prompt`` and return the JPEG bytes (or write them to ``path``)."""
    options: dict[str, Any] = dict(params)
    client_id = options.pop("client_id", None) or f"gigapy-{uuid.uuid4()}"
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    if style is not None:
        messages.insert(0, {"role": "system", "content": style})
    call = {**options, "function_call": "auto", "client_id": client_id}
    answer = yield from chat_ops.completion(core, messages, call)
    ids = answer.images
    if not ids:
        raise ImageGenerationError(
            f"the model answered without an image: {answer.text[:200]!r}",
            text=answer.text,
            request_id=answer.request_id,
        )
    download: RequestOptions = {"client_id": client_id}
    for key in ("timeout", "extra_headers", "session_id"):
        if key in options:
            download[key] = options[key]
    return (yield from files_ops.download_file(core, ids[0], None if path is None else str(path), download))


def _digest(part: FilePart) -> str:
    sha = hashlib.sha256()
    src = part.source
    if isinstance(src, bytes):
        sha.update(src)
    elif isinstance(src, Seekable):
        sha.update(src.read_all())
        src.rewind()
    else:
        with open(src, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()


def attach_flow(core: ClientCore, sources: Sequence[Any], purpose: str, options: RequestOptions) -> Flow[list[str]]:
    """Upload each source unless the same content was uploaded before; return the file ids."""
    if not sources:
        raise InvalidArgumentError("sources", "give at least one file (a path, bytes or a file object)")
    ids: list[str] = []
    who = identity(core.settings)
    for i, source in enumerate(sources):
        part: FilePart = yield Blocking(functools.partial(prepare_upload, source, field=f"sources[{i}]"))
        digest: str = yield Blocking(functools.partial(_digest, part))
        key = (who, f"{purpose}:{digest}")
        cached = recall_upload(key)
        if cached is not None:
            try:  # the file may be gone since (deleted elsewhere, expired): then it is uploaded again
                yield from files_ops.get_file_info(core, cached, options)
            except NotFoundError:
                forget_upload(cached)
            else:
                ids.append(cached)
                continue
        uploaded = yield from files_ops.upload_part(core, part, purpose, options)
        remember_upload(key, uploaded.id)
        ids.append(uploaded.id)
    return ids


class ImageParams(RequestOptions, total=False):
    """Keyword arguments of ``generate_image``."""

    model: str
