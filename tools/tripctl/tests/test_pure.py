"""Unit tests of tripctl's pure logic: formatting, settings, dead-letter headers, config drift."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from nats.js import api
from tripmesh_contracts.streams import ALL_CONSUMERS, ALL_STREAMS, USAGE
from tripmesh_kit.bus import consumer_config, stream_config
from tripmesh_kit.consume import DLQ_ERROR, DLQ_ERROR_KIND, DLQ_SEQ, DLQ_STREAM, DLQ_SUBJECT
from tripmesh_tripctl import output
from tripmesh_tripctl.checks import SCHEMAS, consumer_differences, stream_differences
from tripmesh_tripctl.deadletters import REPLAYED_FROM, DeadLetter, body_view, dlq_filter, replay_headers
from tripmesh_tripctl.gateway import plan_request
from tripmesh_tripctl.natsconn import redact
from tripmesh_tripctl.plan import agent_rows, event_line
from tripmesh_tripctl.settings import Settings

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=5), "5s ago"),
        (timedelta(minutes=3, seconds=5), "3m ago"),
        (timedelta(hours=2), "2h ago"),
        (timedelta(days=3, hours=1), "3d ago"),
        (-timedelta(seconds=3), "0s ago"),
    ],
)
def test_ages_read_like_kubectl(delta: timedelta, text: str) -> None:
    assert output.ago(NOW - delta, NOW) == text


def test_never_active_and_sizes() -> None:
    assert output.ago(None) == "never"
    assert [output.human_bytes(n) for n in (0, 1023, 2048, 5 * 1024**3)] == [
        "0 B",
        "1023 B",
        "2.0 KiB",
        "5.0 GiB",
    ]


def test_json_output_keeps_money_exact_and_times_in_utc() -> None:
    text = output.to_json({"cost": Decimal("0.00000010"), "at": NOW, "raw": b"x"})
    assert json.loads(text) == {"cost": "0.00000010", "at": "2026-11-23T12:00:00Z", "raw": "x"}


def test_redact_hides_credentials_of_every_url() -> None:
    assert redact("nats://admin:s3cret@h:4222, nats://h2:4222") == "nats://h:4222,nats://h2:4222"


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_operator_identity_from_the_local_stack(tmp_path: Path) -> None:
    (tmp_path / "nats").mkdir()
    (tmp_path / "nats" / "users.json").write_text(json.dumps({"admin": "pw/+", "gateway": "other"}))
    assert _settings(tmp_path).operator_nats_url() == "nats://admin:pw%2F%2B@127.0.0.1:4222"
    # explicit credentials win, and a URL that names a user is left alone
    explicit = _settings(tmp_path, nats_user="ops", nats_password="x")
    assert explicit.operator_nats_url() == "nats://ops:x@127.0.0.1:4222"
    named = _settings(tmp_path, nats_url="nats://me:pw@nats:4222")
    assert named.operator_nats_url() == "nats://me:pw@nats:4222"


def test_no_identity_anywhere_means_the_plain_url(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.operator_nats_url() == "nats://127.0.0.1:4222"
    assert settings.operator_database_url() is None
    assert settings.resolved_gateway_url() == "http://127.0.0.1:8080"
    assert settings.resolved_qdrant_path() == tmp_path / "qdrant"


def test_database_url_from_the_local_stack(tmp_path: Path) -> None:
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "superuser.password").write_text(json.dumps({"postgres": "pg pw"}))
    url = _settings(tmp_path, postgres_port=5999).operator_database_url()
    assert url == "postgresql://postgres:pg%20pw@127.0.0.1:5999/tripmesh"
    assert _settings(tmp_path, database_url="postgresql://x/y").operator_database_url() == "postgresql://x/y"


def test_settings_read_the_services_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://shared:4222")
    monkeypatch.setenv("GATEWAY_PORT", "9090")
    monkeypatch.setenv("QDRANT_URL", "http://q:6333")
    settings = Settings()
    assert (settings.nats_url, settings.resolved_gateway_url(), settings.qdrant_url) == (
        "nats://shared:4222",
        "http://127.0.0.1:9090",
        "http://q:6333",
    )
    monkeypatch.setenv("TRIPCTL_NATS_URL", "nats://mine:4222")
    assert Settings().nats_url == "nats://mine:4222"


def letter() -> DeadLetter:
    return DeadLetter(
        seq=7,
        subject="dlq.usage.llm.u1",
        data=b'{"id": "e1"}',
        headers={
            DLQ_ERROR: "undecodable UsageEvent: model missing",
            DLQ_ERROR_KIND: "undecodable",
            DLQ_SUBJECT: "usage.llm.u1",
            DLQ_STREAM: "USAGE",
            DLQ_SEQ: "42",
            "Tripmesh-Dlq-Deliveries": "3",
            "Nats-Msg-Id": "dlq-USAGE-42",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "content-type": "application/json",
        },
    )


def test_dead_letter_summary_reads_the_kit_headers() -> None:
    summary = letter().summary()
    assert summary["original_subject"] == "usage.llm.u1"
    assert (summary["kind"], summary["deliveries"], summary["original_seq"]) == ("undecodable", 3, 42)
    assert summary["original_stream"] == "USAGE" and summary["error"].endswith("model missing")


def test_replay_keeps_original_headers_with_a_fresh_message_id() -> None:
    headers = replay_headers(letter(), "replay-7-abc")
    assert headers == {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "content-type": "application/json",
        REPLAYED_FROM: "DLQ/7",
        "Nats-Msg-Id": "replay-7-abc",
    }


def test_subject_from_the_dlq_subject_when_the_header_is_missing() -> None:
    bare = DeadLetter(seq=1, subject="dlq.plans.cmd.create", data=b"")
    assert bare.original_subject == "plans.cmd.create" and bare.deliveries is None


def test_dlq_filters_and_body_views() -> None:
    assert dlq_filter(None) == "dlq.>"
    assert dlq_filter("usage.llm.>") == dlq_filter("dlq.usage.llm.>") == "dlq.usage.llm.>"
    assert body_view(b'{"a": 1}') == {"body": {"a": 1}}
    assert body_view(b"\xffnot json") == {"body_text": "\ufffdnot json"}


def test_declared_configs_match_themselves_and_drift_is_named() -> None:
    for spec in ALL_STREAMS:
        assert stream_differences(spec, stream_config(spec)) == []
    for cspec in ALL_CONSUMERS:
        assert consumer_differences(cspec, consumer_config(cspec)) == []
    drifted = stream_config(USAGE)
    drifted.max_age = 3600.0
    drifted.retention = api.RetentionPolicy.WORK_QUEUE
    assert stream_differences(USAGE, drifted) == [
        "retention workqueue (want limits)",
        f"max_age 3600s (want {USAGE.max_age_seconds:g}s)",
    ]
    consumer = consumer_config(ALL_CONSUMERS[0])
    consumer.max_deliver = 1
    assert consumer_differences(ALL_CONSUMERS[0], consumer) == [
        f"max_deliver 1 (want {ALL_CONSUMERS[0].max_deliver})"
    ]


def test_doctor_knows_every_schema_the_stack_gives_the_services() -> None:
    from tripmesh_devstack.identities import SERVICE_IDENTITIES

    declared = {schema: i.name for i in SERVICE_IDENTITIES.values() for schema in i.schemas}
    assert {schema: service for schema, (service, _) in SCHEMAS.items()} == declared


def test_doctor_knows_vector_syncs_collections() -> None:
    from tripmesh_tripctl.checks import COLLECTIONS
    from tripmesh_vector_sync.collections import CollectionNames  # a test may look inside

    assert tuple(CollectionNames.with_prefix("")) == COLLECTIONS


def test_plan_request_flags_override_the_json() -> None:
    body = plan_request(
        {"title": "a", "destinations": ["X"]},
        {"title": "b", "destinations": ("Y", "Z"), "origin": None, "budget_total": 10.0},
    )
    assert body == {"title": "b", "destinations": ["Y", "Z"], "budget_total": 10.0}
    assert plan_request({"destinations": ["X"]}, {"destinations": ()}) == {"destinations": ["X"]}


def test_agent_rows_and_event_lines() -> None:
    rows = agent_rows({"weather": {"status": "completed"}, "budget": {"error": "timeout"}, "x": "text"})
    assert rows == [("budget", "failed", "timeout"), ("weather", "completed", ""), ("x", "done", "text")]
    line = event_line(
        "agent_completed", {"completion_percentage": 40, "agent": "weather", "stage": "research"}
    )
    assert line.split() == ["agent_completed", "40%", "stage=research", "agent=weather"]


def _text(render: Any, *args: Any) -> str:
    from rich.console import Console

    out = Console(record=True, width=200, file=io.StringIO())
    render(*args, out)
    return out.export_text()


def test_human_tables_show_what_on_call_reads() -> None:
    from tripmesh_tripctl import bus, dlq, ledger

    status = {
        "streams": [
            {
                "name": "USAGE",
                "messages": 3,
                "bytes": 4096,
                "distinct_subjects": 2,
                "consumers": 1,
                "subjects": ["usage.llm.>"],
            }
        ],
        "consumers": [
            {
                "stream": "USAGE",
                "name": "cost-ledger-usage",
                "pending": 7,
                "ack_pending": 2,
                "redelivered": 1,
                "waiting": 1,
                "last_active": None,
            }
        ],
    }
    text = _text(bus.render, status)
    assert "cost-ledger-usage" in text and "4.0 KiB" in text and "never" in text

    row = {**letter().summary(), "time": NOW}
    listing = _text(dlq.render_list, [row])
    assert "usage.llm.u1" in listing and "undecodable" in listing
    assert _text(dlq.render_list, []).strip() == "no dead letters"
    detail = _text(dlq.render_detail, {**letter().detail(), "time": NOW})
    assert "USAGE/42" in detail and "traceparent" in detail and '"id": "e1"' in detail

    summary = {
        "user_id": "u1",
        "plan_id": None,
        "calls": 2,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_cost_usd": "0.5",
        "by_agent": [
            {"key": "weather", "calls": 2, "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": "0.5"}
        ],
    }
    text = _text(ledger.render_summary, summary)
    assert "2 calls" in text and "$0.5" in text and "weather" in text
