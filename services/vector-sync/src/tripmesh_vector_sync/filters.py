"""The only way to build a search filter: `TenantFilter`, which always carries `user_id`.

The store's search methods accept a `TenantFilter`, never a raw Qdrant `Filter`, and
`TenantFilter` can only be made from a non-empty, validated user id: a query without the
tenant condition cannot be written against the store. Optional conditions (country, dates,
budget, status, excluded plan) are only ever *added* to the `must` list beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qdrant_client import models
from tripmesh_contracts.ids import check_token
from tripmesh_contracts.rpc import SearchFilters

from tripmesh_vector_sync.documents import country_key, plan_point_id

TENANT_KEY = "user_id"


@dataclass(frozen=True)
class TenantFilter:
    user_id: str
    filters: SearchFilters = field(default_factory=SearchFilters)
    exclude_plan_id: str | None = None

    def __post_init__(self) -> None:
        check_token(self.user_id)  # raises on "", wildcards, dots: never an open filter

    def to_qdrant(self) -> models.Filter:
        must: list[models.Condition] = [
            models.FieldCondition(key=TENANT_KEY, match=models.MatchValue(value=self.user_id)),
            *_optional_conditions(self.filters),
        ]
        must_not: list[models.Condition] = []
        if self.exclude_plan_id is not None:
            must_not.append(models.HasIdCondition(has_id=[plan_point_id(self.exclude_plan_id)]))
        return models.Filter(must=must, must_not=must_not or None)


def _optional_conditions(filters: SearchFilters) -> list[models.Condition]:
    conditions: list[models.Condition] = []
    if filters.country:
        conditions.append(
            models.FieldCondition(
                key="countries", match=models.MatchValue(value=country_key(filters.country))
            )
        )
    if filters.start_after is not None:
        conditions.append(
            models.FieldCondition(key="start_date", range=models.DatetimeRange(gte=filters.start_after))
        )
    if filters.end_before is not None:
        conditions.append(
            models.FieldCondition(key="end_date", range=models.DatetimeRange(lte=filters.end_before))
        )
    if filters.budget_min is not None or filters.budget_max is not None:
        conditions.append(
            models.FieldCondition(
                key="budget_total",
                range=models.Range(
                    gte=float(filters.budget_min) if filters.budget_min is not None else None,
                    lte=float(filters.budget_max) if filters.budget_max is not None else None,
                ),
            )
        )
    if filters.status is not None:
        conditions.append(
            models.FieldCondition(key="status", match=models.MatchValue(value=filters.status.value))
        )
    return conditions
