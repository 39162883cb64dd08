"""`tripctl doctor`'s checks: the deployment against what libs/contracts and the services
declare. Each check says what is wrong and how to fix it; none changes anything.

- NATS: reachable as the operator; JetStream on; every stream of `streams.ALL_STREAMS` and
  durable of `streams.ALL_CONSUMERS` exists with the declared config (kit `stream_config` /
  `consumer_config`, the same objects provisioning writes).
- Postgres: every service schema exists (`information_schema.schemata`) with its migrations
  table, as each service creates them at start-up.
- Qdrant: vector-sync's collections (`plans`, `locations`, `preferences`, `plan_tombstones`,
  after `VECTOR_SYNC_COLLECTION_PREFIX`), on the server or in the local storage's meta.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from tripmesh_contracts.streams import ALL_CONSUMERS, ALL_STREAMS, ConsumerSpec, StreamSpec
from tripmesh_kit.bus import consumer_config, stream_config

from tripmesh_tripctl.settings import Settings

PROVISION_FIX = (
    "provision as the operator: `tripctl doctor --fix` "
    "(or `NATS_URL=<operator url> python -m tripmesh_kit.provision`)"
)

SCHEMAS: dict[str, tuple[str, str]] = {
    # schema -> (owning service, the table that says it was migrated)
    "accounts": ("gateway", "schema_migrations"),
    "planner": ("planner", "schema_migrations"),
    "planner_checkpoints": ("planner", "checkpoint_migrations"),
    "ledger": ("cost-ledger", "schema_migrations"),
}
"""The services' schemas (tools/devstack identities.py gives them to the services' roles)."""

COLLECTIONS = ("plans", "locations", "preferences", "plan_tombstones")
"""vector-sync's collections (its collections.py CollectionNames.with_prefix)."""


@dataclass
class Check:
    area: str
    name: str
    ok: bool
    problem: str | None = None
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _close(a: float | None, b: float | None) -> bool:
    return abs((a or 0.0) - (b or 0.0)) < 1e-3


def stream_differences(spec: StreamSpec, actual: api.StreamConfig) -> list[str]:
    want = stream_config(spec)
    diffs = []
    if sorted(actual.subjects or []) != sorted(want.subjects or []):
        diffs.append(f"subjects {actual.subjects} (want {want.subjects})")
    if actual.retention != want.retention:
        diffs.append(f"retention {_value(actual.retention)} (want {_value(want.retention)})")
    if actual.storage != want.storage:
        diffs.append(f"storage {_value(actual.storage)} (want {_value(want.storage)})")
    if not _close(actual.max_age, want.max_age):
        diffs.append(f"max_age {actual.max_age or 0:g}s (want {want.max_age or 0:g}s)")
    if (actual.max_msgs_per_subject or -1) != (want.max_msgs_per_subject or -1):
        diffs.append(f"max_msgs_per_subject {actual.max_msgs_per_subject} (want {want.max_msgs_per_subject})")
    if not _close(actual.duplicate_window, want.duplicate_window):
        diffs.append(f"duplicate_window {actual.duplicate_window}s (want {want.duplicate_window}s)")
    if (actual.num_replicas or 1) != (want.num_replicas or 1):
        diffs.append(f"replicas {actual.num_replicas} (want {want.num_replicas})")
    return diffs


def consumer_differences(spec: ConsumerSpec, actual: api.ConsumerConfig) -> list[str]:
    want = consumer_config(spec)
    diffs = []
    if actual.filter_subject != want.filter_subject:
        diffs.append(f"filter_subject {actual.filter_subject} (want {want.filter_subject})")
    if actual.ack_policy != want.ack_policy:
        diffs.append(f"ack_policy {_value(actual.ack_policy)} (want {_value(want.ack_policy)})")
    if not _close(actual.ack_wait, want.ack_wait):
        diffs.append(f"ack_wait {actual.ack_wait}s (want {want.ack_wait}s)")
    if actual.max_deliver != want.max_deliver:
        diffs.append(f"max_deliver {actual.max_deliver} (want {want.max_deliver})")
    if actual.max_ack_pending != want.max_ack_pending:
        diffs.append(f"max_ack_pending {actual.max_ack_pending} (want {want.max_ack_pending})")
    if list(actual.backoff or []) != list(want.backoff or []):
        diffs.append(f"backoff {actual.backoff} (want {want.backoff})")
    return diffs


def _value(x: object) -> object:
    return getattr(x, "value", x)


async def check_bus(nc: Client, timeout: float) -> list[Check]:
    js: JetStreamContext = nc.jetstream(timeout=timeout)
    out = [Check("nats", "connection", True)]
    try:
        await js.account_info()
    except Exception as exc:
        return [
            *out,
            Check("nats", "jetstream", False, f"JetStream unavailable: {exc}", "start nats-server with -js"),
        ]
    for spec in ALL_STREAMS:
        name = f"stream {spec.name}"
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            out.append(Check("nats", name, False, "missing", PROVISION_FIX))
            continue
        diffs = stream_differences(spec, info.config)
        out.append(Check("nats", name, not diffs, "; ".join(diffs) or None, PROVISION_FIX if diffs else None))
    for cspec in ALL_CONSUMERS:
        name = f"consumer {cspec.stream}/{cspec.durable}"
        try:
            cinfo = await js.consumer_info(cspec.stream, cspec.durable)
        except NotFoundError:
            out.append(Check("nats", name, False, "missing", PROVISION_FIX))
            continue
        diffs = consumer_differences(cspec, cinfo.config)
        fix = (
            PROVISION_FIX + "; a changed filter_subject needs the consumer deleted first"
            if any(d.startswith("filter_subject") for d in diffs)
            else PROVISION_FIX
        )
        out.append(Check("nats", name, not diffs, "; ".join(diffs) or None, fix if diffs else None))
    return out


async def check_postgres(url: str | None, timeout: float) -> list[Check]:
    if not url:
        return [
            Check(
                "postgres", "connection", False, "no database URL", "set DATABASE_URL or TRIPCTL_DATABASE_URL"
            )
        ]
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=max(1, int(timeout)))
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [
            Check("postgres", "connection", False, first, "start Postgres (`make up`) or fix DATABASE_URL")
        ]
    out = [Check("postgres", "connection", True)]
    async with conn:
        cur = await conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = ANY(%s)",
            [list(SCHEMAS)],
        )
        tables = {(str(s), str(t)) for s, t in await cur.fetchall()}
        cur = await conn.execute("SELECT schema_name FROM information_schema.schemata")
        schemas = {str(row[0]) for row in await cur.fetchall()}
    for schema, (service, marker) in SCHEMAS.items():
        fix = f"start {service} once: it creates and migrates `{schema}` at start-up"
        if schema not in schemas:
            out.append(Check("postgres", f"schema {schema}", False, "missing", fix))
        elif (schema, marker) not in tables:
            out.append(
                Check("postgres", f"schema {schema}", False, f"no {marker} table (never migrated)", fix)
            )
        else:
            out.append(Check("postgres", f"schema {schema}", True))
    return out


async def check_qdrant(settings: Settings) -> list[Check]:
    wanted = [settings.collection_prefix + c for c in COLLECTIONS]
    fix = "start vector-sync once (it creates its collections), or `tripctl vectors reindex`"
    if settings.qdrant_url:
        headers = {"api-key": settings.qdrant_api_key.get_secret_value()} if settings.qdrant_api_key else {}
        try:
            async with httpx.AsyncClient(timeout=settings.timeout_seconds, headers=headers) as http:
                r = await http.get(settings.qdrant_url.rstrip("/") + "/collections")
                r.raise_for_status()
            have = {c["name"] for c in r.json()["result"]["collections"]}
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            return [
                Check(
                    "qdrant",
                    "connection",
                    False,
                    f"{type(exc).__name__}: {exc}",
                    "start Qdrant or fix QDRANT_URL",
                )
            ]
        where = settings.qdrant_url
    else:
        path = settings.resolved_qdrant_path()
        local = local_collections(path)
        if local is None:
            return [Check("qdrant", "local storage", False, f"no Qdrant storage at {path}", fix)]
        have, where = local, str(path)
    out = [Check("qdrant", f"storage {where}", True)]
    for name in wanted:
        out.append(
            Check(
                "qdrant",
                f"collection {name}",
                name in have,
                None if name in have else "missing",
                None if name in have else fix,
            )
        )
    return out


def local_collections(path: Path) -> set[str] | None:
    """Collections of a local-mode storage, read from its meta.json without opening it (the
    running vector-sync holds the storage's lock)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return set(meta.get("collections", {}))
