"""Embeddings (``POST /embeddings``)."""

from __future__ import annotations

from pydantic import Field

from ._base import APIModel, APIResponse, Count


class EmbeddingUsage(APIModel):
    """Tokens used by one input text."""

    prompt_tokens: Count = 0


class Embedding(APIModel):
    """The vector of one input; ``index`` is its position in the request."""

    object: str = "embedding"
    embedding: list[float] = Field(default_factory=list)
    index: int = 0
    usage: EmbeddingUsage | None = None


class Embeddings(APIResponse):
    """Vectors for every input, in input order."""

    object: str = "list"
    data: list[Embedding] = Field(default_factory=list)
    model: str | None = None

    @property
    def vectors(self) -> list[list[float]]:
        """The vectors ordered by input position."""
        return [e.embedding for e in sorted(self.data, key=lambda e: e.index)]

    @property
    def prompt_tokens(self) -> int:
        """Tokens used by all inputs together (the service reports usage per item)."""
        return sum(e.usage.prompt_tokens for e in self.data if e.usage is not None)
