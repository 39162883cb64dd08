"""Is this job's plan run still wanted? The `plan-status` KV bucket says.

The runner must not pay for LLM calls of a plan the user cancelled, and it cannot read the
planner's tables (ARCHITECTURE.md §1). So the planner writes `<plan_id>.<run_id>` =
`cancelled` (or `deleted`) into a JetStream KV bucket when it cancels a run, and the runner
reads that key before running a job. Keyed by run, not by plan: a plan cancelled and later
revised gets a new run, whose jobs must run.

A missing key means "run it". So does a failed lookup: skipping is a saving, never a
condition for correctness (the planner ignores results of a cancelled run anyway), and a
cache-like check must not turn a NATS hiccup into a lost job.

The bucket is created by whichever service needs it first, with the same settings
(history 1, file storage, entries kept 7 days - far longer than any job waits).
"""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from tripmesh_contracts.messages import AgentJob
from tripmesh_kit.logging import get_logger

from tripmesh_agent_runner.cache import open_bucket

log = get_logger(__name__)

PLAN_STATUS_TTL_SECONDS = 7 * 24 * 3600.0
SKIPPED_STATUSES = frozenset({"cancelled", "deleted"})
LOOKUP_TIMEOUT_SECONDS = 2.0


def plan_status_key(plan_id: str, run_id: str) -> str:
    return f"{plan_id}.{run_id}"


def plan_status_config(bucket: str) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=bucket, history=1, ttl=PLAN_STATUS_TTL_SECONDS, storage=StorageType.FILE, direct=True,
        description="planner -> agent-runner: status of cancelled plan runs (<plan_id>.<run_id>)",
    )  # fmt: skip


class PlanStatusBoard:
    """Reads the bucket; `open()` binds it (until then every job runs)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self._kv: KeyValue | None = None

    async def open(self, js: JetStreamContext) -> None:
        self._kv = await open_bucket(js, plan_status_config(self.bucket))

    async def status(self, plan_id: str, run_id: str) -> str | None:
        if self._kv is None:
            return None
        try:
            entry = await asyncio.wait_for(
                self._kv.get(plan_status_key(plan_id, run_id)), LOOKUP_TIMEOUT_SECONDS
            )
        except KeyNotFoundError:
            return None
        except Exception as exc:
            log.warning("plan_status_lookup_failed", error=f"{type(exc).__name__}: {exc}")
            return None
        return (entry.value or b"").decode(errors="replace").strip() or None

    async def skip_reason(self, job: AgentJob) -> str | None:
        """Why `job` must not run (its run was cancelled or its plan deleted), else None."""
        status = await self.status(job.plan_id, job.run_id)
        return status if status in SKIPPED_STATUSES else None
