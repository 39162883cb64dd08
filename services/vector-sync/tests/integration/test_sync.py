"""plans.changed -> Qdrant over real NATS JetStream and real Qdrant storage: versions never go
backwards, deletes remove (and stay removed), payloads, locations, preferences, DLQ, ops."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from qdrant_client import models
from tripmesh_contracts import new_id
from tripmesh_contracts.messages import PlanChanged, PlanSnapshot
from tripmesh_contracts.streams import DLQ
from tripmesh_vector_sync.documents import plan_point_id
from tripmesh_vector_sync.sync import Outcome, PlanSync

pytestmark = pytest.mark.integration

MakeChange = Callable[..., PlanChanged]
MakeSnapshot = Callable[..., PlanSnapshot]


async def _preferences_of(vs: Any, plan_id: str) -> list[models.Record]:
    records = await vs.store.scroll_all(vs.store.names.preferences, with_vectors=False)
    return [r for r in records if (r.payload or {}).get("plan_id") == plan_id]


async def test_v3_then_v2_delivered_keeps_v3(
    vector_sync: Any, make_change: MakeChange, make_snapshot: MakeSnapshot
) -> None:
    plan = new_id()
    await vector_sync.publish_and_wait(make_change(plan, 3, make_snapshot("Version three")))
    point = await vector_sync.plan_point(plan)
    assert point is not None and point.payload["version"] == 3

    # v2 arrives late (a redelivery, a replay): it must change nothing
    await vector_sync.publish_and_wait(make_change(plan, 2, make_snapshot("Version two")))
    point = await vector_sync.plan_point(plan)
    assert point is not None
    assert (point.payload["version"], point.payload["title"]) == (3, "Version three")


async def test_a_newer_version_replaces_the_point_and_its_preferences(
    vector_sync: Any, make_change: MakeChange, make_snapshot: MakeSnapshot
) -> None:
    plan = new_id()
    first = make_snapshot("Lisbon v1", preferences={"food": ["seafood"], "pace": "slow"})
    second = make_snapshot(
        "Lisbon v2", destinations=["Lisbon", "Sintra"], preferences={"food": ["pastries"], "museums": True}
    )
    await vector_sync.publish_and_wait(make_change(plan, 1, first))
    await vector_sync.publish_and_wait(make_change(plan, 2, second))

    point = await vector_sync.plan_point(plan)
    assert point is not None
    payload = point.payload
    assert payload["version"] == 2 and payload["title"] == "Lisbon v2"
    assert payload["user_id"] == "user-a" and payload["plan_id"] == plan
    assert payload["destinations"] == ["Lisbon", "Sintra"] and payload["countries"] == ["portugal"]
    assert payload["start_date"] == "2026-05-01" and payload["budget_total"] == 1500.0
    prefs = await _preferences_of(vector_sync, plan)
    assert sorted(((p.payload or {})["key"], (p.payload or {})["version"]) for p in prefs) == [
        ("food", 2),
        ("museums", 2),
    ]  # "pace" of v1 is gone
    places = await vector_sync.store.scroll_all(vector_sync.store.names.locations, with_vectors=False)
    assert {(p.payload["name"], p.payload["country"]) for p in places} == {
        ("Lisbon", "Portugal"),
        ("Sintra", "Portugal"),
    }  # Lisbon twice, stored once


async def test_delete_removes_the_plan_and_a_late_older_version_does_not_revive_it(
    vector_sync: Any, make_change: MakeChange
) -> None:
    plan, other = new_id(), new_id()
    await vector_sync.publish_and_wait(make_change(plan, 2), make_change(other, 1))
    assert await vector_sync.plan_point(plan) is not None

    await vector_sync.publish_and_wait(make_change(plan, 2, deleted=True))
    assert await vector_sync.plan_point(plan) is None
    assert await _preferences_of(vector_sync, plan) == []
    assert await vector_sync.plan_point(other) is not None  # only that plan

    # a redelivered version 2 (or 1) after the delete: still gone
    sync: PlanSync = vector_sync.app.state.sync
    assert await sync.apply(make_change(plan, 2)) is Outcome.STALE
    assert await sync.apply(make_change(plan, 1)) is Outcome.STALE
    assert await vector_sync.plan_point(plan) is None


@pytest.mark.parametrize("order", list(itertools.permutations([1, 2, 3])))
async def test_concurrent_versions_in_any_order_end_at_the_newest(
    qdrant_store: Any,
    wordllama: Any,
    make_change: MakeChange,
    make_snapshot: MakeSnapshot,
    order: tuple[int, ...],
) -> None:
    """Bypasses the one-at-a-time consumer: three writers race like three replicas would."""
    sync = PlanSync(qdrant_store, wordllama, embedder_label="wordllama")
    plan = new_id()
    changes = {v: make_change(plan, v, make_snapshot(f"v{v}", preferences={f"k{v}": "x"})) for v in (1, 2, 3)}
    await asyncio.gather(*(sync.apply(changes[v]) for v in order))
    found = await qdrant_store.client.retrieve(qdrant_store.names.plans, [plan_point_id(plan)])
    assert found and found[0].payload["version"] == 3 and found[0].payload["title"] == "v3"
    prefs = await qdrant_store.scroll_all(qdrant_store.names.preferences, with_vectors=False)
    assert [p.payload["key"] for p in prefs if p.payload["plan_id"] == plan] == ["k3"]


async def test_undecodable_and_snapshotless_changes_go_to_the_dlq(
    vector_sync: Any, make_change: MakeChange
) -> None:
    plan = new_id()
    await vector_sync.bus.publish_raw(b"{not json", f"plans.changed.{plan}", msg_id=new_id())
    broken = make_change(plan, 1).model_copy(update={"snapshot": None})
    await vector_sync.publish(broken)
    await vector_sync.publish_and_wait(make_change(new_id(), 1))  # the consumer went on

    info = await vector_sync.bus.js.stream_info(DLQ.name)
    assert info.state.messages == 2
    assert await vector_sync.plan_point(plan) is None


async def test_ops_endpoints_and_lag_metric(vector_sync: Any, make_change: MakeChange) -> None:
    await vector_sync.publish_and_wait(make_change(new_id(), 1))
    assert (await vector_sync.http("/healthz")).status_code == 200
    ready = await vector_sync.http("/readyz")
    assert ready.status_code == 200 and ready.json()["dependencies"] == ["nats", "qdrant"]
    text = (await vector_sync.http("/metrics")).text
    assert "tripmesh_vector_sync_lag_seconds_count" in text
    assert "tripmesh_vector_sync_embed_seconds_per_text_count" in text
