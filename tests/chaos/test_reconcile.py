"""The kill storm's invoice oracle (`reconcile.py`) on hand-made invoices and ledgers: it must
catch a billed call the ledger lacks, an estimate below its bill and a call sent without its
reservation id - an oracle that cannot fail proves nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from reconcile import expected_ledger, reconcile

PRICE = (Decimal("0.0005"), Decimal("0.0015"))


def call(rid: str | None, answer: str = "ok", prompt: int = 1000, completion: int = 1000) -> dict[str, Any]:
    return {"usage_id": rid, "answer": answer, "prompt_tokens": prompt, "completion_tokens": completion}


def test_every_billed_call_settled_or_estimated_reconciles() -> None:
    invoice = [call("r1"), call("r2"), call("r3", answer="500")]
    estimate = (Decimal("0.004"), True)
    charges = {"r1": (Decimal("0.002"), False), "r2": estimate, "r9": estimate}
    out = reconcile(invoice, charges, PRICE)
    assert (out.billed, out.settled, out.charged_as_estimate) == (2, 1, 1)
    assert not out.missing and out.estimate_below_bill == 0 and out.without_id == 0
    assert out.estimates_without_call == 1  # r9: reserved, charged, never answered


def test_a_billed_call_the_ledger_lacks_is_missing() -> None:
    out = reconcile([call("r1"), call("r2")], {"r1": (Decimal("0.002"), False)}, PRICE)
    assert out.missing == ["r2"]


def test_an_estimate_below_the_bill_is_caught() -> None:
    # the bill: 1000 x 0.0005/1k + 1000 x 0.0015/1k = $0.002
    out = reconcile([call("r1")], {"r1": (Decimal("0.0019"), True)}, PRICE)
    assert out.estimate_below_bill == 1


def test_a_call_without_its_reservation_id_is_counted() -> None:
    out = reconcile([call(None)], {}, PRICE)
    assert out.without_id == 1 and out.billed == 1


def test_an_estimate_replaced_by_its_real_event_is_not_expected_in_the_ledger() -> None:
    events = [
        {"id": "e-est", "reservation_id": "r1", "estimated": True, "cost_usd": "0.004"},
        {"id": "e-real", "reservation_id": "r1", "estimated": False, "cost_usd": "0.002"},
        {"id": "e-alone", "reservation_id": "r2", "estimated": True, "cost_usd": "0.004"},
    ]
    assert expected_ledger(events) == {"e-real": Decimal("0.002"), "e-alone": Decimal("0.004")}
