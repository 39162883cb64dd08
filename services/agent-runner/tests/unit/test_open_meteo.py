"""The optional forecast provider against a local stub that speaks Open-Meteo's JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from tripmesh_agent_runner.tools import ToolRegistry, build_tool_registry
from tripmesh_agent_runner.tools.climate import OpenMeteoForecast, make_climate_tool


class OpenMeteoStub(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        OpenMeteoStub.requests.append(query)
        start, end = date.fromisoformat(query["start_date"][0]), date.fromisoformat(query["end_date"][0])
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        body = {
            "latitude": float(query["latitude"][0]),
            "longitude": float(query["longitude"][0]),
            "timezone": query["timezone"][0],
            "daily_units": {"time": "iso8601", "temperature_2m_max": "°C", "temperature_2m_min": "°C",
                            "precipitation_sum": "mm"},
            "daily": {
                "time": [d.isoformat() for d in days],
                "temperature_2m_max": [20.0 + i for i in range(len(days))],
                "temperature_2m_min": [10.0] * len(days),
                "precipitation_sum": [2.5 if i % 2 == 0 else 0.0 for i in range(len(days))],
            },
        }  # fmt: skip
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def open_meteo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OpenMeteoStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/forecast"
    server.shutdown()
    server.server_close()


async def test_forecast_replaces_the_estimate_inside_the_window(open_meteo_url: str) -> None:
    OpenMeteoStub.requests.clear()
    today = date(2026, 11, 27)
    registry = ToolRegistry([make_climate_tool(OpenMeteoForecast(open_meteo_url), today=today)])
    outcome = await registry.execute(
        "climate_estimate", {"place": "Lisbon", "start_date": "2026-11-27", "end_date": "2026-11-30"}
    )
    assert outcome.ok, outcome.error
    (month,) = outcome.result["months"]
    assert month["source"] == "forecast"
    assert month["avg_high_c"] == pytest.approx(21.5) and month["avg_low_c"] == 10.0
    assert month["rain_days"] == 2 and len(month["days"]) == 4
    (request,) = OpenMeteoStub.requests
    assert request["timezone"] == ["Europe/Lisbon"] and request["start_date"] == ["2026-11-27"]
    assert "temperature_2m_max" in request["daily"][0]


async def test_months_beyond_the_window_stay_estimates(open_meteo_url: str) -> None:
    registry = ToolRegistry([make_climate_tool(OpenMeteoForecast(open_meteo_url), today=date(2026, 11, 27))])
    outcome = await registry.execute(
        "climate_estimate", {"place": "Lisbon", "start_date": "2026-11-29", "end_date": "2027-01-05"}
    )
    sources = {m["month"]: m["source"] for m in outcome.result["months"]}
    assert sources == {11: "forecast", 12: "forecast", 1: "estimate"}


async def test_off_by_default_and_selected_by_parameter(open_meteo_url: str) -> None:
    OpenMeteoStub.requests.clear()
    soon = date.today() + timedelta(days=1)
    window = {
        "place": "Lisbon",
        "start_date": soon.isoformat(),
        "end_date": (soon + timedelta(days=2)).isoformat(),
    }
    default = await build_tool_registry().execute("climate_estimate", window)
    assert {m["source"] for m in default.result["months"]} == {"estimate"}
    assert OpenMeteoStub.requests == []
    chosen = await build_tool_registry("open-meteo", open_meteo_url).execute("climate_estimate", window)
    assert {m["source"] for m in chosen.result["months"]} == {"forecast"}
    assert len(OpenMeteoStub.requests) == 1


async def test_an_unreachable_forecast_falls_back_to_the_estimate() -> None:
    registry = ToolRegistry(
        [
            make_climate_tool(
                OpenMeteoForecast("http://127.0.0.1:9/v1/forecast", 2.0), today=date(2026, 11, 27)
            )
        ]
    )
    outcome = await registry.execute(
        "climate_estimate", {"place": "Lisbon", "start_date": "2026-11-27", "end_date": "2026-11-28"}
    )
    assert outcome.ok and outcome.result["months"][0]["source"] == "estimate"
    assert "forecast unavailable" in outcome.result["note"]
