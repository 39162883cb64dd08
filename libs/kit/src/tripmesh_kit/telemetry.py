"""OpenTelemetry traces: one trace per plan, off (and free) unless an OTLP endpoint is set.

`configure_tracing` runs first in every service's `create_app` (the only place reading the
environment: the endpoint and OTEL_SERVICE_NAME come in through the service's settings; the
SDK itself reads the other standard OTEL_* variables, e.g. OTEL_BSP_SCHEDULE_DELAY). With no
endpoint nothing is installed: no provider, no exporter, no instrumentation, no broker
middleware, and `span()` returns a `nullcontext` - tracing off costs nothing.

Propagation (W3C `traceparent` / `baggage` headers on every NATS message):
- FastStream's `NatsTelemetryMiddleware` on every broker (`tripmesh_kit.bus.make_broker`
  asks `broker_middlewares()`): every `Bus.publish` / `publish_raw` and every RPC request
  goes through `broker.publish` / `broker.request`, so it injects; every FastStream
  subscriber (the planner's commands and results, the runners' jobs, vector-sync's changes,
  every `svc.*` responder) extracts and runs the handler inside a `<subject> process` span.
- Raw nats-py consumers use OpenTelemetry's own `propagate.extract` on the message headers
  (`extract`, `link_to`): the cost-ledger's usage puller, a hand-written batch pull loop
  (FastStream 0.7.8's batch pull drops partial batches, see its puller.py), whose one
  batch write serves messages of many traces (services/cost-ledger tracing.py gives each
  message its own span in its own trace and links them to the batch's span).
- Nothing in the services publishes around the broker (no `js.publish`), so no raw inject
  path exists today; `inject` is there for one that would.

Links: `handle_message` (consume.py) records the span context of the message being handled
(`enter_message`); a graph resume in the planner starts its span with `message_links()`, so a
resume points at the agent result that caused it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from decimal import Decimal
from importlib import metadata
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind

NAMESPACE = "tripmesh"
INSTRUMENTATION = "tripmesh"
UNTRACED_URLS = "healthz,readyz,metrics"
"""Probe and scrape endpoints: a span per kubelet probe would drown the plans' traces."""

_provider: Any = None
"""The SDK TracerProvider this process installed; None = tracing off."""
_message: ContextVar[SpanContext | None] = ContextVar("tripmesh_traced_message", default=None)

AttrValue = str | bool | int | float | Decimal | None


def configure_tracing(service_name: str, endpoint: str | None, *, distribution: str | None = None) -> bool:
    """Install the SDK provider, OTLP/HTTP exporter and psycopg instrumentation when
    `endpoint` is set (`OTEL_EXPORTER_OTLP_ENDPOINT`; `/v1/traces` is appended as the spec
    says for the non-signal-specific variable). Returns whether tracing is on.

    `distribution` names the package whose version becomes `service.version`."""
    global _provider
    if not endpoint:
        return False
    if _provider is not None:  # one provider per process (OTel allows a single global)
        return True
    # imported only when on: the exporter and SDK cost import time a disabled service skips
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": NAMESPACE,
            "service.version": _version(distribution or service_name),
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    trace.set_tracer_provider(provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider, enable_commenter=False)
    _provider = provider
    return True


def traces_url(endpoint: str) -> str:
    """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: the signal's path is appended to it."""
    return endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0.0.0"


def enabled() -> bool:
    return _provider is not None


def shutdown() -> None:
    """Flush what is batched (the SDK also does this at interpreter exit)."""
    if _provider is not None:
        _provider.shutdown()


def instrument_app(app: Any) -> None:
    """HTTP server spans for a FastAPI app (the gateway's are the plans' root spans)."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_provider, excluded_urls=UNTRACED_URLS, exclude_spans=["receive", "send"]
    )


def broker_middlewares() -> tuple[Any, ...]:
    """FastStream's NATS telemetry middleware when tracing is on; nothing otherwise."""
    if _provider is None:
        return ()
    from faststream.nats.opentelemetry import NatsTelemetryMiddleware

    return (NatsTelemetryMiddleware(tracer_provider=_provider, include_messages_counters=False),)


def tracer() -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION, tracer_provider=_provider)


def attributes(values: Mapping[str, AttrValue]) -> dict[str, str | bool | int | float]:
    """Span attributes without the unknown ones (None) and with money as float."""
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in values.items() if v is not None}


def span(
    name: str,
    attrs: Mapping[str, AttrValue] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    links: Sequence[Link] | None = None,
    parent: Context | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """A current span (child of the current one, or of `parent`); a no-op when off."""
    if _provider is None:
        return contextlib.nullcontext()
    return tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes(attrs or {}), links=links
    )


def set_attributes(**values: AttrValue) -> None:
    """Add attributes to the current span (e.g. plan_id once a message is decoded)."""
    if _provider is None:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(attributes(values))


def inject(headers: dict[str, str]) -> dict[str, str]:
    """W3C trace context of the current span into `headers` (OpenTelemetry's propagator)."""
    if _provider is not None:
        propagate.inject(headers)
    return headers


def extract(headers: Mapping[str, str] | None) -> Context:
    """The context a message's producer sent (empty when none was sent)."""
    return propagate.extract(dict(headers or {}))


def remote_span_context(headers: Mapping[str, str] | None) -> SpanContext | None:
    context = trace.get_current_span(extract(headers)).get_span_context()
    return context if context.is_valid else None


def link_to(headers: Mapping[str, str] | None) -> list[Link]:
    """A span link to the producer of a message (empty when it carried no trace context)."""
    context = remote_span_context(headers)
    return [Link(context)] if context is not None else []


def enter_message(headers: Mapping[str, str] | None, **values: AttrValue) -> Token[SpanContext | None] | None:
    """Called by `handle_message` once a message is decoded: tags the handler's span with
    plan/user ids and remembers the message's producer for `message_links()`."""
    if _provider is None:
        return None
    set_attributes(**values)
    return _message.set(remote_span_context(headers))


def leave_message(token: Token[SpanContext | None] | None) -> None:
    if token is not None:
        _message.reset(token)


def message_links() -> list[Link]:
    """A link to the producer of the message being handled (what caused this work)."""
    context = _message.get()
    return [Link(context)] if context is not None else []
