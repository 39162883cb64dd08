"""Prometheus metrics shared by every service. Names start with `tripmesh_`; labels are
bounded (consumer durable names, outcomes) - never a plan or user id."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES_HANDLED = Counter(
    "tripmesh_messages_handled_total",
    "Bus messages handled, by consumer and outcome",
    ["consumer", "outcome"],
)
MESSAGES_REDELIVERED = Counter(
    "tripmesh_messages_redelivered_total", "Bus messages seen again (delivery > 1)", ["consumer"]
)
MESSAGES_DEAD_LETTERED = Counter(
    "tripmesh_messages_dead_lettered_total", "Messages copied to the DLQ", ["consumer", "kind"]
)
HANDLER_SECONDS = Histogram(
    "tripmesh_handler_seconds",
    "Time spent handling one bus message",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STORE_OUTAGE_RETRIES = Counter(
    "tripmesh_store_outage_retries_total",
    "Retries while a store (Postgres, or the ledger behind a reserve) could not answer",
)
BUDGET_REFUSALS = Counter(
    "tripmesh_budget_refusals_total",
    "Work refused because a spend cap is reached: `gateway` (a plan answered 402) or `runner`"
    " (the ledger denied an LLM call's reservation)",
    ["where"],
)
for _where in ("gateway", "runner"):
    BUDGET_REFUSALS.labels(where=_where)  # both series exist (at 0) before the first refusal
