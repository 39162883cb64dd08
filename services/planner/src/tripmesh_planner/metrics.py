"""Planner metrics (`tripmesh_planner_*`); labels are bounded - never a plan or user id."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

GRAPH_STEPS = Counter(
    "tripmesh_planner_graph_invocations_total",
    "Graph invocations by what triggered them (start, resume, continue)",
    ["kind"],
)
RUNS_FINISHED = Counter(
    "tripmesh_planner_runs_finished_total",
    "Plan runs finished (a create or a revision), by final status: the plans-by-outcome count",
    ["status"],
)
PLAN_SECONDS = Histogram(
    "tripmesh_planner_plan_seconds",
    "From the planner accepting a run (the create or revise command) to its terminal status",
    ["status"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
AGENT_OUTCOMES = Counter(
    "tripmesh_planner_agent_outcomes_total",
    "Agent job outcomes (completed, failed, retry, ignored)",
    ["agent", "outcome"],
)
JOBS_EXPIRED = Counter(
    "tripmesh_planner_jobs_expired_total",
    "Agent jobs past their deadline, by what followed",
    ["agent", "outcome"],
)
LOCK_WAIT_SECONDS = Histogram(
    "tripmesh_planner_lock_wait_seconds",
    "Time waiting for a plan's advisory lock",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60),
)
