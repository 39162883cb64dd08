"""tripctl against real servers (the devstack fixtures): bus status, the DLQ commands and
doctor, called in-process through click's runner (the e2e test runs the console script)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from tripmesh_contracts.streams import DLQ, LEDGER_USAGE, USAGE
from tripmesh_devstack.nats import NatsServer
from tripmesh_kit.bus import connect, provision, stream_config
from tripmesh_kit.consume import DLQ_DELIVERIES, DLQ_ERROR, DLQ_ERROR_KIND, DLQ_SUBJECT
from tripmesh_tripctl.checks import COLLECTIONS, SCHEMAS
from tripmesh_tripctl.cli import cli

pytestmark = pytest.mark.integration

Tripctl = Callable[..., Result]


def tripctl_for(tmp_path: Path, **env: str) -> Tripctl:
    """`tripctl ARGS` in-process with only the environment given here (TRIPCTL_* cleared)."""
    base: dict[str, str | None] = {
        "TRIPMESH_DATA_DIR": str(tmp_path / "no-stack"),
        "DATABASE_URL": None,
        "QDRANT_URL": None,
        "TRIPCTL_NATS_URL": None,
        "TRIPCTL_NATS_USER": None,
        "TRIPCTL_DATABASE_URL": None,
        "TRIPCTL_QDRANT_URL": None,
        "VECTOR_SYNC_COLLECTION_PREFIX": None,
    }

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env={**base, **env}, catch_exceptions=False)

    return run


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def provisioned(nats_url: str) -> str:
    async def go() -> None:
        nc = await connect(nats_url, "tripctl-test")
        await provision(nc.jetstream())
        await nc.close()

    asyncio.run(go())
    return nats_url


@pytest.fixture
def tripctl(provisioned: str, tmp_path: Path) -> Tripctl:
    return tripctl_for(tmp_path, NATS_URL=provisioned)


def dead_letter(nats_url: str, subject: str, body: bytes, extra: dict[str, str] | None = None) -> int:
    """What tripmesh_kit.consume.dead_letter writes, published directly."""

    async def go() -> int:
        nc = await connect(nats_url, "tripctl-test")
        headers = {
            DLQ_ERROR: "undecodable UsageEvent: model: Field required",
            DLQ_ERROR_KIND: "undecodable",
            DLQ_SUBJECT: subject,
            DLQ_DELIVERIES: "1",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            **(extra or {}),
        }
        ack = await nc.jetstream().publish(f"dlq.{subject}", body, headers=headers)
        await nc.close()
        return int(ack.seq)

    return asyncio.run(go())


def usage_messages(nats_url: str, subject: str) -> list[tuple[bytes, dict[str, str]]]:
    """Every message on `subject` in USAGE (an ephemeral ordered read, no durable)."""

    async def go() -> list[tuple[bytes, dict[str, str]]]:
        nc = await connect(nats_url, "tripctl-test")
        js = nc.jetstream()
        found: list[tuple[bytes, dict[str, str]]] = []
        seq = 1
        while True:
            try:
                msg = await js.get_msg(USAGE.name, seq=seq, subject=subject, next=True)
            except Exception:
                break
            found.append((msg.data or b"", dict(msg.headers or {})))
            seq = int(msg.seq or seq) + 1
        await nc.close()
        return found

    return asyncio.run(go())


def test_bus_status_lists_every_stream_and_consumer(tripctl: Tripctl) -> None:
    status = ok_json(tripctl("bus", "status", "--json"))
    streams = {s["name"]: s for s in status["streams"]}
    assert {"PLAN_COMMANDS", "AGENT_JOBS", "USAGE", "DLQ"} <= set(streams)
    assert streams["USAGE"]["subjects"] == ["usage.llm.>"]
    usage = next(c for c in status["consumers"] if c["name"] == LEDGER_USAGE.durable)
    assert usage["stream"] == "USAGE" and usage["filter_subject"] == "usage.llm.>"
    assert {"pending", "ack_pending", "redelivered", "last_active"} <= set(usage)
    human = tripctl("bus", "status")
    assert human.exit_code == 0 and "cost-ledger-usage" in human.stdout and "Ack pending" in human.stdout


def test_ls_show_replay_and_replay_again(tripctl: Tripctl, provisioned: str, tmp_path: Path) -> None:
    subject = f"usage.llm.t{uuid.uuid4().hex[:10]}"
    body = b'{"id": "e1", "user_id": "u"}'
    seq = dead_letter(provisioned, subject, body)

    [row] = ok_json(tripctl("dlq", "ls", "--subject", subject, "--json"))
    assert (row["id"], row["original_subject"], row["kind"], row["deliveries"]) == (
        seq,
        subject,
        "undecodable",
        1,
    )
    shown = ok_json(tripctl("dlq", "show", str(seq), "--json"))
    assert shown["body"] == {"id": "e1", "user_id": "u"} and "traceparent" in shown["headers"]

    kept = ok_json(tripctl("dlq", "replay", str(seq), "--keep", "--json"))
    assert kept[0]["removed"] is False and kept[0]["duplicate"] is False
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(b'{"id": "e1", "user_id": "u", "model": "m"}')
    done = ok_json(tripctl("dlq", "replay", str(seq), "--body", str(fixed), "--json"))
    # within the duplicate window: a re-used Nats-Msg-Id would have been dropped
    assert done[0]["removed"] is True and done[0]["duplicate"] is False

    landed = usage_messages(provisioned, subject)
    assert [data for data, _ in landed] == [body, fixed.read_bytes()]
    for _, headers in landed:
        assert headers["Tripmesh-Replayed-From"] == f"DLQ/{seq}"
        assert headers["traceparent"].startswith("00-0af7")
        assert headers["Nats-Msg-Id"].startswith(f"replay-{seq}-")
        assert not any(k.startswith("Tripmesh-Dlq-") for k in headers)
    assert landed[0][1]["Nats-Msg-Id"] != landed[1][1]["Nats-Msg-Id"]
    assert ok_json(tripctl("dlq", "ls", "--subject", subject, "--json")) == []

    gone = tripctl("dlq", "show", str(seq))
    assert gone.exit_code == 1 and "no dead letter" in gone.stderr


def test_replay_all_of_one_subject_and_purge(tripctl: Tripctl, provisioned: str) -> None:
    tag = uuid.uuid4().hex[:10]
    mine = [dead_letter(provisioned, f"usage.llm.a{tag}", b"{}") for _ in range(3)]
    other = dead_letter(provisioned, f"usage.llm.b{tag}", b"{}")
    replayed = ok_json(tripctl("dlq", "replay", "--all", "--subject", f"usage.llm.a{tag}", "--json"))
    assert [r["id"] for r in replayed] == mine
    assert len(usage_messages(provisioned, f"usage.llm.a{tag}")) == 3
    assert [r["id"] for r in ok_json(tripctl("dlq", "ls", "--subject", f"usage.llm.b{tag}", "--json"))] == [
        other
    ]

    purged = ok_json(tripctl("dlq", "purge", "--subject", f"usage.llm.b{tag}", "--yes", "--json"))
    assert purged == {"purged": 1}
    assert ok_json(tripctl("dlq", "ls", "--subject", f"usage.llm.b{tag}", "--json")) == []


def test_replay_arguments_are_checked(tripctl: Tripctl) -> None:
    for args in (
        ("dlq", "replay"),
        ("dlq", "replay", "1", "--all"),
        ("dlq", "replay", "1", "--subject", "x"),
    ):
        result = tripctl(*args)
        assert result.exit_code == 2 and "error:" in result.stderr


def test_unreachable_nats_says_what_to_do(tmp_path: Path) -> None:
    result = tripctl_for(tmp_path, NATS_URL="nats://127.0.0.1:1")("bus", "status")
    assert result.exit_code == 1
    assert "cannot reach NATS" in result.stderr and "hint:" in result.stderr


@pytest.fixture
def bare_nats(own_nats_server: Callable[..., NatsServer]) -> Iterator[str]:
    yield own_nats_server().url


def test_doctor_on_an_empty_server_then_fixed_then_drifted(bare_nats: str, tmp_path: Path) -> None:
    tripctl = tripctl_for(tmp_path, NATS_URL=bare_nats)
    result = tripctl("doctor", "--skip", "postgres", "--skip", "qdrant", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["ok"]
    failing = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert failing["stream DLQ"]["problem"] == "missing" and "--fix" in failing["stream DLQ"]["fix"]
    assert f"consumer USAGE/{LEDGER_USAGE.durable}" in failing

    human = tripctl("doctor", "--skip", "postgres", "--skip", "qdrant")
    assert human.exit_code == 1 and "FAIL" in human.stdout and "to fix" in human.stdout

    fixed = tripctl("doctor", "--skip", "postgres", "--skip", "qdrant", "--fix", "--json")
    assert ok_json(fixed)["ok"] is True

    async def drift() -> None:
        nc = await connect(bare_nats, "tripctl-test")
        config = stream_config(DLQ)
        config.max_age = 3600.0
        await nc.jetstream().update_stream(config)
        await nc.close()

    asyncio.run(drift())
    drifted = json.loads(tripctl("doctor", "--skip", "postgres", "--skip", "qdrant", "--json").stdout)
    [bad] = [c for c in drifted["checks"] if not c["ok"]]
    assert bad["name"] == "stream DLQ" and bad["problem"].startswith("max_age 3600s")


def test_doctor_postgres_schemas_and_qdrant_collections(
    fresh_database_url: str, provisioned: str, tmp_path: Path
) -> None:
    storage = tmp_path / "qdrant"
    run = tripctl_for(
        tmp_path, NATS_URL=provisioned, DATABASE_URL=fresh_database_url, VECTOR_SYNC_QDRANT_PATH=str(storage)
    )
    report = json.loads(run("doctor", "--skip", "nats", "--json").stdout)
    failing = {c["name"] for c in report["checks"] if not c["ok"]}
    assert {f"schema {s}" for s in SCHEMAS} <= failing and "local storage" in failing

    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        for schema, (_, marker) in SCHEMAS.items():
            conn.execute(f'CREATE SCHEMA "{schema}"')
            if schema != "ledger":  # one schema created but never migrated
                conn.execute(f'CREATE TABLE "{schema}"."{marker}" (v int)')
    storage.mkdir()
    (storage / "meta.json").write_text(json.dumps({"collections": {c: {} for c in COLLECTIONS[:-1]}}))

    report = json.loads(run("doctor", "--skip", "nats", "--json").stdout)
    failing = {c["name"]: c["problem"] for c in report["checks"] if not c["ok"]}
    assert failing == {
        "schema ledger": "no schema_migrations table (never migrated)",
        f"collection {COLLECTIONS[-1]}": "missing",
    }
