"""Who may set which budget cap (pure logic; the routes apply it).

An admin sets any cap for anyone. A user, for themself, may only make spending harder: lower
a cap (below the tier's default, or below what an admin granted), or reset it to the tier's
default (null). Raising a cap above the tier's default needs an admin.

The ledger's BudgetView gives the tier's default only while the user has no cap of their own
(`*_is_default`): with a custom cap in place, a raise cannot be checked against the default,
so it is refused with the way out (reset to the default first, then lower from there).
"""

from __future__ import annotations

from decimal import Decimal

from tripmesh_contracts.rpc import BudgetView

from tripmesh_gateway.domain import FieldError

CAP_FIELDS = {"daily_cap_usd": "daily", "monthly_cap_usd": "monthly"}


def _current(view: BudgetView, field: str) -> tuple[Decimal | None, bool]:
    if field == "daily_cap_usd":
        return view.daily_cap_usd, view.daily_cap_is_default
    return view.monthly_cap_usd, view.monthly_cap_is_default


def self_service_refusals(view: BudgetView, changes: dict[str, Decimal | None]) -> list[FieldError]:
    """Why a user may not make these changes to their own caps (empty: they may)."""
    refusals = []
    for field, new in changes.items():
        current, is_default = _current(view, field)
        if new is None or current is None or new <= current:
            continue  # back to the default, no cap to exceed, or lower than now
        period = CAP_FIELDS[field]
        shown = format(current.normalize(), "f")
        if is_default:
            message = f"raising the {period} cap above your tier's default ({shown} USD) needs an admin"
        else:
            message = (
                f"raising your custom {period} cap ({shown} USD) needs an admin; send null to"
                " return to your tier's default, then lower it from there if you wish"
            )
        refusals.append(FieldError(field, message))
    return refusals
