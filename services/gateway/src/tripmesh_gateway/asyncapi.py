"""An AsyncAPI 3.0 document for the bus, generated from libs/contracts (never hand-written).

Channels come from the subject constants and builders, each annotated with the JetStream
stream that captures it; payloads are each model's `model_json_schema()`, with their `$defs`
hoisted into `components.schemas`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from tripmesh_contracts import EventKind, messages, rpc, streams, subjects
from tripmesh_contracts.plans import AgentName

REF_TEMPLATE = "#/components/schemas/{model}"
JSON = "application/json"


@dataclass(frozen=True)
class Channel:
    key: str
    address: str
    models: tuple[type[BaseModel], ...]
    description: str
    gateway_action: str | None = None
    """send / receive from the gateway's point of view; None: other services' traffic."""
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    reply: type[BaseModel] | None = None
    """Request/reply (svc.*): the reply's model; the reply goes to the caller's inbox."""


def _param(description: str, enum: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if enum:
        out["enum"] = enum
    return out


USER = _param("user id (a safe subject token)")
PLAN = _param("plan id (a safe subject token)")

COMMANDS: tuple[tuple[str, str, type[BaseModel]], ...] = (
    ("planCommandCreate", subjects.PLAN_CMD_CREATE, messages.PlanCreate),
    ("planCommandRevise", subjects.PLAN_CMD_REVISE, messages.PlanRevise),
    ("planCommandDecide", subjects.PLAN_CMD_DECIDE, messages.PlanDecide),
    ("planCommandCancel", subjects.PLAN_CMD_CANCEL, messages.PlanCancel),
    ("planCommandDelete", subjects.PLAN_CMD_DELETE, messages.PlanDelete),
)
SERVICES: tuple[tuple[str, str, type[BaseModel], type[BaseModel]], ...] = (
    ("svcPlannerGet", subjects.SVC_PLANNER_GET, rpc.PlanGetRequest, rpc.PlanGetReply),
    ("svcPlannerList", subjects.SVC_PLANNER_LIST, rpc.PlanListRequest, rpc.PlanListReply),
    ("svcPlannerVersions", subjects.SVC_PLANNER_VERSIONS, rpc.PlanVersionsRequest, rpc.PlanVersionsReply),
    ("svcPlannerVersion", subjects.SVC_PLANNER_VERSION, rpc.PlanVersionRequest, rpc.PlanVersionReply),
    ("svcLedgerSummary", subjects.SVC_LEDGER_SUMMARY, rpc.CostSummaryRequest, rpc.CostSummaryReply),
    ("svcLedgerPlanCosts", subjects.SVC_LEDGER_PLAN_COSTS, rpc.PlanCostsRequest, rpc.PlanCostsReply),
    ("svcLedgerBudgetCheck", subjects.SVC_LEDGER_BUDGET_CHECK, rpc.BudgetCheckRequest, rpc.BudgetCheckReply),
    ("svcLedgerBudgetGet", subjects.SVC_LEDGER_BUDGET_GET, rpc.BudgetGetRequest, rpc.BudgetView),
    ("svcLedgerBudgetSet", subjects.SVC_LEDGER_BUDGET_SET, rpc.BudgetSetRequest, rpc.BudgetView),
    ("svcLedgerAlerts", subjects.SVC_LEDGER_ALERTS, rpc.AlertsRequest, rpc.AlertsReply),
    ("svcVectorsSimilar", subjects.SVC_VECTORS_SIMILAR, rpc.SimilarPlansRequest, rpc.SearchReply),
    ("svcVectorsSearch", subjects.SVC_VECTORS_SEARCH, rpc.SearchPlansRequest, rpc.SearchReply),
)


def channels() -> list[Channel]:
    out = [
        Channel(key, address, (model,), f"{model.__name__} commands to the planner", "send")
        for key, address, model in COMMANDS
    ]
    out += [
        Channel(
            "agentJobs",
            "agents.job.{agent}",
            (messages.AgentJob,),
            "Jobs for one agent type (one durable per agent, shared by runner replicas)",
            params={"agent": _param("agent type", [a.value for a in AgentName])},
        ),
        Channel(
            "agentResults",
            "agents.result.{plan_id}",
            (messages.AgentResult,),
            "Agent results back to the planner",
            params={"plan_id": PLAN},
        ),
        Channel(
            "planEvents",
            "plans.evt.{user_id}.{plan_id}.{kind}",
            (messages.PlanEvent,),
            "A plan's progress; replayed to clients as SSE",
            "receive",
            params={
                "user_id": USER,
                "plan_id": PLAN,
                "kind": _param("event kind", [k.value for k in EventKind]),
            },
        ),
        Channel(
            "planChanges",
            "plans.changed.{plan_id}",
            (messages.PlanChanged,),
            "Latest version of each plan, for read models",
            params={"plan_id": PLAN},
        ),
        Channel(
            "usage",
            "usage.llm.{user_id}",
            (messages.UsageEvent,),
            "One LLM call's usage and cost",
            params={"user_id": USER},
        ),
    ]
    out += [
        Channel(key, address, (request,), f"Request/reply: {address}", "send", reply=reply)
        for key, address, request, reply in SERVICES
    ]
    out += [
        Channel(
            "userCostAlerts",
            "users.evt.{user_id}." + subjects.COST_ALERT_KIND,
            (messages.CostAlert,),
            "A user's spend crossed a threshold of a cap; replayed to clients as SSE (GET /events)",
            "receive",
            params={"user_id": USER},
        ),
        # The runner's traffic with the ledger (each LLM call's maximum held, then settled).
        Channel(
            "svcLedgerReserve",
            subjects.SVC_LEDGER_RESERVE,
            (rpc.ReserveRequest,),
            f"Request/reply: {subjects.SVC_LEDGER_RESERVE}",
            reply=rpc.ReserveReply,
        ),
        Channel(
            "svcLedgerSettle",
            subjects.SVC_LEDGER_SETTLE,
            (rpc.SettleRequest,),
            f"Request/reply: {subjects.SVC_LEDGER_SETTLE}",
            reply=rpc.SettleReply,
        ),
    ]
    return out


def stream_of(address: str) -> streams.StreamSpec | None:
    concrete = address.replace("{", "x").replace("}", "")
    for spec in streams.ALL_STREAMS:
        for pattern in spec.subjects:
            if pattern.endswith(".>") and concrete.startswith(pattern[:-1]):
                return spec
    return None


def _hoist(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    """Put the model's schema and its $defs into `schemas`; return a $ref to it."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _message(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": model.__name__,
        "title": model.__name__,
        "contentType": JSON,
        "payload": _hoist(model, schemas),
    }
    msg_type = getattr(model, "TYPE", "")
    if msg_type:
        message["summary"] = f"type {msg_type}"
        message["headers"] = {
            "type": "object",
            "properties": {
                "Nats-Msg-Id": {
                    "type": "string",
                    "description": "equals the envelope id; JetStream de-duplicates on it",
                }
            },
        }
    return message


def document(server_url: str = "nats://127.0.0.1:4222") -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    components_messages: dict[str, Any] = {}
    doc_channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    host = server_url.split("://", 1)[-1].split("@")[-1]  # never publish credentials
    for ch in channels():
        models = (*ch.models, ch.reply) if ch.reply else ch.models
        for model in models:
            components_messages.setdefault(model.__name__, _message(model, schemas))
        channel: dict[str, Any] = {
            "address": ch.address,
            "description": ch.description,
            "messages": {m.__name__: {"$ref": f"#/components/messages/{m.__name__}"} for m in ch.models},
        }
        if ch.params:
            channel["parameters"] = ch.params
        spec = stream_of(ch.address)
        if spec is not None:
            channel["x-jetstream-stream"] = {
                "name": spec.name,
                "retention": spec.retention.value,
                "max_age_seconds": spec.max_age_seconds,
            }
        doc_channels[ch.key] = channel
        if ch.reply is not None:
            doc_channels[ch.key + "Reply"] = {
                "address": None,
                "description": f"Reply to {ch.address} (the requester's inbox)",
                "messages": {ch.reply.__name__: {"$ref": f"#/components/messages/{ch.reply.__name__}"}},
            }
        if ch.gateway_action is not None:
            operation: dict[str, Any] = {
                "action": ch.gateway_action,
                "channel": {"$ref": f"#/channels/{ch.key}"},
                "messages": [{"$ref": f"#/channels/{ch.key}/messages/{m.__name__}"} for m in ch.models],
            }
            if ch.reply is not None:
                operation["reply"] = {
                    "channel": {"$ref": f"#/channels/{ch.key}Reply"},
                    "messages": [{"$ref": f"#/channels/{ch.key}Reply/messages/{ch.reply.__name__}"}],
                }
            operations[f"gateway_{ch.gateway_action}_{ch.key}"] = operation
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "tripmesh bus",
            "version": "1.0.0",
            "description": "NATS JetStream subjects and messages of tripmesh, generated from "
            "libs/contracts. Operations are the gateway's; other channels show the rest of the bus.",
        },
        "defaultContentType": JSON,
        "servers": {"nats": {"host": host, "protocol": "nats", "description": "NATS with JetStream"}},
        "channels": doc_channels,
        "operations": operations,
        "components": {"messages": components_messages, "schemas": schemas},
    }
