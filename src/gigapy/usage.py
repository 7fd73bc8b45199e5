"""Token usage totals per model, and a cost estimate in roubles from a versioned price table.

``client.usage`` keeps running totals (prompt, completion, cached tokens, requests, errors) per
model for a client and its ``with_options`` copies. :func:`estimate_cost` turns totals into
roubles with a :class:`PriceTable`: the built-in one, a JSON file (``GIGAPY_PRICES`` or
:meth:`PriceTable.load`), or your own. Every cost here is an **estimate**: the service bills by
its own counters and your contract.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = ["BUILTIN_PRICES", "ModelUsage", "PriceTable", "UsageTotals", "base_model", "estimate_cost"]


@dataclass
class ModelUsage:
    """Totals of one model."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    requests: int = 0
    errors: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class UsageTotals:
    """Running totals per model (thread-safe); ``usage["GigaChat"]``, ``usage.as_dict()``."""

    __slots__ = ("_lock", "_models")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, ModelUsage] = {}

    def record(
        self,
        model: str | None,
        prompt: int | None = None,
        completion: int | None = None,
        cached: int | None = None,
        *,
        error: bool = False,
    ) -> None:
        """Add one answered (or failed, ``error=True``) request of ``model``."""
        key = model or "unknown"
        with self._lock:
            entry = self._models.get(key)
            if entry is None:
                entry = self._models[key] = ModelUsage()
            entry.requests += 1
            if error:
                entry.errors += 1
            entry.prompt_tokens += prompt or 0
            entry.completion_tokens += completion or 0
            entry.cached_tokens += cached or 0

    def add(self, other: UsageTotals | Mapping[str, Mapping[str, int]]) -> None:
        """Add another set of totals (or their :meth:`as_dict`)."""
        data = other.as_dict() if isinstance(other, UsageTotals) else other
        with self._lock:
            for model, values in data.items():
                entry = self._models.setdefault(model, ModelUsage())
                for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "requests", "errors"):
                    setattr(entry, name, getattr(entry, name) + int(values.get(name, 0)))

    def __getitem__(self, model: str) -> ModelUsage:
        with self._lock:
            return ModelUsage(**asdict(self._models[model]))

    def __contains__(self, model: object) -> bool:
        return model in self._models

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._models))

    def __len__(self) -> int:
        return len(self._models)

    def total(self) -> ModelUsage:
        """All models together."""
        out = ModelUsage()
        with self._lock:
            for entry in self._models.values():
                for name, value in asdict(entry).items():
                    setattr(out, name, getattr(out, name) + value)
        return out

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{model: {prompt_tokens, completion_tokens, cached_tokens, requests, errors}}``."""
        with self._lock:
            return {model: asdict(entry) for model, entry in self._models.items()}

    def reset(self) -> None:
        """Start from zero."""
        with self._lock:
            self._models.clear()

    def __repr__(self) -> str:
        return f"UsageTotals({self.as_dict()!r})"


def base_model(name: str) -> str:
    """A model name without its build suffix (``GigaChat-2-Max:2.0.28.2`` -> ``GigaChat-2-Max``)."""
    return name.split(":", 1)[0].strip()


#: The built-in table. Roubles per 1000 tokens, VAT included, per scope (the tariff is the
#: scope's: PERS and B2B buy token packages, CORP pays as it goes). NOT from a contract or the
#: reference data: the maintainers' reading of the public GigaChat API price page at the date
#: below, converted to a per-token rate; an estimate to replace with your own numbers.
BUILTIN_PRICES: dict[str, Any] = {
    "version": "2026-01",
    "date": "2026-01-15",
    "currency": "RUB",
    "unit_tokens": 1000,
    "source": "estimate: public GigaChat API price page (developers.sber.ru/docs/ru/gigachat/tariffs) as read "
    "by the gigapy maintainers, package prices divided by their token counts; not verified",
    "estimate": True,
    "scopes": {
        scope: {
            "tariff": "pay-as-you-go" if scope == "GIGACHAT_API_CORP" else "token packages",
            "models": {
                "GigaChat": {"input": 0.2, "output": 0.2},
                "GigaChat-2": {"input": 0.2, "output": 0.2},
                "GigaChat-Pro": {"input": 1.5, "output": 1.5},
                "GigaChat-2-Pro": {"input": 1.5, "output": 1.5},
                "GigaChat-Max": {"input": 1.95, "output": 1.95},
                "GigaChat-2-Max": {"input": 1.95, "output": 1.95},
                "Embeddings": {"input": 0.04, "output": 0.0},
                "EmbeddingsGigaR": {"input": 0.04, "output": 0.0},
            },
        }
        for scope in ("GIGACHAT_API_PERS", "GIGACHAT_API_B2B", "GIGACHAT_API_CORP")
    },
}


@dataclass(frozen=True)
class PriceTable:
    """Roubles per ``unit_tokens`` tokens for each scope and model, with its version, date and source."""

    data: Mapping[str, Any] = field(default_factory=lambda: BUILTIN_PRICES)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriceTable:
        """A table from a JSON file shaped like :data:`BUILTIN_PRICES` (checked; errors name the field)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError("prices", f"cannot read the price table {os.fspath(path)}: {exc}") from None
        return cls.checked(data)

    @classmethod
    def checked(cls, data: Any) -> PriceTable:
        """A table from a dict, checked."""
        if not isinstance(data, Mapping) or not isinstance(data.get("scopes"), Mapping):
            raise ConfigurationError("prices.scopes", "expected an object of scope -> {tariff, models}")
        for scope, entry in data["scopes"].items():
            models = entry.get("models") if isinstance(entry, Mapping) else None
            if not isinstance(models, Mapping):
                raise ConfigurationError(f"prices.scopes.{scope}.models", "expected an object of model -> prices")
            for model, price in models.items():
                for kind in ("input", "output"):
                    value = price.get(kind, 0) if isinstance(price, Mapping) else None
                    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                        raise ConfigurationError(
                            f"prices.scopes.{scope}.models.{model}.{kind}", f"expected a number >= 0, got {value!r}"
                        )
        unit = data.get("unit_tokens", 1000)
        if not isinstance(unit, int) or isinstance(unit, bool) or unit < 1:
            raise ConfigurationError("prices.unit_tokens", f"expected an integer >= 1, got {unit!r}")
        return cls(data)

    @classmethod
    def default(cls) -> PriceTable:
        """``GIGAPY_PRICES`` (a JSON file) when set, else the built-in table."""
        path = os.environ.get("GIGAPY_PRICES", "").strip()
        return cls.load(path) if path else cls()

    @property
    def version(self) -> str:
        """The table's version."""
        return str(self.data.get("version", ""))

    @property
    def source(self) -> str:
        """Where the numbers come from."""
        return str(self.data.get("source", ""))

    def price(self, scope: str, model: str) -> tuple[float, float] | None:
        """(input, output) roubles per token for ``model`` under ``scope``; None if the table lacks it."""
        entry = self.data["scopes"].get(scope) or {}
        models = entry.get("models") or {}
        price = models.get(model) or models.get(base_model(model))
        if price is None:
            return None
        unit = float(self.data.get("unit_tokens", 1000))
        return float(price.get("input", 0)) / unit, float(price.get("output", 0)) / unit

    def cost(self, scope: str, model: str, prompt: int, completion: int) -> float | None:
        """The estimated roubles of these tokens; None for a model the table lacks."""
        price = self.price(scope, model)
        if price is None:
            return None
        return prompt * price[0] + completion * price[1]


def estimate_cost(
    usage: UsageTotals | Mapping[str, Mapping[str, int]],
    scope: str = "GIGACHAT_API_PERS",
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    """An **estimate** in roubles of ``usage``: ``{"rub", "by_model", "unpriced", "estimate",
    "prices_version", "prices_source"}``; models the table lacks are listed in ``unpriced``."""
    table = prices if prices is not None else PriceTable.default()
    data = usage.as_dict() if isinstance(usage, UsageTotals) else usage
    by_model: dict[str, float] = {}
    unpriced: list[str] = []
    for model, values in data.items():
        rub = table.cost(scope, model, int(values.get("prompt_tokens", 0)), int(values.get("completion_tokens", 0)))
        if rub is None:
            unpriced.append(model)
        else:
            by_model[model] = round(rub, 6)
    return {
        "rub": round(sum(by_model.values()), 6),
        "by_model": by_model,
        "unpriced": sorted(unpriced),
        "estimate": True,
        "scope": scope,
        "prices_version": table.version,
        "prices_source": table.source,
    }
