"""Subject names: every subject is built here, from validated tokens, never by f-string elsewhere."""

from __future__ import annotations

from tripmesh_contracts.ids import check_token
from tripmesh_contracts.plans import AgentName, EventKind

# plan commands (gateway -> planner)
PLAN_CMD_PREFIX = "plans.cmd"
PLAN_CMD_ALL = "plans.cmd.>"
PLAN_CMD_CREATE = "plans.cmd.create"
PLAN_CMD_REVISE = "plans.cmd.revise"
PLAN_CMD_DECIDE = "plans.cmd.decide"
PLAN_CMD_CANCEL = "plans.cmd.cancel"
PLAN_CMD_DELETE = "plans.cmd.delete"

AGENT_JOB_ALL = "agents.job.>"
AGENT_RESULT_ALL = "agents.result.>"
PLAN_EVT_ALL = "plans.evt.>"
PLAN_CHANGED_ALL = "plans.changed.>"
USAGE_ALL = "usage.llm.>"
USER_EVT_ALL = "users.evt.>"
DLQ_ALL = "dlq.>"

# request/reply services (core NATS, not JetStream)
SVC_LEDGER_SUMMARY = "svc.ledger.summary"
SVC_LEDGER_BUDGET_CHECK = "svc.ledger.budget.check"
SVC_LEDGER_BUDGET_GET = "svc.ledger.budget.get"
SVC_LEDGER_BUDGET_SET = "svc.ledger.budget.set"
SVC_LEDGER_RESERVE = "svc.ledger.reserve"
SVC_LEDGER_SETTLE = "svc.ledger.settle"
SVC_LEDGER_PLAN_COSTS = "svc.ledger.plan_costs"
SVC_LEDGER_ALERTS = "svc.ledger.alerts"
SVC_VECTORS_SIMILAR = "svc.vectors.similar"
SVC_VECTORS_SEARCH = "svc.vectors.search"
SVC_PLANNER_GET = "svc.planner.get"
SVC_PLANNER_LIST = "svc.planner.list"
SVC_PLANNER_VERSIONS = "svc.planner.versions"
SVC_PLANNER_VERSION = "svc.planner.version"


def agent_job(agent: AgentName | str) -> str:
    return f"agents.job.{AgentName(agent).value}"


def agent_result(plan_id: str) -> str:
    return f"agents.result.{check_token(plan_id)}"


def plan_event(user_id: str, plan_id: str, kind: EventKind | str) -> str:
    return f"plans.evt.{check_token(user_id)}.{check_token(plan_id)}.{EventKind(kind).value}"


def plan_events_filter(user_id: str, plan_id: str | None = None) -> str:
    """Filter for one user's events (all plans) or one plan's events."""
    if plan_id is None:
        return f"plans.evt.{check_token(user_id)}.>"
    return f"plans.evt.{check_token(user_id)}.{check_token(plan_id)}.>"


def plan_changed(plan_id: str) -> str:
    return f"plans.changed.{check_token(plan_id)}"


def usage(user_id: str) -> str:
    return f"usage.llm.{check_token(user_id)}"


COST_ALERT_KIND = "cost_alert"


def cost_alert(user_id: str) -> str:
    return user_event(user_id, COST_ALERT_KIND)


def user_event(user_id: str, kind: str) -> str:
    return f"users.evt.{check_token(user_id)}.{check_token(kind)}"


def dlq(subject: str) -> str:
    """Dead-letter subject for a message that arrived on `subject`."""
    return f"dlq.{subject}"


def parse_plan_event(subject: str) -> tuple[str, str, str]:
    """(user_id, plan_id, kind) of a `plans.evt.<user>.<plan>.<kind>` subject."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[:2] != ["plans", "evt"]:
        raise ValueError(f"not a plan event subject: {subject!r}")
    return parts[2], parts[3], parts[4]
