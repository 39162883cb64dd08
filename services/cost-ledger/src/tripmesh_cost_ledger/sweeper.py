"""The ledger's durable timers (ARCHITECTURE.md §9): no message may be needed to end them.

Every replica runs the sweep; `FOR UPDATE SKIP LOCKED` shares the work, so no lease is needed.
- Unsettled reservations past their expiry (the runner died mid-call, or its settle was lost)
  are charged at their reserved maximum: an `estimated` UsageEvent is published on the USAGE
  stream - the ledger ingests it like any other event, a rebuild replays it, and the real
  usage event replaces it if it ever comes (accounting.py). The reservation is marked expired
  only after the stream took the estimate (its id is derived from the reservation: a retried
  publish is de-duplicated by JetStream, a re-ingested one by the event-id key).
- Cost alerts whose publish failed after their batch committed (the alerts table is an
  outbox) are published again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from tripmesh_contracts import AgentName, CostAlert, UsageEvent, subjects
from tripmesh_contracts.ids import stable_id
from tripmesh_contracts.rpc import CostAlertView
from tripmesh_kit.bus import Bus
from tripmesh_kit.logging import get_logger
from tripmesh_kit.loops import pause

from tripmesh_cost_ledger import metrics
from tripmesh_cost_ledger.alerts_store import AlertStore
from tripmesh_cost_ledger.reservations import DueReservation, ReservationStore

log = get_logger(__name__)

ESTIMATE_ERROR = "reservation expired unsettled: charged at its reserved maximum (estimate)"


def estimate_event(due: DueReservation) -> UsageEvent:
    agent = due.agent if due.agent in AgentName.__members__.values() else None
    return UsageEvent(
        id=stable_id("estimate", due.reservation_id),
        user_id=due.user_id,
        plan_id=due.plan_id,
        agent=AgentName(agent) if agent else None,
        model=due.model or "unknown",
        provider="estimate",
        cost_usd=due.amount_usd,
        success=False,
        error=ESTIMATE_ERROR,
        reservation_id=due.reservation_id,
        estimated=True,
        occurred_at=due.created_at,
    )


def alert_message(alert: CostAlertView) -> CostAlert:
    return CostAlert(
        id=alert.id,
        user_id=alert.user_id,
        plan_id=alert.plan_id,
        scope=alert.scope.value,
        period=alert.period,
        threshold_percent=alert.threshold_percent,
        spent_usd=alert.spent_usd,
        cap_usd=alert.cap_usd,
        occurred_at=alert.raised_at,
    )


async def publish_alerts(bus: Bus, alerts: AlertStore, raised: Sequence[CostAlertView]) -> None:
    """Publish, then mark published (a crash in between publishes again: same msg id)."""
    done = []
    for alert in raised:
        await bus.publish(alert_message(alert), subjects.cost_alert(alert.user_id))
        metrics.ALERTS.labels(scope=alert.scope.value, threshold=str(alert.threshold_percent)).inc()
        done.append(alert.id)
    await alerts.mark_published(done)


def utcnow() -> datetime:
    return datetime.now(UTC)


class LedgerSweeper:
    def __init__(
        self,
        bus: Bus,
        reservations: ReservationStore,
        alerts: AlertStore,
        *,
        interval_seconds: float,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.bus = bus
        self.reservations = reservations
        self.alerts = alerts
        self.interval_seconds = interval_seconds
        self.now = now
        self._task: asyncio.Task[None] | None = None

    async def _charge(self, due: list[DueReservation]) -> None:
        for reservation in due:
            await self.bus.publish(estimate_event(reservation), subjects.usage(reservation.user_id))
        metrics.RESERVATIONS_EXPIRED.inc(len(due))
        log.warning("reservations_charged_as_estimates", count=len(due))

    async def sweep_once(self) -> int:
        charged = 0
        while True:
            n = await self.reservations.expire_due(self._charge, self.now())
            charged += n
            if n < 500:
                break
        pending = await self.alerts.unpublished()
        if pending:
            await publish_alerts(self.bus, self.alerts, pending)
        return charged

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:  # the database or the bus may be down: next interval
                log.warning("ledger_sweep_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await pause(self.interval_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="ledger-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
