"""`svc.planner.*` reads over request/reply: get, list, versions, version.

Every query is scoped to the asking user; a plan of another user is answered exactly like a
missing one (404), so ids cannot be probed.
"""

from __future__ import annotations

from typing import Any

from tripmesh_contracts.rpc import (
    PlanGetReply,
    PlanGetRequest,
    PlanListReply,
    PlanListRequest,
    PlanVersionReply,
    PlanVersionRequest,
    PlanVersionsReply,
    PlanVersionsRequest,
    PlanVersionView,
    PlanView,
    RpcError,
)

from tripmesh_planner.pgbase import SchemaStore

NOT_FOUND = RpcError(status=404, title="Plan not found")

PLAN_SELECT = (
    "SELECT p.*, v.plan_data, v.agent_results FROM {s}.plans p"
    " LEFT JOIN {s}.plan_versions v ON v.plan_id = p.plan_id AND v.version = p.current_version"
)


def plan_view(row: dict[str, Any]) -> PlanView:
    request = row["request"]
    origin = request.get("origin")
    return PlanView(
        id=row["plan_id"],
        user_id=row["user_id"],
        title=request["title"],
        description=request.get("description"),
        destinations=[d["name"] for d in request.get("destinations", [])],
        origin=origin["name"] if origin else None,
        start_date=request["start_date"],
        end_date=request["end_date"],
        budget_total=request["budget_total"],
        budget_currency=request.get("budget_currency", "USD"),
        traveler_count=request.get("traveler_count", 1),
        preferences=request.get("preferences") or {},
        constraints=request.get("constraints") or {},
        status=row["status"],
        version=max(row["current_version"], row["last_version"], 1),
        completion_percentage=row["completion_percentage"],
        plan_data=row["plan_data"] or {},
        agent_results=row["agent_results"] or {},
        status_reason=row["status_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )


def version_view(row: dict[str, Any]) -> PlanVersionView:
    return PlanVersionView(
        plan_id=row["plan_id"],
        version=row["version"],
        parent_version=row["parent_version"],
        status=row["status"],
        request=row["request"],
        plan_data=row["plan_data"],
        agent_results=row["agent_results"],
        feedback=row["feedback"],
        started_at=row["started_at"],
        created_at=row["created_at"],
    )


class Reads(SchemaStore):
    async def _owns(self, user_id: str, plan_id: str) -> bool:
        rows = await self._all(
            "SELECT 1 FROM {s}.plans WHERE plan_id = %s AND user_id = %s AND deleted_at IS NULL",
            (plan_id, user_id),
        )
        return bool(rows)

    async def get(self, req: PlanGetRequest) -> PlanGetReply:
        rows = await self._all(
            PLAN_SELECT + " WHERE p.plan_id = %s AND p.user_id = %s AND p.deleted_at IS NULL",
            (req.plan_id, req.user_id),
        )
        if not rows:
            return PlanGetReply(error=NOT_FOUND)
        return PlanGetReply(plan=plan_view(rows[0]))

    async def list(self, req: PlanListRequest) -> PlanListReply:
        rows = await self._all(
            PLAN_SELECT + " WHERE p.user_id = %s AND p.deleted_at IS NULL"
            " ORDER BY p.created_at DESC, p.plan_id DESC LIMIT %s OFFSET %s",
            (req.user_id, req.limit, req.offset),
        )
        total = await self._all(
            "SELECT count(*) AS n FROM {s}.plans WHERE user_id = %s AND deleted_at IS NULL", (req.user_id,)
        )
        return PlanListReply(items=[plan_view(r) for r in rows], total=total[0]["n"])

    async def versions(self, req: PlanVersionsRequest) -> PlanVersionsReply:
        if not await self._owns(req.user_id, req.plan_id):
            return PlanVersionsReply(error=NOT_FOUND)
        rows = await self._all(
            "SELECT * FROM {s}.plan_versions WHERE plan_id = %s ORDER BY version DESC", (req.plan_id,)
        )
        return PlanVersionsReply(items=[version_view(r) for r in rows])

    async def version(self, req: PlanVersionRequest) -> PlanVersionReply:
        if not await self._owns(req.user_id, req.plan_id):
            return PlanVersionReply(error=NOT_FOUND)
        rows = await self._all(
            "SELECT * FROM {s}.plan_versions WHERE plan_id = %s AND version = %s", (req.plan_id, req.version)
        )
        if not rows:
            return PlanVersionReply(error=RpcError(status=404, title="Version not found"))
        return PlanVersionReply(version=version_view(rows[0]))
