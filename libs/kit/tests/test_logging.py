"""The JSON log: `service` on every line, trace ids from the current span, secrets redacted,
and stdlib loggers (uvicorn, faststream) rendered as JSON too."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from tripmesh_kit.logging import bind_context, configure_logging, get_logger, unbind_context


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("testsvc", "json", "INFO")

    def read() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
        out.seek(0)
        out.truncate()
        return lines

    yield read
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_lines_carry_service_and_no_trace_ids_without_a_span(json_lines: Any) -> None:
    get_logger("t").info("hello", n=1)
    (line,) = json_lines()
    assert line["service"] == "testsvc" and line["event"] == "hello" and line["level"] == "info"
    assert "trace_id" not in line and "span_id" not in line


def test_trace_and_span_ids_come_from_the_current_span(json_lines: Any) -> None:
    context = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with trace.use_span(NonRecordingSpan(context)):
        get_logger("t").info("inside")
        logging.getLogger("uvicorn.error").warning("from stdlib")
    lines = json_lines()
    assert len(lines) == 2
    for line in lines:
        assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert line["span_id"] == "b7ad6b7169203331"
        assert line["service"] == "testsvc"


def test_bound_context_and_redaction(json_lines: Any) -> None:
    bind_context(plan_id="p1", user_id="u1", agent=None)
    get_logger("t").info("login", password="hunter2", api_key="tm_secret", token="abc")
    unbind_context("plan_id", "user_id")
    get_logger("t").info("after")
    first, second = json_lines()
    assert first["plan_id"] == "p1" and first["user_id"] == "u1" and "agent" not in first
    assert first["password"] == first["api_key"] == first["token"] == "[redacted]"
    assert "hunter2" not in json.dumps(first)
    assert "plan_id" not in second


def test_stdlib_lines_are_json_with_their_exception(json_lines: Any) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("faststream").exception("handler crashed")
    logging.getLogger("faststream").info("below the level: dropped")
    (line,) = json_lines()
    assert line["event"] == "handler crashed" and line["logger"] == "faststream"
    assert line["level"] == "error" and "ValueError: boom" in line["exception"]


def test_faststream_loggers_write_json_at_warning(json_lines: Any) -> None:
    logging.getLogger("faststream.planner").info("Received")  # FastStream's access lines
    logging.getLogger("faststream").warning("consumer went away")
    (line,) = json_lines()
    assert line["event"] == "consumer went away" and line["service"] == "testsvc"


def test_console_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        for fmt, coloured in (("console", False), ("color", True)):
            configure_logging("testsvc", fmt, "INFO")
            get_logger("t").info("readable", plan_id="p1")
            text = out.getvalue()
            out.seek(0)
            out.truncate()
            assert "readable" in text and "plan_id" in text and not text.startswith("{")
            assert ("\x1b[" in text) == coloured, fmt
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)
