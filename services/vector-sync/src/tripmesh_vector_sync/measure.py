"""`python -m tripmesh_vector_sync measure-embed`: time the configured embedder on plan texts.

Builds N realistic plan texts (the same `plan_text` the sync path embeds), then times
(a) one `embed([text])` call per plan, as the live consumer does for a batch of one, and
(b) one `embed(texts)` call for all of them, as a full batch. Reports load time and
per-text medians. A measurement for operators comparing embedders, not a test.
"""

from __future__ import annotations

import statistics
import time
from decimal import Decimal
from itertools import cycle, islice
from typing import Any

from tripmesh_contracts.messages import PlanSnapshot
from tripmesh_contracts.plans import PlanStatus

from tripmesh_vector_sync.documents import plan_text
from tripmesh_vector_sync.embedders import build_embedder
from tripmesh_vector_sync.settings import Settings

_TRIPS = [
    (
        "Lisbon and Porto food week",
        ["Lisbon", "Porto"],
        ["Portugal"],
        "Pastel de nata tastings, seafood in Matosinhos, port cellars in Gaia.",
        {"food": ["seafood"]},
    ),
    (
        "Fjords and glaciers hike",
        ["Bergen", "Tromsø"],
        ["Norway"],
        "Trolltunga trail, fjord ferry, glacier walk near Tromsø.",
        {"pace": "active"},
    ),
    (
        "Kyoto temples in autumn",
        ["Kyoto", "Osaka"],
        ["Japan"],
        "Fushimi Inari at dawn, maple leaves in Arashiyama, street food in Dotonbori.",
        {},
    ),
    (
        "Family beach break",
        ["Málaga"],
        ["Spain"],
        "Beach days, Alcazaba visit, tapas evenings.",
        {"travelers": "family", "kids": True},
    ),
    (
        "Berlin museums and nightlife",
        ["Berlin"],
        ["Germany"],
        "Museum Island, Berghain queue, street art walk in Kreuzberg.",
        {"nightlife": True},
    ),
]


def sample_snapshots(n: int) -> list[PlanSnapshot]:
    out: list[PlanSnapshot] = []
    for i, (title, places, countries, summary, prefs) in enumerate(islice(cycle(_TRIPS), n)):
        out.append(
            PlanSnapshot(
                title=f"{title} #{i}",
                description="A trip planned by tripmesh.",
                destinations=places,
                countries=countries,
                start_date="2026-05-01",
                end_date="2026-05-08",
                budget_total=Decimal(1500 + i),
                budget_currency="EUR",
                status=PlanStatus.COMPLETED,
                preferences=prefs,
                summary=summary,
            )
        )
    return out


def measure_embed(settings: Settings, n: int = 500) -> dict[str, Any]:
    started = time.perf_counter()
    embedder = build_embedder(settings)
    _ = embedder.dim
    load = time.perf_counter() - started
    texts = [plan_text(s) for s in sample_snapshots(n)]
    embedder.embed(texts[:5])  # warm caches so the first timed call is not an outlier
    singles: list[float] = []
    for text in texts:
        t0 = time.perf_counter()
        embedder.embed([text])
        singles.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    embedder.embed(texts)
    batch = time.perf_counter() - t0
    return {
        "embedder": embedder.name,
        "dim": embedder.dim,
        "texts": n,
        "mean_text_chars": round(statistics.mean(len(t) for t in texts)),
        "load_seconds": round(load, 3),
        "single_call_ms_median": round(statistics.median(singles) * 1000, 4),
        "single_call_ms_p95": round(sorted(singles)[int(0.95 * (n - 1))] * 1000, 4),
        "batch_ms_per_text": round(batch / n * 1000, 4),
    }
