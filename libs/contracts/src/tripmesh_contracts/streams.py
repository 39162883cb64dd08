"""Stream and durable-consumer definitions as code (ARCHITECTURE.md §2, §8).

Plain pydantic data: the kit turns these into nats-py configs and provisions them
idempotently at start-up. Numbers here are the defaults the reliability tests pin down.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from tripmesh_contracts import subjects
from tripmesh_contracts.plans import AgentName

DAY = 24 * 3600.0


class Retention(StrEnum):
    LIMITS = "limits"
    WORK_QUEUE = "workqueue"


class StreamSpec(BaseModel):
    name: str
    subjects: list[str]
    retention: Retention
    max_age_seconds: float = 0.0
    """0 = unlimited."""
    max_msgs_per_subject: int = -1
    duplicate_window_seconds: float = 120.0
    replicas: int = 1
    description: str = ""


class ConsumerSpec(BaseModel):
    stream: str
    durable: str
    filter_subject: str
    ack_wait_seconds: float = 30.0
    max_deliver: int = 5
    backoff_seconds: list[float] = Field(default_factory=list)
    """JetStream BackOff for ack-timeout redeliveries. Empty by design; two traps measured
    against nats-server 2.15: (1) with BackOff set, the server uses BackOff[0] as the first
    AckWait (a `[2s, ...]` BackOff turned a 30 s AckWait into 2 s); (2) with BackOff set, the
    delay of a `nak(delay=...)` is ignored from the second nak on (the next delivery waited
    for the BackOff step instead). Slow work sends in-progress acks instead, and transient
    errors are retried with our own `nak_delays_seconds`."""
    nak_delays_seconds: list[float] = Field(default_factory=lambda: [2.0, 10.0, 30.0, 60.0])
    """Delays our handlers pass to nak() for transient errors, by delivery count."""
    max_ack_pending: int = 256
    description: str = ""

    @model_validator(mode="after")
    def _backoff_starts_at_ack_wait(self) -> ConsumerSpec:
        if self.backoff_seconds and self.backoff_seconds[0] != self.ack_wait_seconds:
            raise ValueError("backoff_seconds[0] must equal ack_wait_seconds (it becomes AckWait)")
        if self.backoff_seconds and self.max_deliver <= len(self.backoff_seconds):
            raise ValueError("max_deliver must exceed the number of backoff steps")
        return self


PLAN_COMMANDS = StreamSpec(
    name="PLAN_COMMANDS",
    subjects=[subjects.PLAN_CMD_ALL],
    retention=Retention.WORK_QUEUE,
    description="Commands from the gateway to the planner",
)
AGENT_JOBS = StreamSpec(
    name="AGENT_JOBS",
    subjects=[subjects.AGENT_JOB_ALL],
    retention=Retention.WORK_QUEUE,
    description="Agent jobs, one durable consumer per agent type",
)
AGENT_RESULTS = StreamSpec(
    name="AGENT_RESULTS",
    subjects=[subjects.AGENT_RESULT_ALL],
    retention=Retention.WORK_QUEUE,
    description="Agent results back to the planner",
)
PLAN_EVENTS = StreamSpec(
    name="PLAN_EVENTS",
    subjects=[subjects.PLAN_EVT_ALL, subjects.USER_EVT_ALL],
    retention=Retention.LIMITS,
    max_age_seconds=7 * DAY,
    description="Plan progress and account alerts, replayed for SSE",
)
PLAN_CHANGES = StreamSpec(
    name="PLAN_CHANGES",
    subjects=[subjects.PLAN_CHANGED_ALL],
    retention=Retention.LIMITS,
    max_msgs_per_subject=1,
    description="Latest version of every plan, for read models",
)
USAGE = StreamSpec(
    name="USAGE",
    subjects=[subjects.USAGE_ALL],
    retention=Retention.LIMITS,
    max_age_seconds=35 * DAY,
    description="LLM usage events: the replayable audit the ledger is built from",
)
DLQ = StreamSpec(
    name="DLQ",
    subjects=[subjects.DLQ_ALL],
    retention=Retention.LIMITS,
    max_age_seconds=30 * DAY,
    description="Dead letters with their error, for operators",
)

ALL_STREAMS: tuple[StreamSpec, ...] = (
    PLAN_COMMANDS,
    AGENT_JOBS,
    AGENT_RESULTS,
    PLAN_EVENTS,
    PLAN_CHANGES,
    USAGE,
    DLQ,
)

PLANNER_COMMANDS = ConsumerSpec(
    stream=PLAN_COMMANDS.name, durable="planner-commands", filter_subject=subjects.PLAN_CMD_ALL
)
PLANNER_RESULTS = ConsumerSpec(
    stream=AGENT_RESULTS.name,
    durable="planner-results",
    filter_subject=subjects.AGENT_RESULT_ALL,
    max_ack_pending=1024,
)
LEDGER_USAGE = ConsumerSpec(
    stream=USAGE.name,
    durable="cost-ledger-usage",
    filter_subject=subjects.USAGE_ALL,
    max_ack_pending=20000,
)
VECTOR_SYNC_CHANGES = ConsumerSpec(
    stream=PLAN_CHANGES.name,
    durable="vector-sync-changes",
    filter_subject=subjects.PLAN_CHANGED_ALL,
    max_ack_pending=512,
)


def runner_consumer(agent: AgentName | str) -> ConsumerSpec:
    """One durable per agent type, shared by every runner replica serving it."""
    name = AgentName(agent).value
    return ConsumerSpec(
        stream=AGENT_JOBS.name,
        durable=f"runner-{name}",
        filter_subject=subjects.agent_job(name),
        max_ack_pending=64,
        # A runner holding a job sends an in-progress ack every ack_wait / 3 (5 s), however
        # long its LLM calls take; AckWait is how long a job held by a runner that died waits
        # before another runner gets it. At 30 s, the kill storm's slowest plans (p99 177 s of
        # 22 s p50) were jobs caught by 3-4 kills in a row, each waiting out a full AckWait.
        ack_wait_seconds=15.0,
    )


ALL_CONSUMERS: tuple[ConsumerSpec, ...] = (
    PLANNER_COMMANDS,
    PLANNER_RESULTS,
    LEDGER_USAGE,
    VECTOR_SYNC_CHANGES,
    *(runner_consumer(a) for a in AgentName),
)
