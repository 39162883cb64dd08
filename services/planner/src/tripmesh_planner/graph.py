"""The plan run as a LangGraph state machine (ARCHITECTURE.md §3).

intake -> research -> options -> budget -(over, round < max)-> options (tighter constraints)
                                        -(still over)-> approval -(approve)-> planning
                                        -(within / unknown)-> planning -> finalize

Each agent stage is two nodes: `dispatch_<stage>` publishes the jobs (and is checkpointed
when it returns), `collect_<stage>` only calls `interrupt()` and is resumed once, with every
outcome of the round, by `engine.advance`. The split matters: LangGraph re-runs a node from
its start on resume, so nothing with a side effect may sit before an `interrupt()`.
Any node may still run twice after a crash; all of them are idempotent (deterministic ids,
first-write-wins rows). One thread per run: `thread_id = "<plan_id>:<run_id>"`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt
from tripmesh_contracts import subjects
from tripmesh_contracts.messages import AgentJob, PlanChanged
from tripmesh_contracts.plans import STAGE_AGENTS, EventKind, PlanRequest, PlanStatus, Stage

from tripmesh_planner import domain, metrics
from tripmesh_planner.domain import BudgetVerdict
from tripmesh_planner.events import RunRef
from tripmesh_planner.runtime import Runtime


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


def merge_nested(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(left or {})
    for key, value in (right or {}).items():
        out[key] = merge(out.get(key), value) if isinstance(value, dict) else value
    return out


class RunState(TypedDict, total=False):
    plan_id: str
    user_id: str
    run_id: str
    version: int
    parent_version: int | None
    parent_run_id: str | None
    parent_request: dict[str, Any] | None
    correlation_id: str
    request: dict[str, Any]
    feedback: str | None
    started_at: str
    round: int
    constraints: dict[str, Any]
    outcomes: Annotated[dict[str, dict[str, Any]], merge]
    budget_verdict: str
    accepted_overrun: bool
    ended: str | None
    end_reason: str | None
    timings: Annotated[dict[str, dict[str, Any]], merge_nested]
    llm_cap_usd: str | None
    """The plan's LLM spend cap for the ledger (AgentJob.llm_cap_usd). Runs checkpointed
    before it existed have no such key: read with state.get (None = the ledger's default)."""


Node = Callable[[RunState], Awaitable[dict[str, Any]]]
AGENT_STAGES = (Stage.RESEARCH, Stage.OPTIONS, Stage.BUDGET, Stage.PLANNING)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def build_graph(
    rt: Runtime,
    checkpointer: BaseCheckpointSaver[Any],
) -> CompiledStateGraph[Any, Any, Any, Any]:
    emit = rt.emitter.emit

    async def cancelled(state: RunState) -> dict[str, Any] | None:
        run = await rt.store.get_run(state["run_id"])
        if run is None or run.cancel_requested:
            reason = run.cancel_reason if run else "run not found"
            return {"ended": PlanStatus.CANCELLED.value, "end_reason": reason or "cancelled"}
        return None

    async def intake(state: RunState) -> dict[str, Any]:
        run = RunRef.of_state(state)
        if stop := await cancelled(state):
            return stop
        await emit(
            run,
            EventKind.ACCEPTED,
            status=PlanStatus.PROCESSING,
            percentage=0,
            data={"parent_version": state.get("parent_version")},
        )
        await emit(
            run,
            EventKind.STAGE_STARTED,
            status=PlanStatus.PROCESSING,
            key=("intake",),
            stage=Stage.INTAKE,
            percentage=domain.progress(Stage.INTAKE),
        )
        problems = domain.request_problems(PlanRequest.model_validate(state["request"]))
        if problems:
            return {"ended": PlanStatus.FAILED.value, "end_reason": "; ".join(problems)}
        return {"timings": {"intake": {"started_at": state["started_at"], "finished_at": now_iso()}}}

    def dispatch(stage: Stage) -> Node:
        async def node(state: RunState) -> dict[str, Any]:
            if stop := await cancelled(state):
                return stop
            run, round_ = RunRef.of_state(state), state.get("round", 0)
            request = PlanRequest.model_validate(state["request"])
            context = domain.agent_context(
                stage,
                state.get("outcomes", {}),
                feedback=state.get("feedback"),
                accepted_overrun=state.get("accepted_overrun", False),
            )
            now = datetime.now(UTC)
            jobs = [
                AgentJob(
                    id=domain.job_id(run.plan_id, run.run_id, stage, round_, agent, 1),
                    user_id=run.user_id,
                    plan_id=run.plan_id,
                    correlation_id=run.correlation_id,
                    run_id=run.run_id,
                    version=run.version,
                    agent=agent,
                    stage=stage,
                    round=round_,
                    attempt=1,
                    request=request,
                    context=context,
                    constraints=state.get("constraints", {}),
                    deadline=now + timedelta(seconds=rt.settings.deadline_for(agent)),
                    llm_cap_usd=state.get("llm_cap_usd"),
                )
                for agent in STAGE_AGENTS[stage]
            ]
            await emit(
                run,
                EventKind.STAGE_STARTED,
                status=PlanStatus.PROCESSING,
                key=(stage.value, str(round_)),
                stage=stage,
                percentage=domain.progress(stage),
                data={"round": round_},
            )
            await rt.publish_jobs(await rt.reuse_previous(jobs, state))
            return {"timings": {f"{stage.value}:{round_}": {"started_at": now.isoformat()}}}

        return node

    def collect(stage: Stage) -> Node:
        async def node(state: RunState) -> dict[str, Any]:
            round_ = state.get("round", 0)
            answer = interrupt({"kind": "agents", "stage": stage.value, "round": round_})
            if answer.get("cancelled") is not None:
                return {"ended": PlanStatus.CANCELLED.value, "end_reason": answer["cancelled"]}
            outcomes: dict[str, dict[str, Any]] = answer["outcomes"]
            update: dict[str, Any] = {
                "outcomes": outcomes,
                "timings": {f"{stage.value}:{round_}": {"finished_at": now_iso()}},
            }
            if stage is Stage.BUDGET:
                budget = outcomes.get("budget")
                verdict = domain.budget_verdict(budget, round_, rt.settings.max_budget_rounds)
                update["budget_verdict"] = verdict.value
                if verdict is BudgetVerdict.RETRY:
                    update["round"] = round_ + 1
                    update["constraints"] = domain.tighter_constraints(round_ + 1, domain.overrun_of(budget))
            return update

        return node

    async def request_approval(state: RunState) -> dict[str, Any]:
        if stop := await cancelled(state):
            return stop
        budget = state.get("outcomes", {}).get("budget")
        currency = state["request"].get("budget_currency", "USD")
        await emit(
            RunRef.of_state(state),
            EventKind.APPROVAL_REQUIRED,
            status=PlanStatus.AWAITING_APPROVAL,
            key=(str(state.get("round", 0)),),
            stage=Stage.BUDGET,
            percentage=domain.progress(Stage.BUDGET),
            message=f"over budget by {domain.overrun_of(budget):.2f} {currency}"
            " after the cheaper options: approve the overrun or reject the plan",
            data={"overrun": domain.overrun_of(budget), "budget": (budget or {}).get("output") or {}},
        )
        return {}

    async def await_approval(state: RunState) -> dict[str, Any]:
        answer = interrupt({"kind": "approval", "round": state.get("round", 0)})
        if answer.get("cancelled") is not None:
            return {"ended": PlanStatus.CANCELLED.value, "end_reason": answer["cancelled"]}
        approve = bool(answer.get("approve"))
        await emit(
            RunRef.of_state(state),
            EventKind.DECISION_RECORDED,
            status=PlanStatus.PROCESSING,
            key=(str(state.get("round", 0)),),
            stage=Stage.BUDGET,
            percentage=domain.progress(Stage.BUDGET),
            data={"approve": approve},
        )
        if not approve:
            return {"ended": PlanStatus.CANCELLED.value, "end_reason": "budget overrun rejected"}
        return {"accepted_overrun": True}

    async def finalize(state: RunState) -> dict[str, Any]:
        run = RunRef.of_state(state)
        request = PlanRequest.model_validate(state["request"])
        outcomes = state.get("outcomes", {})
        status, reason = domain.final_status(outcomes, state.get("ended"), state.get("end_reason"))
        plan_data = domain.build_plan_data(
            request, outcomes, status, accepted_overrun=state.get("accepted_overrun", False)
        )
        stored = await rt.store.finalize_run(
            plan_id=run.plan_id,
            run_id=run.run_id,
            user_id=run.user_id,
            version=run.version,
            parent_version=state.get("parent_version"),
            status=status,
            reason=reason,
            request=state["request"],
            plan_data=plan_data,
            agent_results=domain.agent_results(outcomes),
            feedback=state.get("feedback"),
            timings=merge_nested(
                state.get("timings"), {"run": {"started_at": state["started_at"], "finished_at": now_iso()}}
            ),
            started_at=datetime.fromisoformat(state["started_at"]),
        )
        status = PlanStatus(stored["status"])
        done = int(stored["completion_percentage"])
        await emit(
            run,
            EventKind.VERSION_CREATED,
            status=status,
            stage=Stage.FINALIZE,
            percentage=done,
            data={"version": run.version},
            move_plan=False,
        )
        changed = PlanChanged(
            id=domain.changed_id(run.plan_id, run.version),
            user_id=run.user_id,
            plan_id=run.plan_id,
            correlation_id=run.correlation_id,
            version=run.version,
            snapshot=domain.snapshot(request, status, stored["plan_data"]),
        )
        await rt.bus.publish(changed, subjects.plan_changed(run.plan_id))
        await emit(
            run,
            EventKind(status.value),
            status=status,
            stage=Stage.FINALIZE,
            percentage=done,
            message=stored["status_reason"],
            move_plan=False,
            data={"version": run.version, **domain.end_data(outcomes, status)},
        )
        seconds = await rt.store.mark_announced(run.run_id)
        if seconds is not None:  # once per run, even when finalize runs again after a crash
            metrics.RUNS_FINISHED.labels(status=status.value).inc()
            metrics.PLAN_SECONDS.labels(status=status.value).observe(max(seconds, 0.0))
        return {}

    graph = StateGraph(RunState)
    graph.add_node("intake", intake)
    for stage in AGENT_STAGES:
        dispatch_node: Any = dispatch(stage)  # typed as Node: add_node's overloads can't infer it
        collect_node: Any = collect(stage)
        graph.add_node(f"dispatch_{stage.value}", dispatch_node)
        graph.add_node(f"collect_{stage.value}", collect_node)
    graph.add_node("request_approval", request_approval)
    graph.add_node("await_approval", await_approval)
    graph.add_node("finalize", finalize)

    def then(target: str) -> Callable[[RunState], str]:
        def route(state: RunState) -> str:
            return "finalize" if state.get("ended") else target

        return route

    def after_budget(state: RunState) -> str:
        return domain.node_after_budget(state.get("ended"), state.get("budget_verdict"))

    def edge(source: str, target: str) -> None:
        graph.add_conditional_edges(source, then(target), [target, "finalize"])

    graph.add_edge(START, "intake")
    edge("intake", "dispatch_research")
    for stage in AGENT_STAGES:
        edge(f"dispatch_{stage.value}", f"collect_{stage.value}")
    edge("collect_research", "dispatch_options")
    edge("collect_options", "dispatch_budget")
    graph.add_conditional_edges(
        "collect_budget",
        after_budget,
        ["dispatch_options", "request_approval", "dispatch_planning", "finalize"],
    )
    edge("request_approval", "await_approval")
    edge("await_approval", "dispatch_planning")
    edge("collect_planning", "finalize")
    graph.add_edge("finalize", END)
    return graph.compile(checkpointer=checkpointer)
