"""A plan from command to stored version, against real NATS and Postgres."""

from __future__ import annotations

import pytest
from tripmesh_contracts import subjects
from tripmesh_contracts.plans import AgentName, EventKind, PlanStatus, Stage
from tripmesh_contracts.rpc import (
    PlanGetReply,
    PlanGetRequest,
    PlanListReply,
    PlanListRequest,
    PlanVersionReply,
    PlanVersionRequest,
    PlanVersionsReply,
    PlanVersionsRequest,
)

from .conftest import Harness

pytestmark = pytest.mark.integration


async def test_plan_runs_all_stages_in_order_and_stores_version_1(harness: Harness) -> None:
    cmd = await harness.create()
    view = await harness.wait_status(cmd, PlanStatus.COMPLETED, PlanStatus.PARTIAL, PlanStatus.FAILED)
    assert view.status is PlanStatus.COMPLETED, view.status_reason
    assert view.version == 1 and view.completion_percentage == 100

    events = await harness.events(cmd)
    stages = [e.stage for e in events if e.kind is EventKind.STAGE_STARTED]
    assert stages == [Stage.INTAKE, Stage.RESEARCH, Stage.OPTIONS, Stage.BUDGET, Stage.PLANNING]
    kinds = [e.kind for e in events]
    assert kinds[0] is EventKind.ACCEPTED
    assert kinds[-2:] == [EventKind.VERSION_CREATED, EventKind.COMPLETED]
    assert len({e.id for e in events}) == len(events)
    assert kinds.count(EventKind.AGENT_COMPLETED) == len(AgentName)
    percentages = [e.completion_percentage for e in events]
    assert percentages == sorted(percentages) and percentages[-1] == 100

    # the agents of a stage were fed with what the earlier stage found
    transport = harness.agents.jobs_of(cmd.plan_id, AgentName.TRANSPORT)[0]
    assert set(transport.context) == {"location", "weather"}
    planning = harness.agents.jobs_of(cmd.plan_id, AgentName.PLANNING)[0]
    assert {a.value for a in AgentName if a is not AgentName.PLANNING} <= set(planning.context)
    assert len({j.id for j in harness.agents.jobs_of(cmd.plan_id)}) == len(AgentName)

    data = view.plan_data
    assert [d["day_number"] for d in data["itinerary"]] == [1, 2, 3, 4]
    assert data["itinerary"][3]["filled"] is True and data["itinerary"][3]["destination"] == "Porto"
    assert {s["status"] for s in data["sections"].values()} == {"ok"}
    assert data["summary"] == "Lisbon then Porto"
    assert data["budget"]["within_budget"] is True

    changed = await harness.changed(cmd.plan_id)
    assert changed is not None and changed.version == 1 and not changed.deleted
    assert changed.snapshot is not None and changed.snapshot.status is PlanStatus.COMPLETED
    assert changed.snapshot.destinations == ["Lisbon", "Porto"]


async def test_reads_over_request_reply_are_scoped_to_the_owner(harness: Harness) -> None:
    cmd = await harness.create()
    await harness.wait_status(cmd, PlanStatus.COMPLETED)
    other = await harness.create(user_id=cmd.user_id)
    await harness.wait_status(other, PlanStatus.COMPLETED)
    broker = harness.planner.broker

    async def ask(req, subject, reply_model):  # type: ignore[no-untyped-def]
        msg = await broker.request(req.to_bytes(), subject, timeout=5)
        return reply_model.model_validate_json(msg.body)

    got = await ask(
        PlanGetRequest(user_id=cmd.user_id, plan_id=cmd.plan_id), subjects.SVC_PLANNER_GET, PlanGetReply
    )
    assert got.error is None and got.plan.id == cmd.plan_id and got.plan.destinations == ["Lisbon", "Porto"]
    stranger = await ask(
        PlanGetRequest(user_id="someone-else", plan_id=cmd.plan_id), subjects.SVC_PLANNER_GET, PlanGetReply
    )
    assert stranger.plan is None and stranger.error.status == 404

    listed = await ask(
        PlanListRequest(user_id=cmd.user_id, limit=1), subjects.SVC_PLANNER_LIST, PlanListReply
    )
    assert listed.total == 2 and [p.id for p in listed.items] == [other.plan_id]
    page2 = await ask(
        PlanListRequest(user_id=cmd.user_id, limit=1, offset=1), subjects.SVC_PLANNER_LIST, PlanListReply
    )
    assert [p.id for p in page2.items] == [cmd.plan_id]
    nobody = await ask(PlanListRequest(user_id="someone-else"), subjects.SVC_PLANNER_LIST, PlanListReply)
    assert nobody.total == 0 and nobody.items == []

    versions = await ask(
        PlanVersionsRequest(user_id=cmd.user_id, plan_id=cmd.plan_id),
        subjects.SVC_PLANNER_VERSIONS,
        PlanVersionsReply,
    )
    assert [v.version for v in versions.items] == [1] and versions.items[0].parent_version is None
    one = await ask(
        PlanVersionRequest(user_id=cmd.user_id, plan_id=cmd.plan_id, version=1),
        subjects.SVC_PLANNER_VERSION,
        PlanVersionReply,
    )
    assert one.version is not None and one.version.plan_data["itinerary"]
    assert one.version.agent_results["planning"]["status"] == "ok"
    missing = await ask(
        PlanVersionRequest(user_id=cmd.user_id, plan_id=cmd.plan_id, version=7),
        subjects.SVC_PLANNER_VERSION,
        PlanVersionReply,
    )
    assert missing.error.status == 404
    invalid = await broker.request(b'{"user_id": "a.b"}', subjects.SVC_PLANNER_GET, timeout=5)
    assert PlanGetReply.model_validate_json(invalid.body).error.status == 422
