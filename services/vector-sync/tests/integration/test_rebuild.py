"""Rebuild from PLAN_CHANGES (`python -m tripmesh_vector_sync reindex`) and the embedder
fingerprint: a rebuild ends with the live consumer's points; another embedder is refused."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient
from tripmesh_contracts import new_id
from tripmesh_contracts.messages import PlanChanged, PlanSnapshot
from tripmesh_vector_sync.collections import CollectionNames, EmbedderMismatchError, fingerprint
from tripmesh_vector_sync.embedders import WordLlamaEmbedder

pytestmark = pytest.mark.integration

MakeChange = Callable[..., PlanChanged]
MakeSnapshot = Callable[..., PlanSnapshot]
Points = dict[str, dict[str, Any]]


async def all_points(client: AsyncQdrantClient, names: CollectionNames) -> dict[str, Points]:
    out: dict[str, Points] = {}
    for name in names:
        records, offset = [], None
        while True:
            batch, offset = await client.scroll(
                name, limit=256, offset=offset, with_payload=True, with_vectors=True
            )
            records.extend(batch)
            if offset is None:
                break
        out[name] = {str(r.id): {"payload": r.payload, "vector": r.vector} for r in records}
    return out


def assert_same_points(original: Points, rebuilt: Points) -> None:
    assert rebuilt.keys() == original.keys()
    for point_id, point in original.items():
        assert rebuilt[point_id]["payload"] == point["payload"]
        if isinstance(point["vector"], list):
            assert rebuilt[point_id]["vector"] == pytest.approx(point["vector"], abs=1e-6)


def reindex_command(target: Any, nats_url: str) -> dict[str, Any]:
    """The operator's command, as a process, configured only by the environment."""
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "VECTOR_SYNC_COLLECTION_PREFIX": target.prefix,
        "VECTOR_SYNC_QDRANT_PATH": str(target.path),
        "HF_HUB_OFFLINE": "1",
        "LOG_FORMAT": "json",
    }
    env.pop("QDRANT_URL", None)
    if target.url:
        env["QDRANT_URL"] = target.url
    done = subprocess.run(
        [sys.executable, "-m", "tripmesh_vector_sync", "reindex"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


async def test_reindex_ends_with_the_same_points(
    vs_nats_url: str,
    qdrant_target: Any,
    wordllama: WordLlamaEmbedder,
    make_change: MakeChange,
    make_snapshot: MakeSnapshot,
    running: Any,
) -> None:
    settings = qdrant_target.settings(vs_nats_url)
    plans = [new_id() for _ in range(8)]
    gone = new_id()
    async with running(settings, wordllama) as vs:
        await vs.publish_and_wait(
            *(
                make_change(p, 1, make_snapshot(f"Trip {i}", preferences={"pace": "slow", "food": ["tapas"]}))
                for i, p in enumerate(plans)
            )
        )
        await vs.publish_and_wait(
            make_change(plans[0], 2, make_snapshot("Trip 0 revised", preferences={"museums": True})),
            make_change(
                plans[1],
                3,
                make_snapshot("Iberia", destinations=["Madrid", "Porto"], countries=["Portugal", "Spain"]),
            ),
            make_change(plans[2], 2, user_id="user-b"),
            make_change(gone, 1, make_snapshot("Deleted later", destinations=["Lisbon"])),
        )
        await vs.publish_and_wait(make_change(gone, 1, deleted=True))
        # a late redelivery of an older version: ignored live (not re-published: PLAN_CHANGES
        # keeps the last message per plan, so a rebuild sees what publishers sent last)
        await vs.app.state.sync.apply(make_change(plans[1], 2, make_snapshot("stale, ignored")))
        names = vs.store.names
        original = await all_points(vs.store.client, names)

    assert len(original[names.plans]) == 8 and len(original[names.tombstones]) == 1
    places = {(p["payload"]["name"], p["payload"]["country"]) for p in original[names.locations].values()}
    assert ("Madrid", "Spain") in places and ("Porto", "Portugal") in places  # multi-country pairing

    report = reindex_command(qdrant_target, vs_nats_url)
    assert report["undecodable"] == 0 and report["points"][names.plans] == 8

    client = qdrant_target.client()
    try:
        rebuilt = await all_points(client, names)
    finally:
        await client.close()
    for name in names:
        assert_same_points(original[name], rebuilt[name])

    # and the service starts on the rebuilt collections and goes on from there
    async with running(settings, wordllama) as vs:
        await vs.publish_and_wait(make_change(plans[3], 2, make_snapshot("After the rebuild")))
        point = await vs.plan_point(plans[3])
        assert point is not None and point.payload["version"] == 2


async def test_another_embedder_is_refused_unless_told_to_reindex(
    vs_nats_url: str, qdrant_target: Any, wordllama: WordLlamaEmbedder, make_change: MakeChange, running: Any
) -> None:
    narrower = await asyncio.to_thread(WordLlamaEmbedder, dim=128)
    plans = [new_id() for _ in range(3)]
    async with running(qdrant_target.settings(vs_nats_url), narrower) as vs:
        await vs.publish_and_wait(*(make_change(p, 1) for p in plans))
        names = vs.store.names

    with pytest.raises(EmbedderMismatchError, match="reindex"):
        async with running(qdrant_target.settings(vs_nats_url), wordllama):
            pass
    client = qdrant_target.client()
    try:  # refused means untouched: still the 128-d vectors, still every point
        info = await client.get_collection(names.plans)
        assert info.config.metadata == fingerprint(narrower)
        assert (await client.count(names.plans)).count == 3
    finally:
        await client.close()

    settings = qdrant_target.settings(vs_nats_url, reindex_on_mismatch=True)
    async with running(settings, wordllama) as vs:
        info = await vs.store.client.get_collection(names.plans)
        assert info.config.metadata == fingerprint(wordllama)
        assert info.config.params.vectors.size == 256
        assert await vs.store.count(names.plans) == 3
