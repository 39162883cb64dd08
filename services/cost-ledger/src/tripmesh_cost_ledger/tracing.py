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
from collections.abc import Iterator, Sequence
from typing import Any

from nats.aio.msg import Msg
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from tripmesh_kit import telemetry

from tripmesh_cost_ledger.domain import UsageRow

BATCH_SPAN = "ledger.ingest"
MESSAGE_SPAN = "ledger.write usage"


def usage_attributes(row: UsageRow) -> dict[str, Any]:
    """What a span says about one usage event (from the row the ingestor already decoded;
    token and cost names follow the GenAI conventions)."""
    return telemetry.attributes(
        {
            "plan_id": row.plan_id,
            "user_id": row.user_id,
            "agent": row.agent,
            "model": row.model,
            "gen_ai.usage.input_tokens": row.prompt_tokens,
            "gen_ai.usage.output_tokens": row.completion_tokens,
            "tripmesh.cost_usd": row.cost_usd,
            "messaging.message.id": row.event_id,
        }
    )


@contextlib.contextmanager
def ledger_write_spans(decoded: Sequence[tuple[Msg, UsageRow]]) -> Iterator[None]:
    """Around the one transaction that writes `decoded` (each message with its row): the batch
    span and a span per message."""
    if not telemetry.enabled() or not decoded:
        yield
        return
    tracer = telemetry.tracer()
    links = [link for raw, _ in decoded for link in telemetry.link_to(raw.headers)]
    batch_attrs: dict[str, str | int] = {"messaging.system": "nats"}
    batch_attrs["messaging.batch.message_count"] = len(decoded)
    with tracer.start_as_current_span(
        BATCH_SPAN, kind=SpanKind.CONSUMER, attributes=batch_attrs, links=links
    ) as batch:
        to_batch = [Link(batch.get_span_context())]
        spans = [
            tracer.start_span(
                MESSAGE_SPAN,
                context=telemetry.extract(raw.headers),
                kind=SpanKind.CONSUMER,
                attributes={"messaging.system": "nats", **usage_attributes(row)},
                links=to_batch,
            )
            for raw, row in decoded
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
