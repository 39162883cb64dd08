"""Ids never produce a subject with extra tokens or wildcards (property test)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from tripmesh_contracts import EventKind, PlanCancel, UnsafeTokenError, subjects
from tripmesh_contracts.ids import check_token

BAD_CHARS = ".*> \t\n"


@given(st.text(min_size=0, max_size=80))
def test_any_text_is_either_one_safe_token_or_refused(value: str) -> None:
    try:
        subject = subjects.plan_event(value, "plan1", EventKind.COMPLETED)
    except UnsafeTokenError:
        assert (
            value == ""
            or any(c in value for c in BAD_CHARS)
            or not value.isascii()
            or (len(value) > 64 or not all(c.isalnum() or c in "-_" for c in value))
        )
        return
    parts = subject.split(".")
    assert len(parts) == 5
    assert parts[2] == value
    assert not any(c in value for c in BAD_CHARS)


@given(st.text(alphabet=st.sampled_from([*BAD_CHARS, "a", "é", "😀"]), min_size=1))
def test_wildcards_and_separators_never_pass(value: str) -> None:
    if any(c not in "a" for c in value):
        with pytest.raises(UnsafeTokenError):
            check_token(value)


@pytest.mark.parametrize("bad", ["a.b", "*", ">", "a b", "", "x" * 65, "ünï"])
def test_contract_models_refuse_unsafe_ids(bad: str) -> None:
    with pytest.raises(ValidationError):
        PlanCancel(user_id=bad, plan_id="p1")
    with pytest.raises(ValidationError):
        PlanCancel(user_id="u1", plan_id=bad)


def test_subject_shapes() -> None:
    assert subjects.agent_job("transport") == "agents.job.transport"
    assert subjects.agent_result("p-1") == "agents.result.p-1"
    assert subjects.plan_events_filter("u1") == "plans.evt.u1.>"
    assert subjects.parse_plan_event("plans.evt.u1.p1.completed") == ("u1", "p1", "completed")
    with pytest.raises(ValueError):
        subjects.agent_job("not-an-agent")
