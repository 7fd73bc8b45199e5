"""Token counting, balance, AI-text check, function validation and conversion, the topic filter."""

from __future__ import annotations

from pydantic import Field

from ._base import APIModel, APIResponse, Count
from .chat import Function


class TokensCount(APIResponse):
    """Tokens and characters of one input text (``POST /tokens/count``)."""

    object: str = "tokens"
    tokens: Count = 0
    characters: Count = 0


class BalanceItem(APIModel):
    """Remaining tokens for one model or service."""

    usage: str
    value: float = 0


class Balance(APIResponse):
    """Remaining prepaid tokens (``GET /balance``; pay-as-you-go accounts get 403)."""

    balance: list[BalanceItem] = Field(default_factory=list)

    def as_dict(self) -> dict[str, float]:
        """The balance as {usage: value}."""
        return {item.usage: item.value for item in self.balance}


class AICheckResult(APIResponse):
    """Whether a text was written by AI (``POST /ai/check``)."""

    category: str | None = None
    characters: Count = 0
    tokens: Count = 0
    ai_intervals: list[list[int]] = Field(default_factory=list)


class FunctionValidationIssue(APIModel):
    """One error or warning about a function definition."""

    description: str = ""
    schema_location: str | None = None


class FunctionValidationResult(APIResponse):
    """The verdict of ``POST /functions/validate``."""

    status: int = 200
    message: str = ""
    json_ai_rules_version: str | None = None
    errors: list[FunctionValidationIssue] = Field(default_factory=list)
    warnings: list[FunctionValidationIssue] = Field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        """True when the service found no errors."""
        return not self.errors


class ConvertedFunctions(APIResponse):
    """Function definitions made from an OpenAPI document (``POST /functions/convert``): one per
    operation, ready for ``functions=``."""

    functions: list[Function] = Field(default_factory=list)


class FilterUsage(APIModel):
    """What a filter check cost."""

    filter_tokens: Count = 0


class FilterCheckResult(APIResponse):
    """The verdict of ``POST /filter/check``: ``is_profane`` is True when the messages break the
    account's topic restrictions (neural censor, stop words, canned-answer words)."""

    is_profane: bool = False
    usage: FilterUsage = Field(default_factory=FilterUsage)
