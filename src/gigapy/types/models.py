"""Models (``GET /models``, ``GET /models/{model}``)."""

from __future__ import annotations

from pydantic import Field

from ._base import APIModel, APIResponse


class Model(APIResponse):
    """A model the account can use; ``type`` is chat, embedder, aicheck or filter."""

    id: str
    object: str = "model"
    owned_by: str | None = None
    type: str | None = None


class Models(APIResponse):
    """The list of models."""

    object: str = "list"
    data: list[Model] = Field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The model ids, in server order."""
        return [m.id for m in self.data]


__all__ = ["APIModel", "Model", "Models"]
