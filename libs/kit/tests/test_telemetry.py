"""tripmesh_kit.telemetry: off without an endpoint (nothing installed), OTLP/HTTP with one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry import trace
from tripmesh_kit import telemetry
from tripmesh_kit.bus import make_broker
from tripmesh_kit.settings import ServiceSettings

E2E = Path(__file__).resolve().parents[3] / "tests" / "e2e"


def test_off_without_an_endpoint_installs_nothing() -> None:
    assert telemetry.configure_tracing("gateway", None) is False
    assert telemetry.configure_tracing("gateway", "") is False
    assert not telemetry.enabled()
    # no SDK provider: the API's default proxy, whose spans record nothing
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    assert telemetry.broker_middlewares() == ()
    with telemetry.span("nothing", {"plan_id": "p"}) as span:
        assert span is None
    assert telemetry.inject({}) == {}
    assert telemetry.message_links() == []
    assert telemetry.enter_message({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) is None


def test_broker_without_tracing_has_no_telemetry_middleware() -> None:
    broker = make_broker("nats://127.0.0.1:4222", "t")
    names = [type(m).__name__ for m in broker.middlewares]
    assert not any("Telemetry" in n for n in names), names


def test_settings_read_the_standard_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().otel_exporter_otlp_endpoint is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "planner-eu")
    settings = ServiceSettings(service_name="planner")
    assert settings.otel_exporter_otlp_endpoint == "http://collector:4318"
    assert settings.trace_service_name == "planner-eu"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/v1/traces")
    assert ServiceSettings().otel_exporter_otlp_endpoint == "http://traces:4318/v1/traces"


def test_traces_url_appends_the_signal_path_once() -> None:
    assert telemetry.traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert telemetry.traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert telemetry.traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_on_exports_spans_over_otlp_http_with_the_resource() -> None:
    """In a fresh interpreter: the global provider can be installed only once per process."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(E2E)!r})
        from otlp_receiver import OtlpReceiver
        from tripmesh_kit import telemetry

        with OtlpReceiver() as receiver:
            assert telemetry.configure_tracing("planner", receiver.endpoint, distribution="tripmesh-kit")
            assert telemetry.enabled() and len(telemetry.broker_middlewares()) == 1
            with telemetry.span("outer", {{"plan_id": "p1", "none": None}}):
                headers = telemetry.inject({{}})
            with telemetry.span("linked", links=telemetry.link_to(headers)):
                pass
            telemetry.shutdown()
            spans = {{s.name: s for s in receiver.spans()}}
            outer, linked = spans["outer"], spans["linked"]
            assert headers["traceparent"].split("-")[2] == outer.span_id
            assert outer.attributes == {{"plan_id": "p1"}}
            assert linked.links == ((outer.trace_id, outer.span_id),)
            assert outer.resource["service.name"] == "planner"
            assert outer.resource["service.namespace"] == "tripmesh"
            assert outer.resource["service.version"] == "0.1.0"
            print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
