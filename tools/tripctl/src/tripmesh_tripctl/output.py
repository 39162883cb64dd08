"""Human tables by default, JSON for scripts: every command builds plain data first, then
either prints it as JSON (stable keys, ISO times, exact decimals as strings) or as tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import click
from rich.console import Console
from rich.table import Table

Row = dict[str, Any]


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(data: object) -> str:
    return json.dumps(data, default=_default, indent=2, sort_keys=False)


PIPED_WIDTH = 200
"""Columns when stdout is not a terminal (rich would use 80 and fold names into pieces)."""


def console() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPED_WIDTH)


def emit(data: object, as_json: bool, human: Callable[[Console], None]) -> None:
    if as_json:
        click.echo(to_json(data))
    else:
        human(console())


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for name in columns:
        numeric = name.lower() in NUMERIC_COLUMNS
        t.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        t.add_row(*(cell(v) for v in row))
    return t


def key_values(title: str, data: dict[str, Any]) -> Table:
    return table(title, ["What", "Value"], [(k.replace("_", " "), v) for k, v in data.items()])


NUMERIC_COLUMNS = {
    "messages",
    "bytes",
    "subjects",
    "consumers",
    "pending",
    "ack pending",
    "redelivered",
    "waiting",
    "deliveries",
    "seq",
    "calls",
    "prompt tokens",
    "completion tokens",
    "cost usd",
    "points",
}


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return ago(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """`12s ago`, `5m ago`, `3h ago`, `2d ago` (as `nats` and `kubectl` print ages)."""
    if when is None:
        return "never"
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
