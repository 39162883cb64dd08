"""The planner's rules as pure functions: ids, progress, budget loop, outcome -> plan data.

Nothing here does I/O, so every rule is unit-tested without a broker or a database. An
"outcome" is the planner's record of one agent in one stage round:
`{"agent", "status": "ok"|"degraded", "output", "reason", "error_kind", "job_id", "attempt",
"model", "cost_usd", "duration_ms", ...}` (built by `executions.outcome_of`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tripmesh_contracts.ids import stable_id
from tripmesh_contracts.messages import PlanSnapshot
from tripmesh_contracts.plans import AgentName, PlanRequest, PlanStatus, Stage

from tripmesh_planner.itinerary import normalize_itinerary

OK = "ok"
DEGRADED = "degraded"
BUDGET_EXHAUSTED = "budget_exhausted"
"""`AgentResult.error_kind` when the ledger refused the agent's next LLM call (the plan's or
the user's LLM spend cap is reached): the section's reason, and the plan ends partial."""
MAX_TRIP_DAYS = 90

# --- deterministic ids ---------------------------------------------------------------------
# A node that re-runs after a crash must publish the very same message ids, so JetStream's
# duplicate window drops the copies; every id a step publishes is derived from the step.


def create_run_id(plan_id: str) -> str:
    return stable_id(plan_id, "run", "create")


def revision_run_id(plan_id: str, command_id: str) -> str:
    return stable_id(plan_id, "run", command_id)


def thread_id(plan_id: str, run_id: str) -> str:
    """One LangGraph thread per run: a revision starts a clean graph, never a reused one."""
    return f"{plan_id}:{run_id}"


def job_id(plan_id: str, run_id: str, stage: Stage, round_: int, agent: AgentName, attempt: int) -> str:
    return stable_id(plan_id, run_id, stage.value, str(round_), agent.value, str(attempt))


def event_id(run_id: str, kind: str, *key: str) -> str:
    return stable_id(run_id, "event", kind, *key)


def changed_id(plan_id: str, version: int) -> str:
    return stable_id(plan_id, str(version), "changed")


def deleted_id(plan_id: str) -> str:
    return stable_id(plan_id, "deleted")


# --- progress ------------------------------------------------------------------------------

STAGE_PROGRESS: dict[Stage, tuple[int, int]] = {
    Stage.INTAKE: (5, 5),
    Stage.RESEARCH: (20, 35),
    Stage.OPTIONS: (40, 65),
    Stage.BUDGET: (75, 75),
    Stage.PLANNING: (85, 95),
    Stage.FINALIZE: (100, 100),
}


def progress(stage: Stage, done: int = 0, total: int = 0) -> int:
    """Completion % when `done` of `total` agents of `stage` have an outcome."""
    low, high = STAGE_PROGRESS[stage]
    if total <= 0:
        return low
    return low + (high - low) * min(done, total) // total


# --- request checks ------------------------------------------------------------------------


def request_problems(request: PlanRequest) -> list[str]:
    """What intake refuses (the contract already checked types, dates order and sizes)."""
    problems = []
    if request.days > MAX_TRIP_DAYS:
        problems.append(f"trip of {request.days} days is longer than {MAX_TRIP_DAYS}")
    names = [p.name.casefold() for p in request.destinations]
    if len(set(names)) != len(names):
        problems.append("a destination is listed twice")
    return problems


# --- agent inputs --------------------------------------------------------------------------

STAGE_INPUTS: dict[Stage, tuple[AgentName, ...]] = {
    Stage.RESEARCH: (),
    Stage.OPTIONS: (AgentName.LOCATION, AgentName.WEATHER),
    Stage.BUDGET: (AgentName.LOCATION, AgentName.TRANSPORT, AgentName.ACCOMMODATION, AgentName.ACTIVITY),
    Stage.PLANNING: (
        AgentName.LOCATION,
        AgentName.WEATHER,
        AgentName.TRANSPORT,
        AgentName.ACCOMMODATION,
        AgentName.ACTIVITY,
        AgentName.BUDGET,
    ),
}


def is_ok(outcome: dict[str, Any] | None) -> bool:
    return bool(outcome) and outcome is not None and outcome.get("status") == OK


def agent_context(
    stage: Stage,
    outcomes: dict[str, dict[str, Any]],
    *,
    feedback: str | None = None,
    accepted_overrun: bool = False,
) -> dict[str, Any]:
    """`AgentJob.context`: outputs of the earlier agents this stage builds on (degraded ones
    are left out - an agent should not build on a guess), plus the user's feedback."""
    context: dict[str, Any] = {}
    for agent in STAGE_INPUTS.get(stage, ()):
        outcome = outcomes.get(agent.value)
        if is_ok(outcome) and outcome is not None:
            context[agent.value] = outcome.get("output") or {}
    if feedback:
        context["feedback"] = feedback
    if accepted_overrun and stage is Stage.PLANNING:
        context["budget_overrun_accepted"] = True
    return context


# --- revisions: what may be reused ---------------------------------------------------------

REUSE_FIELDS: dict[AgentName, tuple[str, ...]] = {
    AgentName.LOCATION: ("destinations", "origin", "start_date", "end_date", "traveler_count", "preferences"),
    AgentName.WEATHER: ("destinations", "start_date", "end_date"),
}
"""The request fields the research agents depend on (they get no earlier outputs). Options,
budget and planning read the budget and each other, so they always run again."""


def reusable_agents(
    stage: Stage,
    request: dict[str, Any],
    previous_request: dict[str, Any] | None,
    feedback: str | None,
) -> list[AgentName]:
    """Agents of a revision whose inputs did not change: their previous output is reused.
    Feedback goes to every agent, so a revision with feedback reuses nothing."""
    if previous_request is None or feedback or stage is not Stage.RESEARCH:
        return []
    return [
        agent
        for agent, fields in REUSE_FIELDS.items()
        if all(request.get(f) == previous_request.get(f) for f in fields)
    ]


# --- budget loop ---------------------------------------------------------------------------


class BudgetVerdict(StrEnum):
    WITHIN = "within"  # go on to planning
    RETRY = "retry"  # options again with tighter constraints
    APPROVAL = "approval"  # still over after the last round: ask the user
    UNKNOWN = "unknown"  # budget agent degraded: plan on, the section says why


def budget_verdict(outcome: dict[str, Any] | None, round_: int, max_rounds: int) -> BudgetVerdict:
    if not is_ok(outcome) or outcome is None:
        return BudgetVerdict.UNKNOWN
    output = outcome.get("output") or {}
    within = output.get("within_budget")
    if not isinstance(within, bool):
        return BudgetVerdict.UNKNOWN
    if within:
        return BudgetVerdict.WITHIN
    return BudgetVerdict.RETRY if round_ < max_rounds else BudgetVerdict.APPROVAL


def node_after_budget(ended: str | None, verdict: str | None) -> str:
    """The graph's next node once the budget stage answered (graph.py's node names)."""
    if ended:
        return "finalize"
    if verdict == BudgetVerdict.RETRY:
        return "dispatch_options"
    if verdict == BudgetVerdict.APPROVAL:
        return "request_approval"
    return "dispatch_planning"


def overrun_of(outcome: dict[str, Any] | None) -> float:
    output = (outcome or {}).get("output") or {}
    try:
        return max(float(output.get("overrun") or 0), 0.0)
    except (TypeError, ValueError):
        return 0.0


def tighter_constraints(next_round: int, overrun: float) -> dict[str, Any]:
    """Constraints for options round `next_round` (>= 1): cheaper tier, fewer paid extras."""
    return {
        "tier": "budget",
        "max_paid_activities": 1 if next_round == 1 else 0,
        "budget_round": next_round,
        "reduce_by": round(overrun, 2),
    }


# --- the end of a run ----------------------------------------------------------------------

SECTION_AGENTS: tuple[AgentName, ...] = STAGE_INPUTS[Stage.PLANNING]


def is_budget_exhausted(outcome: dict[str, Any] | None) -> bool:
    return bool(outcome) and outcome is not None and outcome.get("error_kind") == BUDGET_EXHAUSTED


def budget_exhausted_agents(outcomes: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(agent for agent, outcome in outcomes.items() if is_budget_exhausted(outcome))


def final_status(
    outcomes: dict[str, dict[str, Any]],
    ended: str | None = None,
    end_reason: str | None = None,
) -> tuple[PlanStatus, str | None]:
    """completed / partial (some section degraded) / failed (planning failed) / cancelled.

    A run stopped by the LLM budget ends partial - whatever ran is kept, even when the
    planning agent itself was refused (the itinerary is then the planner's day skeleton) -
    with a reason that says so: spending more is the user's call, not a failure to retry."""
    if ended == PlanStatus.CANCELLED:
        return PlanStatus.CANCELLED, end_reason or "cancelled"
    if ended == PlanStatus.FAILED:
        return PlanStatus.FAILED, end_reason or "failed"
    exhausted = budget_exhausted_agents(outcomes)
    if exhausted:
        degraded = [a.value for a in SECTION_AGENTS if not is_ok(outcomes.get(a.value))]
        reason = f"LLM budget exhausted ({', '.join(exhausted)} not run to the end)"
        if degraded:
            reason += "; degraded sections: " + ", ".join(degraded)
        return PlanStatus.PARTIAL, reason
    planning = outcomes.get(AgentName.PLANNING.value)
    if not is_ok(planning):
        reason = (planning or {}).get("reason") or "no itinerary"
        return PlanStatus.FAILED, f"planning agent failed: {reason}"
    degraded = [a.value for a in SECTION_AGENTS if not is_ok(outcomes.get(a.value))]
    if degraded:
        return PlanStatus.PARTIAL, "degraded sections: " + ", ".join(degraded)
    return PlanStatus.COMPLETED, None


def build_sections(outcomes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for agent in SECTION_AGENTS:
        outcome = outcomes.get(agent.value)
        if outcome is None:
            sections[agent.value] = {"status": DEGRADED, "reason": "not run"}
        elif is_ok(outcome):
            sections[agent.value] = {**(outcome.get("output") or {}), "status": OK}
        elif is_budget_exhausted(outcome):
            detail = outcome.get("reason")  # the ledger's: plan_cap_reached, daily_cap_reached...
            sections[agent.value] = {"status": DEGRADED, "reason": BUDGET_EXHAUSTED, "detail": detail}
        else:
            sections[agent.value] = {"status": DEGRADED, "reason": outcome.get("reason") or "failed"}
    return sections


def build_plan_data(
    request: PlanRequest,
    outcomes: dict[str, dict[str, Any]],
    status: PlanStatus,
    *,
    accepted_overrun: bool = False,
) -> dict[str, Any]:
    planning = outcomes.get(AgentName.PLANNING.value)
    written = (planning or {}).get("output") or {} if is_ok(planning) else {}
    has_plan = status in (PlanStatus.COMPLETED, PlanStatus.PARTIAL)
    # the agent-runner's planning schema names the list `days`; `itinerary` is accepted too
    raw_days = written.get("itinerary", written.get("days"))
    itinerary = normalize_itinerary(raw_days, request) if has_plan else []
    budget_outcome = outcomes.get(AgentName.BUDGET.value)
    budget = dict((budget_outcome or {}).get("output") or {}) if is_ok(budget_outcome) else {}
    budget["accepted_overrun"] = accepted_overrun
    summary = written.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        summary = default_summary(request, itinerary) if has_plan else ""
    return {
        "itinerary": itinerary,
        "sections": build_sections(outcomes),
        "summary": summary,
        "budget": budget,
    }


def end_data(outcomes: dict[str, dict[str, Any]], status: PlanStatus) -> dict[str, Any]:
    """What the terminal event adds about why a run ended partial (the message says it too)."""
    if status is not PlanStatus.PARTIAL:
        return {}
    data: dict[str, Any] = {
        "degraded": [a.value for a in SECTION_AGENTS if not is_ok(outcomes.get(a.value))],
    }
    exhausted = budget_exhausted_agents(outcomes)
    if exhausted:
        data["reason"] = BUDGET_EXHAUSTED
        data["budget_exhausted"] = exhausted
    return data


def default_summary(request: PlanRequest, itinerary: list[dict[str, Any]]) -> str:
    places = ", ".join(p.name for p in request.destinations)
    return f"{request.title}: {len(itinerary)} days in {places}."


def agent_results(outcomes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-agent bookkeeping stored with a version (no outputs: those are the sections)."""
    keys = (
        "status",
        "reason",
        "error_kind",
        "job_id",
        "attempt",
        "model",
        "cost_usd",
        "duration_ms",
        "prompt_tokens",
        "completion_tokens",
        "round",
    )
    return {agent: {k: o.get(k) for k in keys if k in o} for agent, o in sorted(outcomes.items())}


def snapshot(request: PlanRequest, status: PlanStatus, plan_data: dict[str, Any]) -> PlanSnapshot:
    return PlanSnapshot(
        title=request.title,
        description=request.description,
        destinations=[p.name for p in request.destinations],
        countries=sorted({p.country for p in request.destinations}),
        start_date=request.start_date.isoformat(),
        end_date=request.end_date.isoformat(),
        budget_total=request.budget_total,
        budget_currency=request.budget_currency,
        status=status,
        preferences=request.preferences,
        summary=str(plan_data.get("summary") or ""),
    )
