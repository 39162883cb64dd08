"""The tenant filter cannot be left out: every query filter carries user_id."""

from __future__ import annotations

import inspect
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qdrant_client import models
from tripmesh_contracts.ids import UnsafeTokenError
from tripmesh_contracts.plans import PlanStatus
from tripmesh_contracts.rpc import SearchFilters
from tripmesh_vector_sync.documents import plan_point_id
from tripmesh_vector_sync.filters import TENANT_KEY, TenantFilter
from tripmesh_vector_sync.store import VectorStore

filters = st.builds(
    SearchFilters,
    country=st.one_of(st.none(), st.sampled_from(["Portugal", "norway", "United Kingdom"])),
    start_after=st.one_of(st.none(), st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1))),
    end_before=st.one_of(st.none(), st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1))),
    budget_min=st.one_of(st.none(), st.decimals(min_value=0, max_value=10_000, places=2)),
    budget_max=st.one_of(st.none(), st.decimals(min_value=0, max_value=10_000, places=2)),
    status=st.one_of(st.none(), st.sampled_from(list(PlanStatus))),
)
user_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@given(user_id=user_ids, search=filters, exclude=st.one_of(st.none(), user_ids))
def test_every_filter_starts_with_the_tenant_condition(
    user_id: str, search: SearchFilters, exclude: str | None
) -> None:
    built = TenantFilter(user_id, search, exclude_plan_id=exclude).to_qdrant()
    assert isinstance(built.must, list)
    tenant = built.must[0]
    assert isinstance(tenant, models.FieldCondition) and tenant.key == TENANT_KEY
    assert tenant.match == models.MatchValue(value=user_id)
    # optional conditions are only ever added beside it, never instead of it: no should/or
    assert built.should is None and built.min_should is None
    if exclude is not None:
        assert built.must_not == [models.HasIdCondition(has_id=[plan_point_id(exclude)])]


@pytest.mark.parametrize("bad", ["", "a.b", "*", ">", "user a", "x" * 65])
def test_a_missing_or_wildcard_user_id_cannot_make_a_filter(bad: str) -> None:
    with pytest.raises(UnsafeTokenError):
        TenantFilter(bad)


def test_optional_conditions_are_added_beside_the_tenant() -> None:
    built = TenantFilter(
        "u1", SearchFilters(country="Norway", budget_min=Decimal(10), status=PlanStatus.COMPLETED)
    ).to_qdrant()
    assert isinstance(built.must, list)
    keys = [c.key for c in built.must if isinstance(c, models.FieldCondition)]
    assert keys == ["user_id", "countries", "budget_total", "status"]
    country = built.must[1]
    assert isinstance(country, models.FieldCondition) and country.match == models.MatchValue(value="norway")


def test_the_store_reads_tenant_data_only_through_a_tenant_filter() -> None:
    """No VectorStore method takes a raw Qdrant filter; the reads take a TenantFilter."""
    for name, method in inspect.getmembers(VectorStore, inspect.isfunction):
        hints = {k: str(v) for k, v in inspect.signature(method).parameters.items()}
        assert not any("Filter" in v and "TenantFilter" not in v for v in hints.values()), name
    for read in (VectorStore.search_plans, VectorStore.get_plan):
        assert "TenantFilter" in str(inspect.signature(read).parameters["tenant"].annotation)
