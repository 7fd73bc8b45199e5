"""Typed models of every GigaChat request and response (pydantic v2, unknown fields kept)."""

from ._base import APIModel, APIResponse, ResponseMeta
from .auth import AccessToken
from .batches import Batch, Batches, BatchRequestCounts, BatchResult
from .chat import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    FewShotExample,
    Function,
    FunctionCall,
    FunctionParameters,
    Message,
    Usage,
    image_ids,
)
from .embeddings import Embedding, Embeddings, EmbeddingUsage
from .files import DeletedFile, File, FileList
from .misc import (
    AICheckResult,
    Balance,
    BalanceItem,
    FunctionValidationIssue,
    FunctionValidationResult,
    TokensCount,
)
from .models import Model, Models

__all__ = [
    "AICheckResult",
    "APIModel",
    "APIResponse",
    "AccessToken",
    "Balance",
    "BalanceItem",
    "Batch",
    "BatchRequestCounts",
    "BatchResult",
    "Batches",
    "ChatCompletion",
    "ChatCompletionChunk",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "DeletedFile",
    "Embedding",
    "EmbeddingUsage",
    "Embeddings",
    "FewShotExample",
    "File",
    "FileList",
    "Function",
    "FunctionCall",
    "FunctionParameters",
    "FunctionValidationIssue",
    "FunctionValidationResult",
    "Message",
    "Model",
    "Models",
    "ResponseMeta",
    "TokensCount",
    "Usage",
    "image_ids",
]
