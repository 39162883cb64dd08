"""Reconciling the provider's invoice with the ledger, call by call.

The runner sends each LLM call's ledger reservation id with the request (the
`X-Tripmesh-Reservation-Id` header); the test LLM writes it on the invoice line of the call
it answered. Every billed call then has a reservation the ledger holds, and a reservation
ends in exactly one of two ways:
- settled: the call's usage event, carrying the reservation id, is a ledger row;
- expired unsettled (the runner died between the provider's answer and its usage event):
  the ledger's sweeper charged the reservation's maximum as an `estimated` usage event.
So once no reservation is open, an invoiced call absent from the ledger is a lost charge.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from tripmesh_devstack.supervisor import Stack


def expected_ledger(events: list[dict[str, Any]]) -> dict[str, Decimal]:
    """event id -> cost: the distinct events of the USAGE stream the ledger must hold. An
    estimate whose reservation also has a real usage event is replaced by it (the ledger
    deletes the estimate row when the real one arrives, whichever came first)."""
    real = {str(e["reservation_id"]) for e in events if e.get("reservation_id") and not e.get("estimated")}
    return {
        str(e["id"]): Decimal(str(e["cost_usd"]))
        for e in events
        if not (e.get("estimated") and str(e.get("reservation_id")) in real)
    }


async def open_reservations(stack: Stack) -> int:
    """Granted reservations neither settled nor charged yet."""
    async with await psycopg.AsyncConnection.connect(stack.database_url) as db:
        row = await (
            await db.execute(
                "SELECT count(*) FROM ledger.reservations WHERE granted AND accounted_at IS NULL"
            )
        ).fetchone()
    return int(row[0]) if row else 0


async def until_no_open_reservations(stack: Stack, liveness: float) -> tuple[int, float]:
    """(open reservations left, seconds waited): polls until none is open or `liveness`
    passes (a liveness bound: the sweeper charges each at its expiry)."""
    started = time.monotonic()
    while True:
        left = await open_reservations(stack)
        waited = time.monotonic() - started
        if left == 0 or waited > liveness:
            return left, round(waited, 1)
        await asyncio.sleep(2.0)


async def ledger_charges(stack: Stack) -> dict[str, tuple[Decimal, bool]]:
    """reservation id -> (cost, estimated) of every ledger row that names one."""
    async with await psycopg.AsyncConnection.connect(stack.database_url) as db:
        rows = await (
            await db.execute(
                "SELECT reservation_id, cost_usd, estimated FROM ledger.usage_events"
                " WHERE reservation_id IS NOT NULL"
            )
        ).fetchall()
    return {str(r): (Decimal(c), bool(e)) for r, c, e in rows}


@dataclass
class InvoiceReconciliation:
    billed: int = 0
    """Calls the provider answered `ok` (billed)."""
    without_id: int = 0
    """Billed calls whose request carried no reservation id."""
    settled: int = 0
    """Billed calls whose reservation the ledger holds as a real usage row."""
    charged_as_estimate: int = 0
    """Billed calls whose reservation expired unsettled: charged at its maximum."""
    estimate_below_bill: int = 0
    """Estimates smaller than what the provider billed for that call (must be 0)."""
    missing: list[str] = field(default_factory=list)
    """Reservation ids of billed calls the ledger does not hold at all."""
    estimates_without_call: int = 0
    """Estimated charges with no billed call behind them (a runner died before the provider
    answered): over-charged, never under."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "billed": self.billed, "without_id": self.without_id, "settled": self.settled,
            "charged_as_estimate": self.charged_as_estimate, "estimate_below_bill": self.estimate_below_bill,
            "missing": len(self.missing), "missing_ids": self.missing[:20],
            "estimates_without_call": self.estimates_without_call,
        }  # fmt: skip


def reconcile(
    invoice: list[dict[str, Any]],
    charges: dict[str, tuple[Decimal, bool]],
    price_per_1k: tuple[Decimal, Decimal],
) -> InvoiceReconciliation:
    """Match each billed call on the invoice to the ledger's charge of its reservation."""
    out = InvoiceReconciliation()
    billed_ids: set[str] = set()
    for call in invoice:
        if call.get("answer") != "ok":
            continue
        out.billed += 1
        rid = call.get("usage_id")
        if not rid:
            out.without_id += 1
            continue
        billed_ids.add(str(rid))
        charge = charges.get(str(rid))
        if charge is None:
            out.missing.append(str(rid))
            continue
        cost, estimated = charge
        if not estimated:
            out.settled += 1
            continue
        out.charged_as_estimate += 1
        bill = (
            Decimal(int(call.get("prompt_tokens") or 0)) * price_per_1k[0]
            + Decimal(int(call.get("completion_tokens") or 0)) * price_per_1k[1]
        ) / 1000
        out.estimate_below_bill += cost < bill
    out.estimates_without_call = sum(1 for rid, (_, est) in charges.items() if est and rid not in billed_ids)
    return out
