"""vector-sync's own Prometheus metrics (the shared consumer metrics live in tripmesh_kit)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LAG_SECONDS = Histogram(
    "tripmesh_vector_sync_lag_seconds",
    "From a plan change's occurred_at to its point written (searchable)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
EMBED_SECONDS_PER_TEXT = Histogram(
    "tripmesh_vector_sync_embed_seconds_per_text",
    "Embedding time per text (one call's time divided by its number of texts)",
    ["embedder"],
    buckets=(0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
)
CHANGES = Counter(
    "tripmesh_vector_sync_changes_total",
    "Plan changes applied, by outcome (written, deleted, stale)",
    ["outcome"],
)
SEARCHES = Counter(
    "tripmesh_vector_sync_searches_total",
    "Search requests answered, by kind and outcome",
    ["kind", "outcome"],
)
