"""The generated AsyncAPI document: complete (every contract message), internally consistent
(every $ref resolves), and its channel addresses are what the subject builders produce."""

from __future__ import annotations

import re
from typing import Any

from tripmesh_contracts import AgentName, EventKind, subjects
from tripmesh_contracts.schema import MESSAGE_TYPES
from tripmesh_gateway.asyncapi import channels, document

DOC = document("nats://user:pass@nats.internal:4222")


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref" and isinstance(v, str)] + [
            r for v in node.values() for r in refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = DOC
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_ref_resolves() -> None:
    found = refs(DOC)
    assert len(found) > 50
    for pointer in found:
        assert resolve(pointer) is not None, pointer


def test_every_bus_message_type_is_documented() -> None:
    documented = set(DOC["components"]["messages"])
    assert {m.__name__ for m in MESSAGE_TYPES} <= documented
    assert DOC["components"]["messages"]["PlanCreate"]["summary"] == "type plan.create.v1"


def test_addresses_match_the_subject_builders() -> None:
    by_key = {c.key: c.address for c in channels()}

    def matches(template: str, subject: str) -> bool:
        pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
        return re.fullmatch(re.sub(r"{[a-z_]+}", "[^.]+", pattern), subject) is not None

    assert matches(by_key["planEvents"], subjects.plan_event("u1", "p1", EventKind.COMPLETED))
    assert matches(by_key["agentJobs"], subjects.agent_job(AgentName.WEATHER))
    assert matches(by_key["agentResults"], subjects.agent_result("p1"))
    assert matches(by_key["planChanges"], subjects.plan_changed("p1"))
    assert matches(by_key["usage"], subjects.usage("u1"))
    assert matches(by_key["userCostAlerts"], subjects.cost_alert("u1"))
    assert by_key["planCommandCreate"] == subjects.PLAN_CMD_CREATE


def test_channels_carry_their_stream_and_the_gateway_operations() -> None:
    assert DOC["channels"]["planCommandCreate"]["x-jetstream-stream"]["name"] == "PLAN_COMMANDS"
    assert DOC["channels"]["planEvents"]["x-jetstream-stream"]["name"] == "PLAN_EVENTS"
    assert "x-jetstream-stream" not in DOC["channels"]["svcPlannerGet"]
    assert DOC["operations"]["gateway_send_planCommandCreate"]["action"] == "send"
    assert DOC["operations"]["gateway_receive_planEvents"]["action"] == "receive"
    assert DOC["channels"]["userCostAlerts"]["x-jetstream-stream"]["name"] == "PLAN_EVENTS"
    assert "gateway_send_svcLedgerBudgetSet" in DOC["operations"]
    assert "gateway_send_svcLedgerReserve" not in DOC["operations"]  # the runner's, not ours
    assert DOC["operations"]["gateway_send_svcLedgerSummary"]["reply"]["channel"] == {
        "$ref": "#/channels/svcLedgerSummaryReply"
    }


def test_server_has_no_credentials() -> None:
    assert DOC["servers"]["nats"]["host"] == "nats.internal:4222"
    assert DOC["asyncapi"] == "3.0.0"
