"""Currency conversion from a dated rate table, and traveller price levels per country.

Both tables ship in tools/data so the tools work offline; every answer says how old they are."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, Field
from tripmesh_places import country_info

from tripmesh_agent_runner.tools.registry import Tool, ToolError

FX_RATES_FILE = "fx_rates_2026-11.json"
COST_LEVELS_FILE = "cost_levels_2026.json"
Tier = Literal["budget", "mid", "premium"]
TIERS: tuple[Tier, ...] = ("budget", "mid", "premium")


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files(__package__).joinpath("data", name).read_text())
    return data


@cache
def fx_table() -> dict[str, Any]:
    return _load(FX_RATES_FILE)


@cache
def cost_table() -> dict[str, Any]:
    return _load(COST_LEVELS_FILE)


def rates_label() -> str:
    return f"rates as of {fx_table()['as_of']}"


def known_currencies() -> list[str]:
    return sorted(fx_table()["per_usd"])


def convert(amount: float, from_currency: str, to_currency: str) -> float:
    """Convert through USD with the shipped table; ToolError for a currency it does not list."""
    per_usd: dict[str, float] = fx_table()["per_usd"]
    source, target = from_currency.upper(), to_currency.upper()
    for code in (source, target):
        if code not in per_usd:
            raise ToolError(f"no exchange rate for {code}; known: {', '.join(known_currencies())}")
    return amount / per_usd[source] * per_usd[target]


class ConvertCurrencyArgs(BaseModel):
    amount: float = Field(ge=0, description="Amount in from_currency")
    from_currency: str = Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217 code, e.g. EUR")
    to_currency: str = Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217 code, e.g. USD")


def convert_currency(args: ConvertCurrencyArgs) -> dict[str, Any]:
    converted = convert(args.amount, args.from_currency, args.to_currency)
    return {
        "amount": args.amount,
        "from_currency": args.from_currency.upper(),
        "to_currency": args.to_currency.upper(),
        "converted": round(converted, 2),
        "rate": round(convert(1.0, args.from_currency, args.to_currency), 6),
        "label": rates_label(),
    }


class CostEstimatesArgs(BaseModel):
    country_code: str = Field(pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2, e.g. PT")
    tier: Tier | None = Field(default=None, description="budget, mid or premium; all tiers when omitted")
    currency: str = Field(default="USD", pattern=r"^[A-Za-z]{3}$", description="Currency of the prices")


def price_index(country_code: str) -> tuple[float, str]:
    """(price index, basis): the country's own index, else its continent's."""
    table = cost_table()
    code = country_code.upper()
    if code in table["country_index"]:
        return float(table["country_index"][code]), f"country {code}"
    info = country_info(code)
    if info is None:
        raise ToolError(f"unknown country code {code}")
    return float(table["continent_index"].get(info.continent, 1.0)), f"region {info.continent}"


def tier_prices(country_code: str, tier: Tier, currency: str = "USD") -> dict[str, float]:
    """Per-person prices for one tier (lodging is per room and night), in `currency`."""
    table = cost_table()
    index, _ = price_index(country_code)
    prices = {item: tiers[tier] * index for item, tiers in table["base_usd"].items()}
    prices["food_per_day"] = prices["meal"] * table["meals_per_day"]
    return {item: round(convert(usd, "USD", currency), 2) for item, usd in prices.items()}


def cost_estimates(args: CostEstimatesArgs) -> dict[str, Any]:
    index, basis = price_index(args.country_code)
    currency = args.currency.upper()
    tiers = [args.tier] if args.tier else list(TIERS)
    return {
        "country_code": args.country_code.upper(),
        "price_index": index,
        "basis": basis,
        "currency": currency,
        "tiers": {tier: tier_prices(args.country_code, tier, currency) for tier in tiers},
        "label": f"estimate from price levels ({cost_table()['as_of']}), {rates_label()}",
    }


TOOLS = [
    Tool(
        name="convert_currency",
        description="Convert an amount between currencies with the shipped, dated rate table.",
        args_model=ConvertCurrencyArgs,
        func=convert_currency,
    ),
    Tool(
        name="cost_estimates",
        description=(
            "Estimated traveller prices in a country by tier (budget/mid/premium): lodging per room "
            "per night, meal, food per day, activity, local transport per day. Estimates, not quotes."
        ),
        args_model=CostEstimatesArgs,
        func=cost_estimates,
    ),
]
