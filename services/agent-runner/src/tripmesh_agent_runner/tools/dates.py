"""Public holidays (the `holidays` package) and local time (zoneinfo)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, Field, model_validator

from tripmesh_agent_runner.tools.geo import find_place
from tripmesh_agent_runner.tools.registry import Tool, ToolError

MAX_HOLIDAY_RANGE_DAYS = 800
HOLIDAYS_VERSION = getattr(holidays, "__version__", "unknown")


class PublicHolidaysArgs(BaseModel):
    country_code: str = Field(pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2, e.g. PT")
    start_date: date
    end_date: date
    subdivision: str | None = Field(default=None, description="State/region code, e.g. ME for Maine")

    @model_validator(mode="after")
    def _range(self) -> PublicHolidaysArgs:
        if self.end_date < self.start_date:
            raise ValueError("end_date before start_date")
        if (self.end_date - self.start_date).days > MAX_HOLIDAY_RANGE_DAYS:
            raise ValueError(f"range longer than {MAX_HOLIDAY_RANGE_DAYS} days")
        return self


def public_holidays(args: PublicHolidaysArgs) -> dict[str, Any]:
    code = args.country_code.upper()
    years = list(range(args.start_date.year, args.end_date.year + 1))
    try:
        calendar = holidays.country_holidays(code, subdiv=args.subdivision, years=years)
    except NotImplementedError as exc:
        raise ToolError(
            f"no public holiday data for {code}{'-' + args.subdivision if args.subdivision else ''}"
        ) from exc
    found = sorted(
        (day, str(name)) for day, name in calendar.items() if args.start_date <= day <= args.end_date
    )
    return {
        "country_code": code,
        "subdivision": args.subdivision,
        "start_date": args.start_date.isoformat(),
        "end_date": args.end_date.isoformat(),
        "holidays": [{"date": day.isoformat(), "name": name} for day, name in found],
        "source": f"holidays {HOLIDAYS_VERSION}",
    }


class LocalTimeArgs(BaseModel):
    place: str | None = Field(default=None, description="City name")
    geoname_id: int | None = None
    timezone: str | None = Field(default=None, description="IANA zone, e.g. Europe/Lisbon")
    at: datetime | None = Field(default=None, description="UTC instant (ISO 8601); now when omitted")

    @model_validator(mode="after")
    def _one_given(self) -> LocalTimeArgs:
        if self.place is None and self.geoname_id is None and self.timezone is None:
            raise ValueError("give place, geoname_id or timezone")
        return self


def _zone(args: LocalTimeArgs) -> tuple[str, ZoneInfo]:
    name = args.timezone or find_place(args.place, args.geoname_id).timezone
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(f"unknown time zone {name!r}") from exc


def local_time(args: LocalTimeArgs) -> dict[str, Any]:
    name, zone = _zone(args)
    instant = args.at or datetime.now(UTC)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    local = instant.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    return {
        "timezone": name,
        "local_time": local.isoformat(timespec="minutes"),
        "utc_offset_hours": offset.total_seconds() / 3600,
        "abbreviation": local.tzname(),
        "dst": bool(local.dst()),
    }


TOOLS = [
    Tool(
        name="public_holidays",
        description="Public holidays of a country (optionally a subdivision) between two dates.",
        args_model=PublicHolidaysArgs,
        func=public_holidays,
    ),
    Tool(
        name="local_time",
        description="Local time, UTC offset and DST of a city or IANA time zone, now or at a given instant.",
        args_model=LocalTimeArgs,
        func=local_time,
        cache_when=lambda args: args.at is not None,  # "now" changes every minute
    ),
]
