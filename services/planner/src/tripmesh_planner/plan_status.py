"""Tells the agent-runners which plan runs no longer want answers.

The runners must not pay for LLM calls of a cancelled plan, and they may not read our tables
(ARCHITECTURE.md §1). So a cancel (or delete) writes `<plan_id>.<run_id>` = `cancelled` (or
`deleted`) into the JetStream KV bucket `plan-status`; a runner reads that key before it runs
a job and skips the job when it is there. Keyed by run: a revision after a cancel is a new
run whose jobs must run. The write is idempotent, so a redelivered command repeats it
harmlessly; when it fails the command fails and is redelivered.

The bucket is created by whichever service needs it first; both use these settings (history
1, file storage, entries kept 7 days - far longer than any job waits) and never change an
existing bucket's.
"""

from __future__ import annotations

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue
from tripmesh_kit.bus import Bus

PLAN_STATUS_TTL_SECONDS = 7 * 24 * 3600.0


def plan_status_key(plan_id: str, run_id: str) -> str:
    return f"{plan_id}.{run_id}"


class PlanStatusBoard:
    def __init__(self, bus: Bus, bucket: str = "plan-status") -> None:
        self.bus = bus
        self.bucket = bucket
        self._kv: KeyValue | None = None

    async def _open(self) -> KeyValue:
        if self._kv is None:
            js = self.bus.js
            try:
                self._kv = await js.key_value(self.bucket)
            except BucketNotFoundError:
                config = KeyValueConfig(
                    bucket=self.bucket,
                    history=1,
                    ttl=PLAN_STATUS_TTL_SECONDS,
                    storage=StorageType.FILE,
                    direct=True,
                )
                try:
                    self._kv = await js.create_key_value(config)
                except Exception:  # a runner created it at the same moment
                    self._kv = await js.key_value(self.bucket)
        return self._kv

    async def mark(self, plan_id: str, run_id: str, status: str) -> None:
        """Record that jobs of this run must not run any more (`cancelled`, `deleted`)."""
        kv = await self._open()
        await kv.put(plan_status_key(plan_id, run_id), status.encode())
