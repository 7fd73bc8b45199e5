"""Settings of the translation, chosen by whoever runs it (the in-process transport, ``gigapy serve``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class TranslateOptions:
    """How requests are translated.

    - ``models``: model aliases, e.g. ``{"gpt-4o": "GigaChat-2-Max"}`` for tools that
      hard-code OpenAI model names; other names go to GigaChat as given.
    - ``api``: force GigaChat ``"v1"`` or ``"v2"`` (default: chosen per request).
    - ``strict_tool_choice``: refuse ``tool_choice: required`` with several tools when the
      request must go to GigaChat v1 (``n > 1`` or ``api="v1"``), instead of the documented
      mapping to ``auto`` there (only v2 has mode ``any``, "call one of these").
    - ``embeddings_model``: the GigaChat embedder used when a request names none it knows.
    """

    models: Mapping[str, str] = field(default_factory=dict)
    api: Literal["v1", "v2"] | None = None
    strict_tool_choice: bool = False
    embeddings_model: str | None = None

    def model(self, name: str) -> str:
        """The GigaChat model for a requested model name."""
        return self.models.get(name, name)


DEFAULT_OPTIONS = TranslateOptions()
