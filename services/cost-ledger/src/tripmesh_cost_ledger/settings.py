"""cost-ledger settings: `COST_LEDGER_*`, plus the shared unprefixed names (ARCHITECTURE.md §9).

Tier caps are the defaults a user without a row in `ledger.budgets` gets. The seeds raise a
cost alert at $10 of spend per day; the caps below keep every tier at or under that figure
per day, with the free tier an order of magnitude lower (a plan run on a real provider costs
cents, so $1/day is a handful of plans):

| tier    | daily cap | monthly cap |
|---------|-----------|-------------|
| free    | $1        | $10         |
| basic   | $5        | $50         |
| premium | $10       | $200        |
| enterprise | $50    | $1,000      |

The seeds name free, basic and premium; issue #6 names enterprise too: all four exist.
Each plan also has a cap (`COST_LEDGER_PLAN_CAP_USD`, the seeds' $1 per request), which a
plan's own request may lower but never raise.

An unknown tier gets the free tier's caps (the most restrictive: a typo never lifts a cap).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tripmesh_kit.settings import ServiceSettings, shared

from tripmesh_cost_ledger.domain import Caps

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COST_LEDGER_", extra="ignore", populate_by_name=True)

    service_name: str = "cost-ledger"
    http_port: int = 8084
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=shared("DATABASE_URL", "COST_LEDGER_DATABASE_URL"),
    )
    db_pool_size: int = 6
    """Connections: `ingest_concurrency` for the usage batches, the rest for reservations,
    summaries and the sweeper."""

    batch_size: int = Field(default=2000, ge=1, le=5000)
    """Most usage events ingested in one transaction (bench/ledger/replay.py, 200,000 fresh
    events: 500 -> 6,346 events/s, 2,000 -> 7,609; the window bounds the wait when idle)."""
    batch_window_seconds: float = Field(default=0.2, gt=0, le=5)
    """How long one fetch waits to fill a batch before ingesting what it has."""
    ingest_concurrency: int = Field(default=2, ge=1, le=8)
    """Batches in their transactions at once: one commits (fsync) while the next is decoded
    and copied. Totals rows are locked in key order, so concurrent batches do not deadlock."""

    free_daily_cap_usd: Decimal = Decimal("1")
    free_monthly_cap_usd: Decimal = Decimal("10")
    basic_daily_cap_usd: Decimal = Decimal("5")
    basic_monthly_cap_usd: Decimal = Decimal("50")
    premium_daily_cap_usd: Decimal = Decimal("10")
    premium_monthly_cap_usd: Decimal = Decimal("200")

    enterprise_daily_cap_usd: Decimal = Decimal("50")
    enterprise_monthly_cap_usd: Decimal = Decimal("1000")
    plan_cap_usd: Decimal | None = Field(default=Decimal("1"), ge=0)
    """Default LLM spend cap per plan (None: no plan cap, only the user's)."""
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    """How often unsettled reservations past expiry are charged and unpublished alerts sent."""

    def tier_caps(self) -> dict[str, Caps]:
        return {
            "free": Caps(self.free_daily_cap_usd, self.free_monthly_cap_usd),
            "basic": Caps(self.basic_daily_cap_usd, self.basic_monthly_cap_usd),
            "premium": Caps(self.premium_daily_cap_usd, self.premium_monthly_cap_usd),
            "enterprise": Caps(self.enterprise_daily_cap_usd, self.enterprise_monthly_cap_usd),
        }
