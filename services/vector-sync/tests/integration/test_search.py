"""svc.vectors.search / svc.vectors.similar over real NATS request/reply and real Qdrant, with
the real default embedder (wordllama): tenant isolation, filters, ranking, 404s."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from tripmesh_contracts import new_id, subjects
from tripmesh_contracts.messages import PlanChanged, PlanSnapshot
from tripmesh_contracts.plans import PlanStatus
from tripmesh_contracts.rpc import (
    SearchFilters,
    SearchPlansRequest,
    SearchReply,
    SimilarPlansRequest,
)

pytestmark = pytest.mark.integration

MakeChange = Callable[..., PlanChanged]
MakeSnapshot = Callable[..., PlanSnapshot]

PLACES = [
    ("Lisbon", "Portugal"),
    ("Porto", "Portugal"),
    ("Bergen", "Norway"),
    ("Oslo", "Norway"),
    ("Kyoto", "Japan"),
    ("Rome", "Italy"),
    ("Seville", "Spain"),
    ("Berlin", "Germany"),
]
THEMES = ["food", "hiking", "museums", "beaches", "nightlife", "wine", "architecture", "cycling"]


def random_plan(rng: random.Random, make_snapshot: MakeSnapshot) -> PlanSnapshot:
    place, country = rng.choice(PLACES)
    theme = rng.choice(THEMES)
    month = rng.randint(1, 12)
    return make_snapshot(
        f"{theme.title()} in {place}",
        destinations=[place],
        countries=[country],
        start=f"2026-{month:02d}-01",
        end=f"2026-{month:02d}-0{rng.randint(3, 9)}",
        budget=str(rng.randint(300, 5000)),
        status=rng.choice(list(PlanStatus)),
        summary=f"{theme} days around {place}",
        preferences={"interest": theme},
    )


def random_filters(rng: random.Random) -> SearchFilters:
    if rng.random() < 0.5:
        return SearchFilters()
    return SearchFilters(
        country=rng.choice([None, *(c for _, c in PLACES)]),
        start_after=rng.choice([None, date(2026, rng.randint(1, 12), 1)]),
        budget_max=rng.choice([None, Decimal(rng.randint(500, 5000))]),
        status=rng.choice([None, *PlanStatus]),
    )


async def test_user_a_never_sees_user_b_plans(
    vector_sync: Any, make_change: MakeChange, make_snapshot: MakeSnapshot
) -> None:
    rng = random.Random(20260501)
    plans_a = {new_id(): random_plan(rng, make_snapshot) for _ in range(25)}
    plans_b = {new_id(): random_plan(rng, make_snapshot) for _ in range(25)}
    await vector_sync.publish_and_wait(
        *(make_change(p, 1, s, user_id="user-a") for p, s in plans_a.items()),
        *(make_change(p, 1, s, user_id="user-b") for p, s in plans_b.items()),
    )

    seen_a = 0
    for i in range(100):
        if i % 4 == 0:  # a query that matches one of B's plans word for word
            q = plans_b[rng.choice(list(plans_b))].title
        else:
            q = " ".join(rng.sample([*THEMES, *(p for p, _ in PLACES)], k=rng.randint(1, 3)))
        reply = await vector_sync.ask(
            subjects.SVC_VECTORS_SEARCH,
            SearchPlansRequest(user_id="user-a", q=q, limit=rng.randint(1, 50), filters=random_filters(rng)),
            SearchReply,
        )
        assert reply.error is None
        hit_ids = {h.plan_id for h in reply.hits}
        assert not hit_ids & plans_b.keys(), f"user-a saw user-b's plans for {q!r}"
        assert hit_ids <= plans_a.keys()
        seen_a += len(hit_ids)
    assert seen_a > 0  # the searches did return A's own plans: the check above is not vacuous

    for plan_id in rng.sample(list(plans_a), 10):
        reply = await vector_sync.ask(
            subjects.SVC_VECTORS_SIMILAR,
            SimilarPlansRequest(user_id="user-a", plan_id=plan_id, limit=50),
            SearchReply,
        )
        assert reply.error is None and len(reply.hits) == len(plans_a) - 1
        assert {h.plan_id for h in reply.hits} <= plans_a.keys() - {plan_id}

    # the same title, asked by its owner, does find B's plan: the tenant filter is what hid it
    target = rng.choice(list(plans_b))
    reply = await vector_sync.ask(
        subjects.SVC_VECTORS_SEARCH,
        SearchPlansRequest(user_id="user-b", q=plans_b[target].title, limit=50),
        SearchReply,
    )
    assert target in {h.plan_id for h in reply.hits}


async def test_similar_for_someone_elses_plan_is_404(vector_sync: Any, make_change: MakeChange) -> None:
    theirs, mine = new_id(), new_id()
    await vector_sync.publish_and_wait(
        make_change(theirs, 1, user_id="user-b"), make_change(mine, 1, user_id="user-a")
    )
    for plan_id in (theirs, new_id()):  # someone else's and a missing plan answer alike
        reply = await vector_sync.ask(
            subjects.SVC_VECTORS_SIMILAR, SimilarPlansRequest(user_id="user-a", plan_id=plan_id), SearchReply
        )
        assert reply.error is not None and reply.error.status == 404 and reply.hits == []


async def test_real_wordllama_ranks_the_portugal_food_plan_first(
    vector_sync: Any, make_change: MakeChange, make_snapshot: MakeSnapshot
) -> None:
    food, hiking, food_too = new_id(), new_id(), new_id()
    await vector_sync.publish_and_wait(
        make_change(
            food,
            1,
            make_snapshot(
                "A week of eating in Portugal",
                destinations=["Lisbon", "Porto"],
                countries=["Portugal"],
                summary="Seafood lunches, pastel de nata tastings, port wine cellars and markets.",
                preferences={"cuisine": ["seafood", "pastries"]},
            ),
        ),
        make_change(
            hiking,
            1,
            make_snapshot(
                "Fjord hiking adventure",
                destinations=["Bergen", "Tromsø"],
                countries=["Norway"],
                start="2026-07-01",
                end="2026-07-10",
                currency="NOK",
                budget="30000",
                summary="Mountain trails above the fjords, glacier walks and cabin nights.",
                preferences={"activity": "hiking"},
            ),
        ),
        make_change(
            food_too,
            1,
            make_snapshot(
                "Tapas and wine in Seville",
                destinations=["Seville"],
                countries=["Spain"],
                summary="Tapas bars, sherry tastings and a cooking class.",
            ),
        ),
    )

    reply = await vector_sync.ask(
        subjects.SVC_VECTORS_SEARCH,
        SearchPlansRequest(user_id="user-a", q="Lisbon and Porto food trip"),
        SearchReply,
    )
    scores = {h.plan_id: h.score for h in reply.hits}
    assert reply.hits[0].plan_id == food
    assert scores[food] > scores[hiking]
    assert reply.hits[0].matched["destinations"] == ["lisbon", "porto"]

    reply = await vector_sync.ask(
        subjects.SVC_VECTORS_SEARCH,
        SearchPlansRequest(user_id="user-a", q="mountain walking holiday"),
        SearchReply,
    )
    assert reply.hits[0].plan_id == hiking

    reply = await vector_sync.ask(
        subjects.SVC_VECTORS_SIMILAR, SimilarPlansRequest(user_id="user-a", plan_id=food), SearchReply
    )
    assert [h.plan_id for h in reply.hits] == [food_too, hiking]  # itself excluded; food first


async def test_filters_narrow_the_results(
    vector_sync: Any, make_change: MakeChange, make_snapshot: MakeSnapshot
) -> None:
    lisbon, oslo, rome = new_id(), new_id(), new_id()
    await vector_sync.publish_and_wait(
        make_change(lisbon, 1, make_snapshot("Lisbon", start="2026-03-01", end="2026-03-05", budget="800")),
        make_change(
            oslo,
            1,
            make_snapshot(
                "Oslo",
                destinations=["Oslo"],
                countries=["Norway"],
                start="2026-06-01",
                end="2026-06-05",
                budget="2500",
                status=PlanStatus.PARTIAL,
            ),
        ),
        make_change(
            rome,
            1,
            make_snapshot(
                "Rome",
                destinations=["Rome"],
                countries=["Italy"],
                start="2026-09-01",
                end="2026-09-05",
                budget="4000",
            ),
        ),
    )

    async def found(**filters: Any) -> set[str]:
        reply = await vector_sync.ask(
            subjects.SVC_VECTORS_SEARCH,
            SearchPlansRequest(user_id="user-a", q="city trip", limit=50, filters=SearchFilters(**filters)),
            SearchReply,
        )
        assert reply.error is None
        return {h.plan_id for h in reply.hits}

    assert await found() == {lisbon, oslo, rome}
    assert await found(country="norway") == {oslo}  # case-insensitive
    assert await found(start_after=date(2026, 6, 1)) == {oslo, rome}
    assert await found(end_before=date(2026, 6, 5)) == {lisbon, oslo}
    assert await found(budget_min=Decimal(1000), budget_max=Decimal(3000)) == {oslo}
    assert await found(status=PlanStatus.COMPLETED) == {lisbon, rome}
    assert await found(country="Italy", budget_max=Decimal(1000)) == set()


async def test_an_invalid_request_is_a_422_reply(vector_sync: Any) -> None:
    response = await vector_sync.client.request(
        b'{"user_id": "a.b", "q": ""}', subjects.SVC_VECTORS_SEARCH, timeout=10
    )
    reply = SearchReply.model_validate_json(response.body)
    assert reply.error is not None and reply.error.status == 422
