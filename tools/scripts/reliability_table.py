"""Render the reliability battery's reports (reports/reliability/*.json) as the README's table.

The table goes between `<!-- reliability:begin -->` and `<!-- reliability:end -->`, replacing
whatever was there, so the README can only claim what a report holds (issue #12). One row
per report: the test and its tier, the faults injected, the counts, plan latency p50/p99
without and with faults, and how many oracles held (a failing oracle is named).

    uv run python tools/scripts/reliability_table.py             # rewrite README.md
    uv run python tools/scripts/reliability_table.py --check     # exit 1 if README is stale
    uv run python tools/scripts/reliability_table.py --print     # the table only
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_NAME = "tools/scripts/reliability_table.py"
BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"
HEADER = (
    "| test | tier | faults | plans | lost | duplicates suppressed | dead-lettered | redelivered "
    "| p50 / p99 baseline | p50 / p99 faulted | oracles | result |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
)


def load_reports(directory: Path) -> list[dict[str, Any]]:
    """Every report in `directory`, ordered by test name (unreadable files are skipped)."""
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(report, dict) and "test" in report:
            out.append(report)
    return sorted(out, key=lambda r: str(r["test"]))


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def _latency(block: dict[str, Any] | None) -> str:
    if not block or block.get("p50") is None:
        return "-"
    return f"{block['p50']:.1f} s / {block['p99']:.1f} s"


def _faults(faults: list[dict[str, Any]]) -> str:
    kinds = Counter(str(f.get("kind")) for f in faults)
    return ", ".join(f"{n} x {kind}" if n > 1 else kind for kind, n in sorted(kinds.items())) or "-"


def row(report: dict[str, Any]) -> str:
    counts = report.get("counts") or {}
    latency = report.get("latency_s") or {}
    oracles = report.get("oracles") or []
    held = sum(1 for o in oracles if o.get("ok"))
    failed = [str(o.get("oracle")) for o in oracles if not o.get("ok")]
    result = "pass" if report.get("passed") else ("FAIL: " + "; ".join(failed) if failed else "no verdict")
    cells = [
        str(report["test"]).replace("_", " "),
        str(report.get("tier", "-")),
        _faults(report.get("faults") or []),
        _count(counts.get("attempted")),
        _count(counts.get("lost")),
        _count(counts.get("duplicates_suppressed")),
        _count(counts.get("dead_lettered")),
        _count(counts.get("redelivered")),
        _latency(latency.get("baseline")),
        _latency(latency.get("faulted")),
        f"{held}/{len(oracles)}",
        result.replace("|", "/"),
    ]
    return "| " + " | ".join(cells) + " |"


def table(reports: list[dict[str, Any]]) -> str:
    if not reports:
        return "No reliability report yet: run `make test-chaos`."
    return "\n".join([*HEADER, *(row(r) for r in reports)])


def splice(readme: str, body: str) -> str:
    """`readme` with the text between the markers replaced by `body`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {BEGIN} ... {END} block")
    return readme[: start + len(BEGIN)] + "\n" + body + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=Path, default=ROOT / "reports" / "reliability")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the README's table is stale")
    mode.add_argument("--print", action="store_true", help="print the table, change nothing")
    args = parser.parse_args(argv)

    body = table(load_reports(args.reports))
    if args.print:
        print(body)
        return 0
    current = args.readme.read_text()
    wanted = splice(current, body)
    if args.check:
        if wanted != current:
            print(f"{args.readme}: the reliability table is stale; run {SCRIPT_NAME}", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.readme.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
