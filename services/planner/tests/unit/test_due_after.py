"""`Engine._due_after`: when an advance may stop right after invoking the graph.

Stopping early saves a re-read of plan, run and checkpoint; stopping wrongly strands a plan
until the sweeper's stall check. These pin the facts stored *before* the invocation, which no
later trigger will bring back.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from langgraph.types import Interrupt
from tripmesh_contracts.plans import Stage
from tripmesh_planner.engine import Engine
from tripmesh_planner.store import RunRow


class Outcomes:
    """The executions store's `round_outcomes`, answering from a fixed dict."""

    def __init__(self, answer: dict[str, Any] | None) -> None:
        self.answer = answer
        self.asked: list[tuple[str, Stage, int]] = []

    async def round_outcomes(self, run_id: str, stage: Stage, round_: int) -> dict[str, Any] | None:
        self.asked.append((run_id, stage, round_))
        return self.answer


def engine(outcomes: Outcomes) -> Engine:
    rt: Any = SimpleNamespace(executions=outcomes)
    return Engine(rt, graph=None, locks=None)  # type: ignore[arg-type]


def run(*, cancel: bool = False, decision: bool | None = None) -> RunRow:
    return RunRow("r1", "p1", "active", 1, None, {}, None, None, decision, cancel, None)


AT_OPTIONS = (Interrupt(value={"kind": "agents", "stage": "options", "round": 2}),)
AT_APPROVAL = (Interrupt(value={"kind": "approval", "round": 1}),)


async def test_a_graph_that_ended_takes_the_full_step() -> None:
    """A queued revision may be waiting to start."""
    outcomes = Outcomes(None)
    assert await engine(outcomes)._due_after((), run()) is True
    assert outcomes.asked == []


async def test_agents_still_out_stop_the_advance_after_one_read_of_the_round() -> None:
    outcomes = Outcomes(None)
    assert await engine(outcomes)._due_after(AT_OPTIONS, run()) is False
    assert outcomes.asked == [("r1", Stage.OPTIONS, 2)]


async def test_a_round_answered_before_a_crash_re_dispatched_it_is_resumed_now() -> None:
    """No result will arrive for it again: its jobs' results are already stored."""
    outcomes = Outcomes({"transport": {}, "accommodation": {}, "activity": {}})
    assert await engine(outcomes)._due_after(AT_OPTIONS, run()) is True


@pytest.mark.parametrize("waiting", [AT_OPTIONS, AT_APPROVAL])
async def test_a_cancel_stored_before_the_invocation_is_acted_on(waiting: tuple[Interrupt, ...]) -> None:
    assert await engine(Outcomes(None))._due_after(waiting, run(cancel=True)) is True


@pytest.mark.parametrize(("decision", "due"), [(None, False), (True, True), (False, True)])
async def test_the_approval_is_due_only_with_a_decision_already_stored(
    decision: bool | None, due: bool
) -> None:
    outcomes = Outcomes(None)
    assert await engine(outcomes)._due_after(AT_APPROVAL, run(decision=decision)) is due
    assert outcomes.asked == []
