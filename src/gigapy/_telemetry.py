"""The telemetry switch: light, never imports OpenTelemetry itself.

``gigapy.instrument()`` turns spans and metrics on for every client (those whose ``telemetry``
setting is left unset); a client's ``telemetry=True`` / ``False`` (``GIGACHAT_TELEMETRY``)
overrides it. While nothing is on, the request path reads one module attribute and goes on:
``opentelemetry`` is imported only by :func:`instrument` or the first call of a client with
``telemetry=True`` (the hooks live in ``gigapy._otel``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

#: The process-wide hook set by :func:`instrument` (a ``gigapy._otel.Hook``), or None.
HOOK: Any = None
_DEFAULT: Any = None
_LOCK = threading.Lock()
_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def content_from_env() -> bool:
    """Whether the standard GenAI variable asks for message content in spans."""
    return os.environ.get(_CONTENT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def instrument(*, capture_content: bool | None = None, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Turn on OpenTelemetry spans and metrics for every client whose ``telemetry`` setting is unset.

    ``capture_content`` puts the messages and answers into spans (off by default; also
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``). The providers default to the
    global ones of ``opentelemetry``. Needs ``pip install 'gigapy[otel]'``.
    """
    global HOOK
    hook = _new_hook(capture_content, tracer_provider, meter_provider)
    with _LOCK:
        HOOK = hook


def uninstrument() -> None:
    """Turn off what :func:`instrument` turned on (clients with ``telemetry=True`` keep theirs)."""
    global HOOK
    with _LOCK:
        HOOK = None


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return HOOK is not None


def hook_for(setting: bool | None) -> Any:
    """The hook a client with this ``telemetry`` setting uses now (None: telemetry off)."""
    if setting is None:
        return HOOK
    if not setting:
        return None
    hook = HOOK
    if hook is not None:
        return hook
    global _DEFAULT
    if _DEFAULT is None:
        with _LOCK:
            if _DEFAULT is None:
                _DEFAULT = _new_hook(None, None, None)
    return _DEFAULT


def _new_hook(capture_content: bool | None, tracer_provider: Any, meter_provider: Any) -> Any:
    try:
        from . import _otel
    except ImportError as exc:  # opentelemetry-api is missing
        from .errors import ConfigurationError

        raise ConfigurationError(
            "telemetry", f"OpenTelemetry is not installed ({exc.name}): pip install 'gigapy[otel]'"
        ) from None
    content = content_from_env() if capture_content is None else bool(capture_content)
    return _otel.Hook(content=content, tracer_provider=tracer_provider, meter_provider=meter_provider)


def serve_start(client: Any, exchange: Any, method: str, path: str, headers: Any, *, remote: bool) -> Any:
    """Open the span of one request to the OpenAI-compatible layer (``gigapy serve`` or the
    in-process bridge) and make it current, so that the GigaChat calls it makes are its
    children; ``remote``: the caller's ``traceparent`` in ``headers`` is its parent (a server).
    None while the client's telemetry is off."""
    core = getattr(client, "_core", None)
    hook = core.hook() if core is not None else None
    if hook is None:
        return None
    return hook.serve_start(exchange, method, path, headers if remote else None)


def serve_end(handle: Any, status: int) -> None:
    """End what :func:`serve_start` opened (None: nothing to end) with the reply's HTTP status."""
    if handle is not None:
        handle.end(status)
