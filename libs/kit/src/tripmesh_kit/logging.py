"""structlog set-up: JSON lines in production, readable lines on a TTY.

Every line carries `service`; `trace_id` / `span_id` come from the current OpenTelemetry
span (when one is recording or propagated); `plan_id`, `user_id`, `agent` from contextvars
bound by the handlers (`bind_context`). Lines of libraries logging through stdlib `logging`
(uvicorn, faststream, psycopg_pool) are rendered the same way, so a JSON log is JSON only.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import structlog
from opentelemetry import trace

_SECRET_KEYS = frozenset(
    {
        "password",
        "password_confirm",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "secret",
        "api_key",
        "prompt",
        "messages",
    }
)


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Never log a secret, token, password or prompt body, whatever a caller passes."""
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "[redacted]"
    return event


def add_trace_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """`trace_id` / `span_id` of the current span, as the W3C/OTLP hex strings (only when
    the span context is valid: no tracing, no fields)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def uses_json(fmt: str) -> bool:
    """`LOG_FORMAT`: json, console, color (console with colours), or auto (json unless stderr
    is a terminal)."""
    return fmt == "json" or (fmt not in ("console", "color") and not sys.stderr.isatty())


def configure_logging(service: str, fmt: str = "auto", level: str = "INFO") -> None:
    use_json = uses_json(fmt)

    def add_service(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        # also for threads and tasks that did not inherit the contextvars bound below
        event.setdefault("service", service)
        return event

    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,
        _redact,
    ]
    renderer: Any
    if use_json:
        processors += [structlog.processors.format_exc_info]
        renderer = structlog.processors.JSONRenderer()
    else:
        # `color`: coloured even into a file (`make up` echoes the service logs to a terminal)
        renderer = structlog.dev.ConsoleRenderer(colors=fmt == "color" or sys.stderr.isatty())
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # libraries that log through stdlib logging (uvicorn, faststream) stay quiet unless
    # warning, and their lines go through the same processors and renderer as ours
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *processors],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    # FastStream installs a colour text handler on its "faststream" logger at import (INFO,
    # not propagated), which every "faststream.*" broker logger would write through
    importlib.import_module("faststream")
    faststream_logger = logging.getLogger("faststream")
    faststream_logger.handlers.clear()
    faststream_logger.propagate = True
    faststream_logger.setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


def bind_context(**values: Any) -> None:
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def unbind_context(*keys: str) -> None:
    structlog.contextvars.unbind_contextvars(*keys)
