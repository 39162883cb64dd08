"""Spans of the ledger write, for the raw nats-py usage consumer (puller.py, ingest.py).

The usage consumer is a hand-written pull loop, not a FastStream subscriber (puller.py says
why), so FastStream's telemetry middleware never sees its messages: the trace context the
runner's publish put in each message's `traceparent` header is extracted here with
OpenTelemetry's own propagator (`tripmesh_kit.telemetry.extract`).

One batch write serves messages of many plans, i.e. many traces; a span has one parent. So:
- `ledger.ingest` - the batch's span (current while the transaction runs, so the psycopg
  spans nest under it), linked to every message's producer;
- `ledger.write usage` - one span per message, a child of that message's producer (the LLM
  call's usage publish in the runner), so each plan's trace shows its ledger write; each
  links back to the batch span that did the work.
With tracing off both are skipped (`telemetry.enabled()` is False).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from nats.aio.msg import Msg
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from tripmesh_kit import telemetry

BATCH_SPAN = "ledger.ingest"
MESSAGE_SPAN = "ledger.write usage"


def usage_attributes(raw: Msg) -> dict[str, Any]:
    """What a span says about one usage event (nothing when the body is not JSON: the
    ingestor dead-letters that one; token and cost names follow the GenAI conventions)."""
    try:
        event = json.loads(raw.data)
    except ValueError:
        return {}
    if not isinstance(event, dict):
        return {}
    return telemetry.attributes(
        {
            "plan_id": _str(event.get("plan_id")),
            "user_id": _str(event.get("user_id")),
            "agent": _str(event.get("agent")),
            "model": _str(event.get("model")),
            "gen_ai.usage.input_tokens": _int(event.get("prompt_tokens")),
            "gen_ai.usage.output_tokens": _int(event.get("completion_tokens")),
            "tripmesh.cost_usd": _float(event.get("cost_usd")),
            "messaging.message.id": _str(event.get("id")),
        }
    )


@contextlib.contextmanager
def ledger_write_spans(raws: Sequence[Msg]) -> Iterator[None]:
    """Around the one transaction that writes `raws`: the batch span and a span per message."""
    if not telemetry.enabled() or not raws:
        yield
        return
    tracer = telemetry.tracer()
    links = [link for raw in raws for link in telemetry.link_to(raw.headers)]
    batch_attrs: dict[str, str | int] = {"messaging.system": "nats"}
    batch_attrs["messaging.batch.message_count"] = len(raws)
    with tracer.start_as_current_span(
        BATCH_SPAN, kind=SpanKind.CONSUMER, attributes=batch_attrs, links=links
    ) as batch:
        to_batch = [Link(batch.get_span_context())]
        spans = [
            tracer.start_span(
                MESSAGE_SPAN,
                context=telemetry.extract(raw.headers),
                kind=SpanKind.CONSUMER,
                attributes={"messaging.system": "nats", **usage_attributes(raw)},
                links=to_batch,
            )
            for raw in raws
        ]
        try:
            yield
        except BaseException as exc:
            for span in spans:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            for span in spans:
                span.end()


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
