"""cost-ledger tracing.py: each usage message's write is a span in its own producer's trace."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tripmesh_contracts import UsageEvent
from tripmesh_cost_ledger.domain import UsageRow
from tripmesh_cost_ledger.tracing import ledger_write_spans, usage_attributes

E2E = Path(__file__).resolve().parents[4] / "tests" / "e2e"


def raw(data: bytes, headers: dict[str, str] | None = None) -> Any:
    return SimpleNamespace(data=data, headers=headers)


def usage_row(**fields: Any) -> UsageRow:
    return UsageRow.from_event(UsageEvent(**{"user_id": "a", "model": "m", "provider": "openai", **fields}))


def test_off_is_a_no_op() -> None:
    with ledger_write_spans([(raw(b"{}"), usage_row())]):
        pass


def test_usage_attributes_from_the_decoded_row() -> None:
    row = usage_row(
        id="u1", plan_id="p1", agent="transport", prompt_tokens=10, completion_tokens=5, cost_usd="0.0012"
    )
    assert usage_attributes(row) == {
        "plan_id": "p1",
        "user_id": "a",
        "agent": "transport",
        "model": "m",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5,
        "tripmesh.cost_usd": 0.0012,
        "messaging.message.id": "u1",
    }


def test_on_each_message_span_joins_its_producers_trace() -> None:
    """In a fresh interpreter (one global provider per process), exported to a receiver."""
    script = textwrap.dedent(
        f"""
        import sys
        from types import SimpleNamespace
        sys.path.insert(0, {str(E2E)!r})
        from otlp_receiver import OtlpReceiver
        from tripmesh_kit import telemetry
        from tripmesh_contracts import UsageEvent
        from tripmesh_cost_ledger.domain import UsageRow
        from tripmesh_cost_ledger.tracing import ledger_write_spans

        def row(plan):
            return UsageRow.from_event(UsageEvent(user_id="a", plan_id=plan, model="m", provider="p"))

        with OtlpReceiver() as receiver:
            telemetry.configure_tracing("cost-ledger", receiver.endpoint)
            headers = []
            for plan in ("p1", "p2"):
                with telemetry.span("usage publish " + plan):
                    headers.append(telemetry.inject({{}}))
            decoded = [(SimpleNamespace(data=b"", headers=h), row("p%d" % (i + 1)))
                       for i, h in enumerate(headers)]
            decoded.append((SimpleNamespace(data=b"", headers=None), row(None)))
            with ledger_write_spans(decoded):
                with telemetry.span("INSERT"):
                    pass
            telemetry.shutdown()
            spans = receiver.spans()
            producers = {{s.name: s for s in spans if s.name.startswith("usage publish")}}
            writes = [s for s in spans if s.name == "ledger.write usage"]
            batch = next(s for s in spans if s.name == "ledger.ingest")
            insert = next(s for s in spans if s.name == "INSERT")
            assert len(writes) == 3
            for plan in ("p1", "p2"):
                producer = producers["usage publish " + plan]
                write = next(w for w in writes if w.attributes.get("plan_id") == plan)
                assert (write.trace_id, write.parent_span_id) == (producer.trace_id, producer.span_id)
                assert write.links == ((batch.trace_id, batch.span_id),)
            assert len(batch.links) == 2 and insert.parent_span_id == batch.span_id
            print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
